"""Evaluators: train a batch of candidates and return one `Result` per candidate.

``evaluate(candidates, callback=...)`` returns results in the order of the candidates and
calls ``callback(result)`` in the calling process as each one completes, so a search can
archive results as they arrive. ``run(feed, callback)`` trains from a `Feed` that the
callback may keep filling, so every slot (``evaluator.slots``) stays busy while the search
asks for more (asynchronous evaluation). Three backends, chosen in config (conf/evaluator/*.yaml):

* `LocalEvaluator`: in this process, one candidate after another.
* `PoolEvaluator` (the search's default): persistent worker processes (``spawn``), one per
  GPU (each pinned with CUDA_VISIBLE_DEVICES) or one per core on CPU (`plan_workers`); the
  parent kills and replaces a worker that exceeds ``timeout_s`` or dies.
* `RayEvaluator`: one Ray task per candidate on a local or existing Ray cluster.
* `TableEvaluator`: no training: each candidate's genome is looked up in a table of known
  results (`nas.table`, e.g. NAS-Bench-201 from ``analog-nasbench``).
* `SupernetEvaluator`: no training; weights inherited from a trained supernet
  (`nas.supernet`), BN recalibrated, scored on the validation split.

A candidate never takes the others down: divergence, out-of-memory, time-outs, crashed
workers and any exception become ``Result(status="failed", reason=...)``. Specs travel to
workers as JSON; results come back as plain dicts.
"""

from __future__ import annotations

import atexit
import logging
import math
import multiprocessing as mp
import os
import signal
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from multiprocessing.connection import wait as mp_wait
from typing import Any

from nas.spec import ArchSpec
from nas.train import TrainConfig, _plain

log = logging.getLogger(__name__)

BACKENDS = ("local", "pool", "ray", "table", "supernet")
_REASON_MAX = 500  # characters of a failure reason kept (tracebacks live in the logs)


@dataclass(frozen=True)
class Candidate:
    """One architecture to train: its id (the archive key), spec and training seed."""

    arch_id: str
    spec: ArchSpec
    seed: int
    genome: tuple | None = None
    space: str | None = None
    #: train only up to this epoch of the recipe's schedule (successive halving's rung);
    #: None: every epoch of ``train.epochs``
    stop_epoch: int | None = None
    #: a Lightning checkpoint (bytes) to continue from: weights, optimiser, schedule, epoch
    resume: bytes | None = field(default=None, repr=False)
    #: return the trained state (``Result.extra["state"]``, a Lightning checkpoint as bytes)
    keep_state: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.spec, ArchSpec):
            raise TypeError(f"Candidate {self.arch_id!r}: spec must be an ArchSpec, got "
                            f"{type(self.spec).__name__}")


@dataclass
class Result:
    """Outcome of one candidate. Accuracies are fractions (0..1); ``extra`` holds macs,
    params, epochs and wall_seconds where known."""

    arch_id: str
    status: str  # "ok" | "failed"
    reason: str | None = None
    accuracy: float | None = None
    test_accuracy: float | None = None
    val_loss: float | None = None
    train_seconds: float | None = None
    images_per_second: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def failed(cls, arch_id: str, reason: str, **extra: Any) -> Result:
        return cls(arch_id=arch_id, status="failed", reason=reason[:_REASON_MAX], extra=extra)

    @classmethod
    def from_train(cls, arch_id: str, out: Mapping) -> Result:
        """From `nas.train.train_spec`'s dict (fields it does not name go to ``extra``)."""
        names = {f.name for f in fields(cls)} - {"arch_id", "status", "extra"}
        return cls(arch_id=arch_id, status=out.get("status", "ok"),
                   **{k: out[k] for k in names if k in out},
                   extra={k: v for k, v in out.items() if k not in names and k != "status"})


