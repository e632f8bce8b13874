"""Latency: a per-block lookup table that predicts whole-model inference time.

Each top-level layer of a spec, keyed by ``(layer token, input shape, batch, device,
threads)``, is built alone (``nas.build.module``), put in eval mode and timed; the predicted
latency of a spec is the sum of its layers' entries, so predicting an architecture whose
blocks were seen before costs a dict lookup (as Once-for-All's and FBNet's latency tables).
Missing entries are measured on demand and persisted (JSON, one file per device under
``runs/latency/<device-key>.json``; the device key is the CPU model and thread count, or
the GPU name).

Timing protocol (:class:`Protocol`, the same for a block and for a whole model): threads
pinned with ``torch.set_num_threads`` (restored afterwards), ``torch.inference_mode``, a
fixed random input of the table's batch size, ``warmup`` untimed calls, then ``repeats``
timed repeats, each of ``n`` back-to-back calls with ``n`` chosen so that a repeat lasts at
least ``min_repeat_ms`` (timer resolution and Python jitter stay small against it); the
result is the median over repeats of the per-call time. On CUDA the device is synchronised
around every repeat.

Two effects make a block timed alone faster than the same block inside a model, and the
protocol removes them rather than fitting a fudge factor:

* **Cache-hot weights.** Called again and again, a lone block keeps its weights in L1/L2;
  inside a model the other blocks have evicted them by the next forward pass. So a block is
  timed round-robin over deep copies of itself holding at least ``cold_bytes`` (8 MiB, more
  than a core's L2) of weights in all (at most ``max_copies``); the input stays hot, as it
  is inside a model (the previous block just wrote it). On this project's 2-core EPYC VM
  it cut the median error on 12 mobile-space nets from 17% to 8% (and 16% to 11% in a
  second, noisier run; thread clock); without it the sum of blocks came out ~15% low.
* **Fixed per-call overhead.** Summing *n* blocks counts the harness's per-call cost *n*
  times where the model pays it once. The table measures an empty module (``nn.Identity``)
  with the same protocol and predicts ``sum(entry_i - overhead) + overhead``; entries are
  stored raw and the correction is applied in :meth:`LatencyTable.predict`. On a CPU it is
  about 1-2 us per layer, negligible against milliseconds (on the benchmark below it moved
  the median error by 0.2-0.3 points, within noise; the CLI prints both); it can matter
  where blocks take microseconds (tiny inputs, GPUs).

Clock: ``wall`` (default; what a user waits) or ``thread``, the CPU time of the timing
thread (``time.thread_time``; CPU, one thread): on a machine shared with other jobs, time
spent descheduled is then not counted (for one busy thread on an idle machine the two agree). Entries of the two
clocks never mix. ``python -m nas.latency`` reports the median absolute percentage error of
the prediction against measured whole models, and the load average while it ran; with
``--rounds R`` blocks and models are timed in R interleaved rounds (:meth:`LatencyTable.fill`)
so that a drifting load hits both alike. Measured on the shared 2-core VM (other jobs kept
the load average at 2-4.5), 50 random mobile-space nets, batch 1, one thread, 3 rounds:
9.5% with the thread clock, 15.3% with the wall clock; the same model timed twice minutes
apart differed by 14-17% (median) under that load, so the table is as good as the machine
allows there.

For the search, :func:`latency_ms` is the cost function: ``latency_ms(spec, table=table)``
with one :class:`LatencyTable` made up front (``objectives=[error, latency]``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import platform
import random
import re
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas import spec as S
from nas.build import build, module
from nas.config import PROJECT_ROOT

TABLE_VERSION = 1

# --------------------------------------------------------------------------------------------
# Devices and default paths
# --------------------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")


def device_key(device: str = "cpu", threads: int | None = None) -> str:
    """``cpu-<model>-t<threads>`` or ``cuda-<GPU name>``: the name of a table file."""
    if device.startswith("cuda"):
        return f"cuda-{slug(torch.cuda.get_device_name(torch.device(device)))}"
    return f"cpu-{slug(cpu_model())}-t{threads or torch.get_num_threads()}"


def default_table_path(device: str = "cpu", threads: int | None = None) -> Path:
    """``<project>/runs/latency/<device-key>.json`` (``$NAS_LATENCY_DIR`` overrides the
    folder); the project root is where ``pyproject.toml`` sits, else the working dir."""
    env = os.environ.get("NAS_LATENCY_DIR")
    if env:
        root = Path(env)
    else:
        base = PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").is_file() else Path.cwd()
        root = base / "runs" / "latency"
    return root / f"{device_key(device, threads)}.json"


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Protocol:
    """How one latency is measured (see the module docstring)."""

    warmup: int = 5
    repeats: int = 15
    min_repeat_ms: float = 5.0
    #: "wall" (time.perf_counter) or "thread" (CPU time of the calling thread, CPU with one
    #: thread only: time spent descheduled by other processes does not count)
    clock: str = "wall"
    #: a block is timed round-robin over copies of itself holding at least this many bytes
    #: of weights in all, so that each call finds its weights evicted as inside a whole
    #: model (0: time one copy, weights stay cache-hot)
    cold_bytes: int = 8 << 20
    #: most copies made to reach cold_bytes
    max_copies: int = 64

    def __post_init__(self) -> None:
        for name in ("warmup", "repeats"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "warmup" else 1):
                raise ValueError(f"Protocol.{name} must be an integer >= "
                                 f"{0 if name == 'warmup' else 1}, got {v!r}")
        if not self.min_repeat_ms >= 0:
            raise ValueError(f"Protocol.min_repeat_ms must be >= 0, got {self.min_repeat_ms}")
        if self.cold_bytes < 0 or self.max_copies < 1:
            raise ValueError(f"Protocol.cold_bytes must be >= 0 and max_copies >= 1, got "
                             f"{self.cold_bytes}, {self.max_copies}")
        if self.clock not in ("wall", "thread"):
            raise ValueError(f"Protocol.clock must be 'wall' or 'thread', got {self.clock!r}")


@contextlib.contextmanager
def pinned_threads(threads: int | None) -> Iterator[None]:
    """Run with ``torch.set_num_threads(threads)``, restoring the previous value after."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def time_call(fn: Callable[[Any], Any] | Sequence[Callable[[Any], Any]], x: Any, *,
              protocol: Protocol = Protocol(), device: str = "cpu") -> float:
    """Median milliseconds per call of ``fn(x)`` (the caller pins threads, sets eval).

    ``fn`` may be a sequence of equivalent callables (copies of one module), called
    round-robin: one call per step, so the time is still that of one call."""
    fns = list(fn) if isinstance(fn, Sequence) else [fn]
    k = len(fns)
    step = 0

    def call() -> None:
        nonlocal step
        fns[step % k](x)
        step += 1

    cuda = device.startswith("cuda")
    if protocol.clock == "thread" and (cuda or torch.get_num_threads() != 1):
        raise ValueError("the 'thread' clock measures one CPU thread: use it with device cpu "
                         "and threads 1")
    clock = time.thread_time if protocol.clock == "thread" else time.perf_counter

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    with torch.inference_mode():
        for _ in range(max(protocol.warmup, k)):
            call()
        sync()
        t0 = clock()
        call()
        sync()
        once = clock() - t0
        n = max(1, min(10_000, math.ceil(protocol.min_repeat_ms / 1e3 / max(once, 1e-7))))
        times = []
        for _ in range(protocol.repeats):
            sync()
            t0 = clock()
            for _ in range(n):
                call()
            sync()
            times.append((clock() - t0) / n)
    return 1e3 * statistics.median(times)


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def _shape_str(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


class LatencyTable:
    """Per-layer latency lookup table persisted as JSON.

    Args:
        path: the JSON file (created on the first save); ``None`` for
            :func:`default_table_path`.
        device: ``"cpu"`` or ``"cuda"`` / ``"cuda:N"``.
        batch: batch size of every measurement.
        threads: torch intra-op threads pinned while measuring (default: the current
            ``torch.get_num_threads()``).
        protocol: warmup / repeats / minimum repeat length.

    ``measurements`` counts the timings this object has made (layers, overhead and whole
    models), so callers can check that a warm table measures nothing new.
    """

    def __init__(self, path: str | Path | None = None, *, device: str = "cpu", batch: int = 1,
                 threads: int | None = None, protocol: Protocol | None = None):
        if not (device == "cpu" or re.fullmatch(r"cuda(:\d+)?", device)):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("device 'cuda' asked for but torch sees no CUDA GPU; use "
                             "--device cpu")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        self.device = device
        self.batch = batch
        self.threads = threads or torch.get_num_threads()
        self.protocol = protocol or Protocol()
        if self.protocol.clock == "thread" and (device != "cpu" or self.threads != 1):
            raise ValueError("Protocol(clock='thread') times one CPU thread: use it with "
                             "device='cpu' and threads=1")
        self.path = Path(path) if path is not None else default_table_path(device, self.threads)
        self.measurements = 0
        self.entries: dict[str, dict] = {}
        self.meta: dict[str, Any] = {"version": TABLE_VERSION,
                                     "device_key": device_key(device, self.threads),
                                     "cpu": cpu_model(), "torch": torch.__version__}
        self._dirty = False
        self._load()

    # Persistence ------------------------------------------------------------------------------
    def _read_file(self) -> dict:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"latency table {self.path} is not valid JSON ({e}); delete it to "
                             f"start a fresh table") from None
        if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
            raise ValueError(f"latency table {self.path} has no 'entries' object; delete it "
                             f"to start a fresh table")
        return data

    def _load(self) -> None:
        data = self._read_file()
        self.entries.update(data.get("entries", {}))

    def save(self) -> None:
        """Write the table (merged with entries another process may have added)."""
        on_disk = self._read_file().get("entries", {})
        merged = {**on_disk, **self.entries}
        self.entries = merged
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**self.meta, "entries": merged}, indent=0, sort_keys=True))
        os.replace(tmp, self.path)
        self._dirty = False

    # Keys and measurements ------------------------------------------------------------------
    def key(self, layer: S.Layer, shape: tuple[int, ...]) -> str:
        """Table key of ``layer`` on input ``shape`` under this table's batch/device/threads."""
        return f"{layer.token()}|{_shape_str(shape)}|{self._suffix()}"

    def _suffix(self) -> str:
        # entries timed on the thread clock never mix with wall-clock ones
        clock = "|thread-clock" if self.protocol.clock == "thread" else ""
        return f"b{self.batch}|{self.device}|t{self.threads}{clock}"

    def _overhead_key(self) -> str:
        return f"__empty_module__|{self._suffix()}"

    def _time(self, mod: Any, shape: tuple[int, ...], *, cold: bool) -> float:
        """Time ``mod`` on a random input of ``shape``; ``cold``: rotate weight copies."""
        mods = [mod.to(self.device).eval()]
        if cold and self.protocol.cold_bytes:
            nbytes = sum(p.numel() * p.element_size() for p in mod.parameters())
            want = math.ceil(self.protocol.cold_bytes / max(nbytes, 1))
            mods += [copy.deepcopy(mods[0]) for _ in range(min(want, self.protocol.max_copies)
                                                           - 1)]
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(self.batch, *shape, generator=gen).to(self.device)
        with pinned_threads(self.threads):
            ms = time_call(mods, x, protocol=self.protocol, device=self.device)
        self.measurements += 1
        return ms

    def _entry(self, ms: float) -> dict:
        p = self.protocol
        return {"ms": ms, "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "protocol": f"warmup {p.warmup}, median of {p.repeats} x >={p.min_repeat_ms:g}"
                            f" ms, {p.clock} clock, cold weights {p.cold_bytes >> 20} MiB"}

    def overhead_ms(self) -> float:
        """Measured cost of calling an empty module (``nn.Identity``) through the harness."""
        key = self._overhead_key()
        if key not in self.entries:
            self.entries[key] = self._entry(self._time(nn.Identity(), (1,), cold=False))
            self._dirty = True
        return float(self.entries[key]["ms"])

    def layer_ms(self, layer: S.Layer, shape: tuple[int, ...]) -> float:
        """Raw entry of one layer on ``shape``, measured now if missing (not saved yet)."""
        key = self.key(layer, shape)
        if key not in self.entries:
            self.entries[key] = self._entry(self._time(module(layer, tuple(shape)),
                                                       tuple(shape), cold=True))
            self._dirty = True
        return float(self.entries[key]["ms"])

    def layer_keys(self, spec: S.ArchSpec) -> list[str]:
        """Keys of the spec's top-level layers, in order."""
        shapes = [spec.input] + spec.shapes()
        return [self.key(layer, shapes[i]) for i, layer in enumerate(spec.layers)]

    def predict(self, spec: S.ArchSpec) -> float:
        """Predicted whole-model milliseconds: ``sum(entry - overhead) + overhead``.

        Missing entries are measured and the table is saved."""
        if not isinstance(spec, S.ArchSpec):
            raise TypeError(f"predict() takes an ArchSpec, got {type(spec).__name__}")
        shapes = [spec.input] + spec.shapes()
        raw = sum(self.layer_ms(layer, shapes[i]) for i, layer in enumerate(spec.layers))
        over = self.overhead_ms()
        if self._dirty:
            self.save()
        return raw - (len(spec.layers) - 1) * over

    def measure_model(self, spec: S.ArchSpec, *, seed: int = 0) -> float:
        """Measured milliseconds of the whole built model (same protocol as the entries)."""
        return self._time(build(spec, seed=seed), tuple(spec.input), cold=False)

    def fill(self, specs: Sequence[S.ArchSpec], *, rounds: int = 1,
             seed: int = 0) -> list[float]:
        """Measure the missing entries of ``specs`` and each whole model, interleaved.

        Every round times each missing block and each whole model once, in a shuffled
        order; an entry (and a model's time) is the median over rounds. On a machine
        whose load drifts, blocks and models are then timed over the same stretch of time
        instead of minutes apart. Returns the measured whole-model milliseconds.
        """
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
        todo: dict[str, tuple[S.Layer, tuple[int, ...]]] = {}
        for spec in specs:
            shapes = [spec.input] + spec.shapes()
            for i, layer in enumerate(spec.layers):
                key = self.key(layer, shapes[i])
                if key not in self.entries:
                    todo.setdefault(key, (layer, tuple(shapes[i])))
        jobs = [("block", k) for k in todo] + [("model", i) for i in range(len(specs))]
        got: dict[tuple[str, Any], list[float]] = {job: [] for job in jobs}
        rng = random.Random(seed)
        for _ in range(rounds):
            rng.shuffle(jobs)
            for kind, what in jobs:
                if kind == "block":
                    layer, shape = todo[what]
                    ms = self._time(module(layer, shape), shape, cold=True)
                else:
                    ms = self._time(build(specs[what], seed=0), tuple(specs[what].input),
                                    cold=False)
                got[(kind, what)].append(ms)
        for key in todo:
            self.entries[key] = self._entry(statistics.median(got[("block", key)]))
            self._dirty = True
        self.overhead_ms()
        if self._dirty:
            self.save()
        return [statistics.median(got[("model", i)]) for i in range(len(specs))]

    def __len__(self) -> int:
        return sum(1 for k in self.entries if not k.startswith("__"))

    def __repr__(self) -> str:
        return (f"LatencyTable({str(self.path)!r}, device={self.device!r}, batch={self.batch}, "
                f"threads={self.threads}, entries={len(self)})")