def failure_reason(e: BaseException) -> str:
    """One line for the archive: the CandidateFailed message, "out of memory: ...", or
    "TypeName: message"."""
    from nas.train import CandidateFailed

    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, CandidateFailed):
        return msg
    oom = isinstance(e, MemoryError)
    try:
        import torch

        oom = oom or isinstance(e, torch.cuda.OutOfMemoryError)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if oom:
        return f"out of memory: {msg or type(e).__name__}"
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def run_candidate(task: Mapping) -> dict:
    """Train one candidate described by a task dict (see `Evaluator._task`); never raises.

    Returns a `Result` as a dict. Runs in whatever process the backend chose.
    """
    t0 = time.perf_counter()
    arch_id = str(task.get("arch_id"))
    try:
        from nas.train import train_spec

        spec = ArchSpec.from_json(task["spec"])
        out = train_spec(spec, data=task["data"], train=task["train"], seed=int(task["seed"]),
                         test=bool(task.get("test", False)), stop_epoch=task.get("stop_epoch"),
                         resume=task.get("resume"),
                         keep_state=bool(task.get("keep_state", False)))
        result = Result.from_train(arch_id, out)
    except Exception as e:  # noqa: BLE001 - every failure becomes a failed result
        log.debug("candidate %s failed:\n%s", arch_id, traceback.format_exc())
        result = Result.failed(arch_id, failure_reason(e))
        _release_cuda_memory()
    result.extra["wall_seconds"] = time.perf_counter() - t0
    return result.to_dict()


def _release_cuda_memory() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------------------------
# Feed: the candidates an evaluator pulls while it runs
# --------------------------------------------------------------------------------------------


class Feed:
    """Candidates an evaluator pulls, in order, while it runs; more may be put while it
    runs (typically from the result callback, so that a freed slot gets work at once) until
    the feed is closed. Backends see it as ``tasks``: ``tasks.next()`` is the index of the
    next task to start (None when nothing is queued now), ``tasks[i]`` its task dict, and
    ``tasks.exhausted`` says that nothing more will come.

    A feed that is empty, still open and has no task in flight would wait forever:
    ``next()`` raises RuntimeError then (whoever fills the feed must close it when done)."""

    def __init__(self, candidates: Iterable[Candidate] = (), *, closed: bool = False) -> None:
        self._cands: list[Candidate] = []
        self._tasks: list[dict | None] = []
        self._queue: deque[int] = deque()
        self._to_task: Callable[[Candidate], dict] | None = None
        self._closed = False
        self.in_flight = 0
        for c in candidates:
            self.put(c)
        self._closed = bool(closed)

    def put(self, c: Candidate, *, front: bool = False) -> int:
        """Queue ``c`` (``front``: before those queued); returns its index (the ``i`` of
        the result callback)."""
        if not isinstance(c, Candidate):
            raise TypeError(f"candidates[{len(self._cands)}] is a {type(c).__name__}, not a "
                            f"Candidate")
        if self._closed:
            raise RuntimeError("this feed is closed; put candidates before closing it")
        self._cands.append(c)
        self._tasks.append(None if self._to_task is None else self._to_task(c))
        if front:
            self._queue.appendleft(len(self._cands) - 1)
        else:
            self._queue.append(len(self._cands) - 1)
        return len(self._cands) - 1

    def close(self) -> None:
        """Nothing more will be put: the evaluator returns once the queue is done."""
        self._closed = True

    def candidate(self, i: int) -> Candidate:
        return self._cands[i]

    def __len__(self) -> int:
        return len(self._cands)

    @property
    def queued(self) -> int:
        """Candidates put and not yet started."""
        return len(self._queue)

    @property
    def exhausted(self) -> bool:
        return self._closed and not self._queue

    def next(self) -> int | None:
        if self._queue:
            self.in_flight += 1
            return self._queue.popleft()
        if not self._closed and self.in_flight == 0:
            raise RuntimeError("the evaluator's feed is empty, still open and nothing is "
                               "in flight: close the feed when no more candidates will come")
        return None

    def __getitem__(self, i: int) -> dict:
        task = self._tasks[i]
        if task is None:
            task = self._tasks[i] = self._to_task(self._cands[i])
        return task

    def bind(self, to_task: Callable[[Candidate], dict]) -> None:
        """Set how candidates become task dicts (the evaluator's ``_task``)."""
        self._to_task = to_task
        self._tasks = [None] * len(self._cands)


# --------------------------------------------------------------------------------------------
# Base
# --------------------------------------------------------------------------------------------


class Evaluator:
    """Trains candidates with one data config and one training recipe.

    Args:
        data: ``make_datamodule`` kwargs with ``name`` (see `nas.train.train_spec`).
        train: the recipe (TrainConfig or mapping).
        test: also report test accuracy (final reports only; searches leave it off).
        timeout_s: per-candidate time limit; see each backend for how it is enforced.
    """

    def __init__(self, *, data: Mapping, train: TrainConfig | Mapping | None = None,
                 test: bool = False, timeout_s: float | None = None) -> None:
        self.data = dict(_plain(data))
        if not self.data.get("name"):
            raise ValueError("evaluator data config needs 'name', e.g. {'name': 'digits'}")
        self.train = TrainConfig.from_any(train)
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s={timeout_s!r} is invalid; pass seconds > 0 or null")
        self.test = bool(test)
        self.timeout_s = None if timeout_s is None else float(timeout_s)

    #: candidates trained at once (the search keeps this many busy)
    slots: int = 1

    def _task(self, c: Candidate) -> dict:
        task = {"arch_id": c.arch_id, "spec": c.spec.to_json(), "seed": int(c.seed),
                "data": self.data, "train": self.train.to_dict(), "test": self.test}
        if c.stop_epoch is not None or c.resume is not None or c.keep_state:
            task.update(stop_epoch=c.stop_epoch, resume=c.resume, keep_state=c.keep_state)
        return task

    def evaluate(self, candidates: Iterable[Candidate], *,
                 callback: Callable[[Result], None] | None = None) -> list[Result]:
        """Train every candidate; results in candidate order, ``callback`` on each as it
        completes (in this process)."""
        feed = Feed(candidates, closed=True)
        results: list[Result | None] = [None] * len(feed)

        def done(i: int, r: Result) -> None:
            results[i] = r
            if callback is not None:
                callback(r)

        self.run(feed, done)
        return results  # type: ignore[return-value]

    def run(self, feed: Feed, callback: Callable[[int, Result], None]) -> None:
        """Train what ``feed`` holds and whatever is put into it while this runs (from
        ``callback``, say), until it is closed and done; ``callback(i, result)`` gets each
        result as it completes, ``i`` being the candidate's index in the feed
        (``feed.candidate(i)``)."""
        feed.bind(self._task)

        def done(i: int, r: Result) -> None:
            feed.in_flight -= 1
            callback(i, r)

        if len(feed) or not feed.exhausted:
            try:
                self._run(feed, done)
            except BaseException:
                self._abort()
                raise

    def _run(self, tasks: Feed, done: Callable[[int, Result], None]) -> None:
        raise NotImplementedError

    def _abort(self) -> None:
        """Drop work in flight after an error (e.g. a callback raised)."""

    def close(self) -> None:
        """Release workers / clusters (idempotent)."""

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Local
# --------------------------------------------------------------------------------------------


class LocalEvaluator(Evaluator):
    """In this process, sequentially. A process cannot kill itself, so ``timeout_s`` acts as
    ``train.max_time_s`` (checked after every batch) when that is unset."""

    def _task(self, c: Candidate) -> dict:
        task = super()._task(c)
        if self.timeout_s is not None and self.train.max_time_s is None:
            task["train"] = replace(self.train, max_time_s=self.timeout_s).to_dict()
        return task

    def _run(self, tasks: Feed, done: Callable[[int, Result], None]) -> None:
        while (i := tasks.next()) is not None:
            done(i, Result(**run_candidate(tasks[i])))


# --------------------------------------------------------------------------------------------
# Pool of worker processes
# --------------------------------------------------------------------------------------------