_SUFFIX = re.compile(r"\|(b\d+\|[^|]+\|t\d+(?:\|thread-clock)?)$")


class CarriedLatencyTable:
    """A latency table measured on another device (``python -m nas.latency SPACE --table
    PATH`` run there), carried to the machine that searches (``latency.table=PATH``): it
    predicts from its entries as :meth:`LatencyTable.predict` does and measures nothing here.
    The batch, device and threads are the file's own; a layer it lacks is a ValueError naming
    the layer and the command that measures it on the device."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise ValueError(f"latency.table={path}: no such file; measure it on the device "
                             f"with `python -m nas.latency SPACE --table FILE` and pass that "
                             f"file")
        try:
            data = json.loads(self.path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"latency.table={path} is not a latency table (not JSON: {e})"
                             ) from None
        entries = data.get("entries") if isinstance(data, dict) else None
        if not isinstance(entries, dict) or not entries:
            raise ValueError(f"latency.table={path} holds no entries; fill it on the device "
                             f"with `python -m nas.latency SPACE --table {path}`")
        suffixes = {m.group(1) for k in entries if not k.startswith("__")
                    for m in [_SUFFIX.search(k)] if m}
        if len(suffixes) != 1:
            raise ValueError(f"latency.table={path} holds entries of {len(suffixes)} settings "
                             f"({', '.join(sorted(suffixes)) or 'none readable'}); keep one "
                             f"batch size, device and thread count per file")
        self.suffix = suffixes.pop()
        self.device_key = str(data.get("device_key", "?"))
        self.entries = {k: float(v["ms"]) for k, v in entries.items()}
        over = self.entries.get(f"__empty_module__|{self.suffix}")
        if over is None:
            raise ValueError(f"latency.table={path} lacks the harness overhead entry; fill it "
                             f"with `python -m nas.latency SPACE --table {path}`")
        self.overhead = over
        self.measurements = 0  # never measures

    def predict(self, spec: S.ArchSpec) -> float:
        """Predicted whole-model milliseconds on the table's device."""
        shapes = [spec.input] + spec.shapes()
        raw = 0.0
        for i, layer in enumerate(spec.layers):
            key = f"{layer.token()}|{_shape_str(shapes[i])}|{self.suffix}"
            if key not in self.entries:
                raise ValueError(f"latency table {self.path} ({self.device_key}) has no entry "
                                 f"for layer {layer.token()} on input "
                                 f"{_shape_str(shapes[i])}; measure the space on the device: "
                                 f"python -m nas.latency SPACE --samples N --table "
                                 f"{self.path.name}")
            raw += self.entries[key]
        return raw - (len(spec.layers) - 1) * self.overhead

    def __repr__(self) -> str:
        return (f"CarriedLatencyTable({str(self.path)!r}, {self.device_key}, {self.suffix}, "
                f"entries={len(self.entries) - 1})")


def latency_ms(spec: S.ArchSpec, *, table: LatencyTable) -> float:
    """Predicted inference latency of ``spec`` in milliseconds: the search's cost function.

    Use one table for a whole search (``objectives=[error, latency]``); blocks met before
    cost a lookup, new ones are timed once (tens of ms each on a CPU) and persisted.
    """
    return table.predict(spec)


__all__ = ["CarriedLatencyTable", "LatencyTable", "Protocol", "cpu_model", "slug", "default_table_path", "device_key",
           "latency_ms", "pinned_threads", "time_call"]