def _pool_worker(conn: Any, gpu: int | None, threads: int | None) -> None:
    """Worker process: pin the GPU, import once, then train tasks until told to stop."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)  # before anything initialises CUDA
    try:
        import torch

        if threads:
            torch.set_num_threads(threads)
        import nas.train  # noqa: F401 - pay the import before the first candidate's clock

        conn.send(("ready", os.getpid()))
        while True:
            msg = conn.recv()
            if msg is None:
                break
            idx, task = msg
            conn.send(("result", idx, run_candidate(task)))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass  # the parent went away or we were interrupted: just exit
    except BaseException:  # noqa: BLE001 - report start-up failures to the parent
        try:
            conn.send(("error", traceback.format_exc()))
        except OSError:
            pass


class _Worker:
    def __init__(self, ctx: Any, slot: int, gpu: int | None, threads: int | None) -> None:
        self.slot, self.gpu = slot, gpu
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_pool_worker, args=(child, gpu, threads),
                                name=f"nas-eval-{slot}", daemon=False)
        self.proc.start()
        child.close()
        self.conn = parent
        self.ready = False
        self.task: int | None = None
        self.deadline = float("inf")

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=10)
        self.conn.close()


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"exit code {code}, {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exit code {code}"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


#: MACs of one training step (per-image MACs x batch) above which a CPU candidate gets
#: several torch threads: below it a step takes milliseconds on one core, and intra-op
#: threads add more synchronisation than they save, so one thread per candidate and one
#: candidate per core use the machine best (the digits nets of every space are 10-100x below)
THREADED_STEP_MACS = 5e9


def plan_workers(*, cores: int, gpus: int, threads: int | None = None,
                 per_gpu: int = 1, step_macs: float | None = None) -> tuple[int, int]:
    """(workers, torch threads per worker) that use every core or GPU of a machine.

    With GPUs: ``per_gpu`` workers per GPU (small candidates can share one), the cores split
    between them. On CPU: ``threads`` per worker when given, else one thread for small
    candidates (``step_macs``, the MACs of one training step, under
    :data:`THREADED_STEP_MACS` or unknown) and up to four for large ones; as many workers as
    the cores hold."""
    if gpus:
        workers = gpus * per_gpu
        return workers, threads or max(1, cores // workers)
    if threads is None:
        threads = 1 if step_macs is None or step_macs < THREADED_STEP_MACS else min(cores, 4)
    return max(1, cores // threads), threads


class PoolEvaluator(Evaluator):
    """Persistent worker processes from a ``spawn`` context.

    Args:
        workers: number of processes; None: every core or GPU in use (`plan_workers`):
            ``per_gpu`` per visible GPU with CUDA, else cores / threads per worker. With
            CUDA, worker i is pinned to GPU ``i % n_gpus``. More workers than cores is
            allowed, with a warning.
        threads_per_worker: torch CPU threads in each worker; None: ``train.num_threads``
            when set, else from the candidates' size (`plan_workers`).
        per_gpu: workers per GPU when ``workers`` is None (several small candidates on one
            GPU at once).
        step_macs: MACs of a typical candidate's training step (per-image MACs x batch), the
            size `plan_workers` chooses threads by; None: small.
        timeout_s: hard per-candidate limit from dispatch: the worker is killed and
            replaced and the candidate fails with "timeout ...".
        **common: see `Evaluator`.
    """

    def __init__(self, *, workers: int | None = None, threads_per_worker: int | None = None,
                 per_gpu: int = 1, step_macs: float | None = None, **common: Any) -> None:
        super().__init__(**common)
        import torch

        n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        for name, v in (("workers", workers), ("threads_per_worker", threads_per_worker)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"evaluator.{name}={v!r} is invalid; pass a positive integer "
                                 f"or null (every core: one worker per GPU, else one per "
                                 f"core), e.g. evaluator.{name}=2")
        if isinstance(per_gpu, bool) or not isinstance(per_gpu, int) or per_gpu < 1:
            raise ValueError(f"evaluator.per_gpu={per_gpu!r} is invalid; pass a positive "
                             f"integer, e.g. evaluator.per_gpu=2")
        cores = usable_cores()
        planned, threads = plan_workers(
            cores=cores, gpus=n_gpus, per_gpu=per_gpu,
            threads=threads_per_worker or self.train.num_threads, step_macs=step_macs)
        if workers is None:
            workers = planned
        elif threads_per_worker is None and self.train.num_threads is None:
            threads = max(1, cores // workers) if not n_gpus else threads
        if not n_gpus and workers * threads > cores:
            log.warning("evaluator.workers=%d x %d thread(s) is more than the %d cores of this "
                        "machine: candidates will compete for them (evaluator.workers=null "
                        "uses every core once)", workers, threads, cores)
        self.n_workers, self.n_gpus, self.threads = workers, n_gpus, threads
        self.slots = workers
        self._ctx = mp.get_context("spawn")
        self._workers = [self._spawn(i) for i in range(workers)]
        self._start_failures = 0
        self._finalizer = weakref.finalize(self, PoolEvaluator._shutdown, self._workers)
        atexit.register(self._finalizer)

    def _spawn(self, slot: int) -> _Worker:
        gpu = slot % self.n_gpus if self.n_gpus else None
        return _Worker(self._ctx, slot, gpu, self.threads)

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self._workers[w.slot] = self._spawn(w.slot)

    def _run(self, tasks: Feed, done: Callable[[int, Result], None]) -> None:
        if not self._workers:
            raise RuntimeError("this PoolEvaluator is closed; make a new one")

        def finish(w: _Worker, result: Result) -> None:
            idx, w.task, w.deadline = w.task, None, float("inf")
            done(idx, result)

        while not tasks.exhausted or any(w.task is not None for w in self._workers):
            for w in self._workers:
                if w.ready and w.task is None and tasks.queued:
                    i = tasks.next()
                    w.task = i
                    try:
                        w.conn.send((i, tasks[i]))
                    except OSError:
                        pass  # it just died: the liveness check below reports the task
                    w.deadline = (time.monotonic() + self.timeout_s if self.timeout_s
                                  else float("inf"))
            if not any(w.task is not None for w in self._workers) and not tasks.queued \
                    and all(w.ready for w in self._workers):
                tasks.next()  # raises: nothing queued, nothing running, the feed still open
            nearest = min(w.deadline for w in self._workers) - time.monotonic()
            mp_wait([w.conn for w in self._workers] + [w.proc.sentinel for w in self._workers],
                    timeout=max(0.0, min(1.0, nearest)))
            for w in list(self._workers):
                dead = False
                try:
                    while w.conn.poll():
                        msg = w.conn.recv()
                        if msg[0] == "ready":
                            w.ready = True
                            self._start_failures = 0
                        elif msg[0] == "result" and msg[1] == w.task:
                            finish(w, Result(**msg[2]))
                        elif msg[0] == "error":
                            self._replace(w)
                            raise RuntimeError(f"pool worker failed to start:\n{msg[1]}")
                except (EOFError, OSError):
                    dead = True
                if dead or not w.proc.is_alive():
                    w.proc.join(timeout=5)
                    text = _exit_text(w.proc.exitcode)
                    if w.task is not None:
                        finish(w, Result.failed(tasks[w.task]["arch_id"],
                                                f"worker died ({text})"))
                    elif not w.ready:
                        self._start_failures += 1
                        if self._start_failures >= 3:
                            raise RuntimeError(f"pool workers keep dying on start-up ({text})")
                    self._replace(w)
                elif w.task is not None and time.monotonic() > w.deadline:
                    arch_id = tasks[w.task]["arch_id"]
                    self._replace(w)  # kill first: the task is gone whatever it sends now
                    finish(w, Result.failed(arch_id, f"timeout after {self.timeout_s:g} s "
                                                     f"(worker killed)"))

    def _abort(self) -> None:
        for w in list(self._workers):
            if w.task is not None:
                w.task = None
                self._replace(w)

    @staticmethod
    def _shutdown(workers: list[_Worker]) -> None:
        for w in workers:
            try:
                w.conn.send(None)
            except OSError:
                pass
        for w in workers:
            w.proc.join(timeout=5)
            w.kill()
        workers.clear()

    def close(self) -> None:
        self._finalizer()
        atexit.unregister(self._finalizer)


# --------------------------------------------------------------------------------------------
# Ray
# --------------------------------------------------------------------------------------------


class RayEvaluator(Evaluator):
    """One Ray task per candidate.

    Args:
        address: an existing cluster ("auto", "ray://host:10001", ...); None starts a local
            one (shut down again by `close`; a cluster this evaluator did not start is left
            running).
        num_cpus: CPUs of the local cluster (None: all).
        cpus_per_task: CPUs reserved per candidate; also its torch thread count unless
            ``train.num_threads`` is set.
        gpus_per_task: GPUs per candidate; None: 1 when the cluster has GPUs, else 0.
        timeout_s: hard per-candidate limit from submission: the task is cancelled with
            ``ray.cancel(force=True)`` and the candidate fails with "timeout ...".
        **common: see `Evaluator`.
    """

    def __init__(self, *, address: str | None = None, num_cpus: int | None = None,
                 cpus_per_task: float = 1, gpus_per_task: float | None = None,
                 **common: Any) -> None:
        super().__init__(**common)
        import ray

        if not cpus_per_task > 0:
            raise ValueError(f"cpus_per_task={cpus_per_task!r} is invalid; pass a number > 0")
        self._started = False
        if not ray.is_initialized():
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "logging_level": logging.WARNING}
            if address is None:
                kw["num_cpus"] = num_cpus
            ray.init(address=address, **kw)
            self._started = True
        resources = ray.cluster_resources()
        if gpus_per_task is None:
            gpus_per_task = 1 if resources.get("GPU", 0) > 0 else 0
        slots = int(resources.get("CPU", 1) // cpus_per_task) or 1
        if gpus_per_task:
            slots = min(slots, int(resources.get("GPU", 0) // gpus_per_task) or 1)
        self.slots = slots
        if self.train.num_threads is None:
            self.train = replace(self.train, num_threads=max(1, int(cpus_per_task)))
        self._remote = ray.remote(run_candidate).options(
            num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=0)
        self._inflight: dict[Any, tuple[int, float]] = {}

    def _run(self, tasks: Feed, done: Callable[[int, Result], None]) -> None:
        import ray

        inflight = self._inflight
        while not tasks.exhausted or inflight:
            while tasks.queued and len(inflight) < self.slots:
                i = tasks.next()
                deadline = time.monotonic() + self.timeout_s if self.timeout_s else float("inf")
                inflight[self._remote.remote(tasks[i])] = (i, deadline)
            if not inflight:
                tasks.next()  # raises: nothing queued, nothing running, the feed still open
            nearest = min(d for _, d in inflight.values()) - time.monotonic()
            ready, _ = ray.wait(list(inflight), num_returns=1,
                                timeout=max(0.0, min(1.0, nearest)))
            for ref in ready:
                i, _ = inflight.pop(ref)
                try:
                    result = Result(**ray.get(ref))
                except Exception as e:  # noqa: BLE001 - crashed or killed worker
                    result = Result.failed(tasks[i]["arch_id"], _ray_reason(e))
                done(i, result)
            now = time.monotonic()
            for ref, (i, deadline) in list(inflight.items()):
                if now > deadline:
                    ray.cancel(ref, force=True)
                    del inflight[ref]
                    done(i, Result.failed(tasks[i]["arch_id"],
                                          f"timeout after {self.timeout_s:g} s (task cancelled)"))

    def _abort(self) -> None:
        import ray

        for ref in list(self._inflight):
            ray.cancel(ref, force=True)
        self._inflight.clear()

    def close(self) -> None:
        import ray

        self._abort()
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False


def _ray_reason(e: BaseException) -> str:
    import ray.exceptions as rex

    if isinstance(e, rex.RayTaskError) and e.cause is not None:
        return failure_reason(e.cause)
    if isinstance(e, getattr(rex, "OutOfMemoryError", ())):
        return f"out of memory: {str(e).strip().splitlines()[0]}"
    if isinstance(e, rex.WorkerCrashedError):
        return "worker died (Ray worker crashed)"
    return failure_reason(e)


# --------------------------------------------------------------------------------------------
# Table of known results
# --------------------------------------------------------------------------------------------


class TableEvaluator(Evaluator):
    """Looks each candidate's genome up in a table (``nas.table``) instead of training it.

    The genome a search hands over is canonical, and the table's own entry for that genome
    is returned: for NAS-Bench-201 that is the network trained without the dead or redundant
    edges the canonical form removes, i.e. exactly the network whose costs the search uses.
    Equivalent genomes' separately trained entries are not averaged in (the benchmark's
    true front is computed the same way, over canonical genomes). A genome missing from the
    table, or a candidate without a genome (a baseline), is a failed candidate with that
    reason. ``extra`` carries every metric column of the row.

    Args:
        source: ``analog-nasbench`` or a CSV/Parquet file (see ``nas.table``).
        metric: the accuracy column reported as ``accuracy``.
        num_classes, in_channels: the table's networks (a user table; analog-nasbench
            knows its own: CIFAR-10, 10 classes, 3 channels).
    """

    def __init__(self, *, data: Mapping, train: TrainConfig | Mapping | None = None,
                 source: str = "analog-nasbench", metric: str = "baseline_accuracy",
                 num_classes: int | None = None, in_channels: int | None = None,
                 timeout_s: float | None = None, test: bool = False) -> None:
        super().__init__(data=data, train=train, test=test, timeout_s=timeout_s)
        from nas.table import load_table

        self.source, self.metric = source, metric
        self.table = load_table(source, num_classes=num_classes, in_channels=in_channels)
        self.table.check_metric(metric)
        self.scale = self.table.scale(metric)

    @property
    def fidelity(self) -> dict:
        """What scored the candidates, for the archive."""
        unit = "percent" if self.scale == 100.0 else "fraction"
        return {"table": self.source, "metric": self.metric, "metric_unit": unit,
                "dataset": self.table.dataset}

    def _task(self, c: Candidate) -> dict:
        return {"arch_id": c.arch_id, "genome": c.genome}

    def _run(self, tasks: Feed, done: Callable[[int, Result], None]) -> None:
        while (i := tasks.next()) is not None:
            done(i, self.lookup(tasks[i]["arch_id"], tasks[i]["genome"]))

    def lookup(self, arch_id: str, genome: tuple | None) -> Result:
        if genome is None:
            return Result.failed(arch_id, f"not in table {self.source}: only genomes of the "
                                          f"table's space can be looked up")
        row = self.table.lookup(genome)
        if row is None:
            return Result.failed(arch_id, f"genome {self.table.key(genome)} is not in table "
                                          f"{self.source}")
        acc = row[self.metric]
        if not math.isfinite(acc):
            return Result.failed(arch_id, f"table {self.source} has no {self.metric} for "
                                          f"genome {self.table.key(genome)}")
        seconds = row.get(self.table.seconds) if self.table.seconds else None
        return Result(arch_id=arch_id, status="ok", accuracy=acc / self.scale,
                      train_seconds=seconds, extra={"metrics": row})
# Supernet: inherited weights
# --------------------------------------------------------------------------------------------


class SupernetEvaluator(LocalEvaluator):
    """Scores candidates with weights inherited from a trained supernet (`nas.supernet`):
    the subnet is extracted, optionally fine-tuned for ``finetune_steps`` steps, its BN
    statistics are recalibrated on ``calib_batches`` training batches, and its accuracy is
    measured on the validation split (the same split the from-scratch proxy uses). Each
    result's ``extra["fidelity"]`` names the checkpoint by the sha256 of its content.

    Candidates that are not genomes of the supernet's space (the baselines) are trained
    from scratch with the recipe, in this process, as `LocalEvaluator` does.

    Args:
        checkpoint: ``checkpoints/last.ckpt`` of a ``python -m nas.supernet`` run.
        calib_batches: training batches (of ``train.batch_size``) for BN recalibration.
        finetune_steps: optimiser steps of the recipe before scoring (0: none).
        **common: see `Evaluator`.
    """

    def __init__(self, *, checkpoint: str | None = None, calib_batches: int = 10,
                 finetune_steps: int = 0, **common: Any) -> None:
        super().__init__(**common)
        if not checkpoint:
            raise ValueError("evaluator=supernet needs evaluator.checkpoint=PATH, the "
                             "checkpoints/last.ckpt of a `python -m nas.supernet` run")
        from nas.supernet import InheritedScorer

        self.scorer = InheritedScorer(checkpoint, data=self.data, train=self.train,
                                      calib_batches=calib_batches,
                                      finetune_steps=finetune_steps)

    def check_space(self, space: Any) -> None:
        """ValueError unless ``space`` is the supernet's space with the same config."""
        self.scorer.check_space(space)

    def _task(self, c: Candidate) -> dict:
        task = super()._task(c)
        task["genome"] = None if c.genome is None else [int(g) for g in c.genome]
        task["space"] = c.space
        return task

    def _run(self, tasks: Feed, done: Callable[[int, Result], None]) -> None:
        space = self.scorer.supernet.space
        while (i := tasks.next()) is not None:
            task = tasks[i]
            if task.get("genome") is None or task.get("space") != space.name:
                done(i, Result(**run_candidate(task)))
                continue
            if space.arch_id(task["genome"]) != task["arch_id"]:
                raise ValueError(f"candidate {task['arch_id']} is not a genome of the "
                                 f"supernet's {space.name} space config (another config "
                                 f"made its id); search with the checkpoint's space config")
            t0 = time.perf_counter()
            try:
                s = self.scorer.score(task["genome"], seed=int(task["seed"]))
                result = Result(arch_id=task["arch_id"], status="ok", accuracy=s["accuracy"],
                                val_loss=s["val_loss"], train_seconds=s["seconds"],
                                extra={"fidelity": dict(self.scorer.fidelity),
                                       "calib_images": s["calib_images"],
                                       "val_images": s["val_images"]})
            except Exception as e:  # noqa: BLE001 - every failure becomes a failed result
                log.debug("candidate %s failed:\n%s", task["arch_id"], traceback.format_exc())
                result = Result.failed(task["arch_id"], failure_reason(e))
            result.extra["wall_seconds"] = time.perf_counter() - t0
            done(i, result)


def check_evaluator(cfg: Mapping, space: Any) -> None:
    """Raise ValueError when the evaluator config cannot score genomes of ``space`` (a
    search calls this before it writes anything): for ``supernet``, a missing, corrupt or
    foreign checkpoint, or one of another space or space config."""
    opts = dict(_plain(cfg))
    if opts.get("backend") != "supernet":
        return
    from nas.supernet import check_space, load_supernet

    if not opts.get("checkpoint"):
        raise ValueError("evaluator=supernet needs evaluator.checkpoint=PATH, the "
                         "checkpoints/last.ckpt of a `python -m nas.supernet` run")
    supernet, _ = load_supernet(opts["checkpoint"])
    check_space(supernet, space, opts["checkpoint"])


# --------------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------------


def _backend_classes() -> dict[str, type[Evaluator]]:
    return {"local": LocalEvaluator, "pool": PoolEvaluator, "ray": RayEvaluator,
            "table": TableEvaluator,
            "supernet": SupernetEvaluator}


def backend_options(backend: str) -> set[str]:
    """Config keys (besides ``backend``) the evaluator ``backend`` accepts."""
    import inspect

    cls = _backend_classes()[backend]
    names = {p.name for c in cls.__mro__ if "__init__" in vars(c)
             for p in inspect.signature(c.__init__).parameters.values()
             if p.kind is p.KEYWORD_ONLY}
    return names - {"data", "train"}


def make_evaluator(cfg: Mapping, *, data: Mapping, train: TrainConfig | Mapping,
                   hints: Mapping | None = None) -> Evaluator:
    """The evaluator named by ``cfg.backend`` (local | pool | ray | supernet) with the rest of ``cfg``
    as its options (see conf/evaluator/*.yaml). ``hints`` (e.g. ``{"step_macs": ...}``, what
    the caller knows of its candidates) go to the backends that take them."""
    opts = dict(_plain(cfg))
    backend = opts.pop("backend", None)
    if backend not in BACKENDS:
        raise ValueError(f"evaluator.backend={backend!r} is invalid; pass one of "
                         f"{', '.join(BACKENDS)}")
    allowed = backend_options(backend)
    unknown = sorted(set(opts) - allowed)
    if unknown:
        raise ValueError(f"evaluator.{unknown[0]} is not an option of the {backend} backend; "
                         f"options: {', '.join(sorted(allowed))}")
    for k, v in (hints or {}).items():
        if k in allowed and opts.get(k) is None:
            opts[k] = v
    return _backend_classes()[backend](data=data, train=train, **opts)


__all__ = ["BACKENDS", "Candidate", "Evaluator", "Feed", "LocalEvaluator", "PoolEvaluator",
           "RayEvaluator", "Result", "SupernetEvaluator", "TableEvaluator", "backend_options",
           "check_evaluator", "failure_reason", "make_evaluator", "plan_workers", "run_candidate",
           "usable_cores"]
