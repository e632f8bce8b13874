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
import contextlib
import logging
import math
import multiprocessing as mp
import os
import signal
import socket
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from multiprocessing.connection import wait as mp_wait
from typing import Any

from nas import checks
from nas.cli import plain
from nas.spec import ArchSpec
from nas.train import TrainConfig

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
    """Train one candidate described by a task dict (see `Evaluator._task`), or score it
    with inherited weights when the task has a ``supernet`` entry (`score_candidate`);
    never raises.

    Returns a `Result` as a dict. Runs in whatever process the backend chose.
    """
    if task.get("supernet"):  # evaluator=supernet: inherited weights, no training
        return score_candidate(task)
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
        self.data = dict(plain(data))
        if not self.data.get("name"):
            raise ValueError("evaluator data config needs 'name', e.g. {'name': 'digits'}")
        self.train = TrainConfig.from_any(train)
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s={timeout_s!r} is invalid; pass seconds > 0 or null")
        self.test = bool(test)
        self.timeout_s = None if timeout_s is None else float(timeout_s)

    @property
    def slots(self) -> int:
        """Candidates this evaluator trains at once."""
        return 1

    def start(self) -> None:
        """Start whatever runs candidates (worker processes for the pool); the first `run`
        does it when this was not called. Nothing to start here."""

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
            except KeyboardInterrupt:
                self.terminate()
                raise
            except BaseException:
                self._abort()
                raise

    def _run(self, tasks: Feed, done: Callable[[int, Result], None]) -> None:
        raise NotImplementedError

    def _abort(self) -> None:
        """Drop work in flight after an error (e.g. a callback raised)."""

    def close(self) -> None:
        """Release workers / clusters (idempotent)."""

    def terminate(self) -> None:
        """Stop now (Ctrl-C): kill work in flight and release everything, without waiting
        for workers to finish (idempotent)."""
        self._abort()
        self.close()

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.terminate()
        else:
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


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM while a worker process starts: an ignored signal stays ignored in the
    child (Python then installs no KeyboardInterrupt handler there), so Ctrl-C in a
    terminal interrupts the search, which kills its workers, instead of printing a
    traceback from each of them."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGTERM to the whole process group (SLURM, kill -- -PGID) stops the search, which
    # stops its workers (with SIGKILL); a worker must not die first and look like a failure
    previous_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)


class _Worker:
    def __init__(self, ctx: Any, slot: int, gpu: int | None, threads: int | None) -> None:
        self.slot, self.gpu = slot, gpu
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_pool_worker, args=(child, gpu, threads),
                                name=f"nas-eval-{slot}", daemon=False)
        with _sigint_ignored():
            self.proc.start()  # Ctrl-C reaches the parent only, which stops the workers
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
        checks.integer("evaluator.workers", workers, lo=1,
                       none="every core: one worker per GPU, else one per core")
        checks.integer("evaluator.threads_per_worker", threads_per_worker, lo=1,
                       none="the default")
        checks.integer("evaluator.per_gpu", per_gpu, lo=1)
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
        self._ctx = mp.get_context("spawn")
        self._workers: list[_Worker] = []
        self._start_failures = 0
        self._finalizer = weakref.finalize(self, PoolEvaluator._shutdown, self._workers)
        atexit.register(self._finalizer)

    def start(self) -> None:
        """Start the worker processes (each imports torch and Lightning once, a few
        seconds); the first `run` does it when this was not called. Until then this
        process has the machine to itself (the search measures its estimate then)."""
        if not self._finalizer.alive:  # closed
            raise RuntimeError("this PoolEvaluator is closed; make a new one")
        if not self._workers:
            self._workers.extend(self._spawn(i) for i in range(self.n_workers))

    @property
    def slots(self) -> int:
        return self.n_workers

    def _spawn(self, slot: int) -> _Worker:
        gpu = slot % self.n_gpus if self.n_gpus else None
        return _Worker(self._ctx, slot, gpu, self.threads)

    def _replace(self, w: _Worker) -> None:
        w.kill()
        self._workers[w.slot] = self._spawn(w.slot)

    def _run(self, tasks: Feed, done: Callable[[int, Result], None]) -> None:
        self.start()

        def dispatch() -> None:
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

        def finish(w: _Worker, result: Result) -> None:
            idx, w.task, w.deadline = w.task, None, float("inf")
            dispatch()  # the freed worker starts what is queued before the callback runs
            done(idx, result)

        while not tasks.exhausted or any(w.task is not None for w in self._workers):
            dispatch()
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
                    if w.task is None and not w.ready:
                        self._start_failures += 1
                        if self._start_failures >= 3:
                            raise RuntimeError(f"pool workers keep dying on start-up ({text})")
                    # replaced before its task is reported: the report gives queued work to
                    # free workers, and the dead one must not be among them
                    self._replace(w)
                    if w.task is not None:
                        finish(w, Result.failed(tasks[w.task]["arch_id"],
                                                f"worker died ({text})"))
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

    def terminate(self) -> None:
        for w in self._workers:
            w.kill()
        self._workers.clear()
        self.close()

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
    """One Ray task per candidate, on a local cluster or an existing one of many nodes.

    * Code: the ``nas`` and ``search_spaces`` packages travel in the job's ``runtime_env``
      (``py_modules``, uploaded once by content hash), so nodes need only the
      dependencies (torch, Lightning, ...: in the nodes' image, or through ``runtime_env``).
    * Data: a data set read from files (cifar10, cifar100, imagefolder) is decoded here
      once, its cache file put in the object store once and written on each node, the
      first time a task runs there, as ``shipped-<sha256>.npz`` in that node's cache
      folder; digits and synthetic data are made by the code itself.
    * Failures: an infrastructure failure (the node died, Ray's memory monitor or anything
      else killed the worker process, an object was lost) is not the candidate's fault: the
      candidate is submitted again, up to ``max_retries`` times, wherever Ray finds room.
      Only the candidate's own failure (NaN loss, its own out-of-memory, time limit, an
      exception in its code) or exhausted retries make a failed result; each candidate gets
      exactly one result. Ray's own task retries are off so that each attempt gets its own
      time limit and the attempts are counted (``extra["attempts"]``).
    * Slots: how many candidates run at once is read from the cluster's resources each
      time a slot is filled, so nodes that join mid-run get work (and lost nodes' slots
      are not waited for). ``gpus_per_task`` below 1 packs several small candidates onto
      one GPU.

    Args:
        address: an existing cluster ("auto", "ray://host:10001", "host:6379"); None
            starts a local one (shut down again by `close`; a cluster this evaluator did
            not start is left running).
        num_cpus: CPUs of the local cluster (None: all).
        cpus_per_task: CPUs reserved per candidate; also its torch thread count unless
            ``train.num_threads`` is set.
        gpus_per_task: GPUs per candidate (0.25: four candidates share a GPU); None: 1 when
            the cluster has GPUs, else 0.
        max_retries: submissions after an infrastructure failure, per candidate.
        ship_code: send this process's ``nas`` and ``search_spaces`` packages to the
            nodes (False: the nodes have them installed).
        runtime_env: further Ray runtime environment of the job (``pip``, ``env_vars``,
            ``image_uri``, ...), merged with the shipped code. Both apply when this
            evaluator connects; a process that called ``ray.init`` itself keeps its own.
        timeout_s: hard per-attempt limit from submission: the task is cancelled with
            ``ray.cancel(force=True)`` and the candidate fails with "timeout ...".
        **common: see `Evaluator`.
    """

    def __init__(self, *, address: str | None = None, num_cpus: int | None = None,
                 cpus_per_task: float = 1, gpus_per_task: float | None = None,
                 max_retries: int = 3, ship_code: bool = True,
                 runtime_env: Mapping | None = None, **common: Any) -> None:
        super().__init__(**common)
        import ray

        if isinstance(cpus_per_task, bool) or not isinstance(cpus_per_task, (int, float)) \
                or not cpus_per_task > 0:
            raise ValueError(f"cpus_per_task={cpus_per_task!r} is invalid; pass a number > 0")
        if gpus_per_task is not None and (isinstance(gpus_per_task, bool) or not isinstance(
                gpus_per_task, (int, float)) or gpus_per_task < 0
                or (gpus_per_task > 1 and gpus_per_task != int(gpus_per_task))):
            raise ValueError(f"gpus_per_task={gpus_per_task!r} is invalid; pass a fraction of "
                             f"one GPU (0 < x <= 1, e.g. 0.25), a whole number, 0 or null")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries={max_retries!r} is invalid; pass an integer >= 0")
        env = dict(plain(runtime_env or {}))
        if ship_code:
            env = code_runtime_env(env)
        self._started = False
        if not ray.is_initialized():
            ray_connect(address, num_cpus, runtime_env=env)
            self._started = address is None
        elif env:
            log.warning("Ray was initialised before the evaluator: its runtime_env applies, "
                        "not evaluator.runtime_env / ship_code")
        if gpus_per_task is None:
            gpus_per_task = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
        self.cpus_per_task, self.gpus_per_task = float(cpus_per_task), float(gpus_per_task)
        self.max_retries = max_retries
        if self.train.num_threads is None:
            self.train = replace(self.train, num_threads=max(1, int(cpus_per_task)))
        self._remote = ray.remote(run_ray_candidate).options(
            num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=0)
        self._data_ref: Any = None  # the data set's cache file in the object store
        self._data_digest: str | None = None
        self._inflight: dict[Any, tuple[int, float, int]] = {}

    @property
    def slots(self) -> int:
        """Candidates that fit on the cluster now (at least 1), read from its resources."""
        import ray

        return ray_slots(ray.cluster_resources(), self.cpus_per_task, self.gpus_per_task)

    def _run(self, tasks: Feed, done: Callable[[int, Result], None]) -> None:
        import ray

        self._ship_data()
        retry: deque[tuple[int, int]] = deque()  # (task, attempts so far) to submit again
        inflight = self._inflight
        def fill() -> None:
            while (retry or tasks.queued) and len(inflight) < self.slots:
                i, attempt = retry.popleft() if retry else (tasks.next(), 0)
                inflight[self._submit(tasks[i])] = (i, self._deadline(), attempt)

        while not tasks.exhausted or inflight or retry:
            fill()
            if not inflight:
                tasks.next()  # raises: nothing queued, nothing running, the feed still open
            nearest = min(d for _, d, _ in inflight.values()) - time.monotonic()
            ready, _ = ray.wait(list(inflight), num_returns=1,
                                timeout=max(0.0, min(1.0, nearest)))
            for ref in ready:
                i, _, attempt = inflight.pop(ref)
                result = self._resolve(ref, tasks[i], attempt)
                if result is None:
                    retry.appendleft((i, attempt + 1))  # first in line for the next slot
                else:
                    fill()  # the freed slot starts what is queued before the callback runs
                    done(i, result)
            now = time.monotonic()
            for ref, (i, deadline, _) in list(inflight.items()):
                if now > deadline:
                    ray.cancel(ref, force=True)
                    del inflight[ref]
                    done(i, Result.failed(tasks[i]["arch_id"],
                                          f"timeout after {self.timeout_s:g} s (task cancelled)"))

    def _deadline(self) -> float:
        return time.monotonic() + self.timeout_s if self.timeout_s else float("inf")

    def _submit(self, task: dict) -> Any:
        """Start one attempt of ``task``; the data set's object goes as a top-level argument,
        so Ray moves it to the task's node once and hands it over without a copy."""
        return self._remote.remote(task, self._data_ref, self._data_digest)

    def _resolve(self, ref: Any, task: Mapping, attempt: int) -> Result | None:
        """The finished attempt's result, or None when it hit an infrastructure failure
        and is to be submitted again."""
        import ray

        try:
            result = Result(**ray.get(ref))
        except Exception as e:  # noqa: BLE001 - crashed worker, dead node, error in the task
            system = ray_system_failure(e)
            if system is not None and should_retry(attempt, self.max_retries):
                log.warning("candidate %s: %s; submitting it again (attempt %d of %d)",
                            task["arch_id"], system, attempt + 2, self.max_retries + 1)
                return None
            reason = _ray_reason(e)
            if system is not None:
                reason = f"{system} ({attempt + 1} attempts)"
            result = Result.failed(task["arch_id"], reason)
        result.extra["attempts"] = attempt + 1
        return result

    def _ship_data(self) -> None:
        """Put the decoded data set (its cache file) in the object store, once."""
        if self._data_ref is not None or not self.data.get("root"):
            return
        import hashlib

        import numpy as np
        import ray

        from nas.data import make_datamodule

        kw = {k: v for k, v in self.data.items() if k != "name"}
        dm = make_datamodule(self.data["name"], **kw)  # decodes once, or reads the cache
        if dm.cache_path is None:  # pragma: no cover - every file data set has a cache
            return
        blob = np.fromfile(dm.cache_path, dtype=np.uint8)
        self._data_digest = hashlib.sha256(blob).hexdigest()
        self._data_ref = ray.put(blob)
        log.info("data %s (%.1f MB, sha256 %s) in the object store", dm.cache_path,
                 blob.nbytes / 1e6, self._data_digest[:12])

    def _abort(self) -> None:
        import ray

        for ref in list(self._inflight):
            ray.cancel(ref, force=True)
        self._inflight.clear()

    def close(self) -> None:
        import ray

        self._abort()
        self._data_ref = None
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False


def ray_connect(address: str | None, num_cpus: int | None, *,
                runtime_env: Mapping | None = None) -> None:
    """``ray.init`` a local cluster (``address`` None) or connect to one, with the job's
    ``runtime_env`` (Ray uploads local packages only at the job level); ValueError naming
    the fix when nothing answers at ``address``."""
    import ray

    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                          "logging_level": logging.WARNING, "runtime_env": runtime_env or None}
    if address is None:
        kw["num_cpus"] = num_cpus
    fix = ("start one with `ray start --head` and pass its address (host:6379, "
           "ray://host:10001 or auto), or evaluator.address=null for a local cluster")
    if address not in (None, "auto", "local"):
        # Ray itself retries an unreachable address for minutes: ask the port first.
        host, _, port = str(address).split("://", 1)[-1].rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"evaluator.address={address!r} is not host:port; {fix}")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as e:
            raise ValueError(f"evaluator.address={address!r}: no Ray cluster reachable there "
                             f"({e.strerror or e}); {fix}") from None
    try:
        ray.init(address=address, **kw)
    except (ConnectionError, TimeoutError, ValueError) as e:
        ray.shutdown()
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"evaluator.address={address!r}: no Ray cluster reachable there "
                         f"({first[:160]}); {fix}") from None


def code_runtime_env(env: Mapping | None = None) -> dict:
    """``env`` plus ``py_modules``: the ``nas`` and ``search_spaces`` packages this process
    imports, uploaded (by content hash, once) for every node; caches and bytecode excluded."""
    import nas
    import search_spaces

    mods = [os.path.dirname(os.path.abspath(m.__file__)) for m in (nas, search_spaces)]
    env = dict(env or {})
    env["py_modules"] = list(env.get("py_modules") or []) + mods
    env["excludes"] = list(env.get("excludes") or []) + ["__pycache__/", "*.pyc"]
    return env


def ray_slots(resources: Mapping[str, float], cpus_per_task: float,
              gpus_per_task: float) -> int:
    """Candidates that fit in ``resources`` (``ray.cluster_resources()``) at once; at least
    1, so a cluster momentarily without nodes still gets a task queued."""
    slots = int(resources.get("CPU", 0) // cpus_per_task)
    if gpus_per_task:
        # Round first: 1 GPU / 0.1 is 9.999... in floating point, and Ray grants 10.
        slots = min(slots, int(round(resources.get("GPU", 0) / gpus_per_task, 6)))
    return max(1, slots)


def should_retry(attempts_failed_before: int, max_retries: int) -> bool:
    """Whether a candidate whose attempt number ``attempts_failed_before`` (0: the first)
    hit an infrastructure failure gets another one."""
    return attempts_failed_before < max_retries


def ray_system_failure(e: BaseException) -> str | None:
    """A short reason when ``e`` (from ``ray.get``) is an infrastructure failure that says
    nothing about the candidate, else None (an exception of the task itself, a cancel)."""
    import ray.exceptions as rex

    kinds = [(rex.NodeDiedError, "node died"),
             (getattr(rex, "OutOfMemoryError", ()), "worker killed by Ray's memory monitor"),
             (rex.WorkerCrashedError, "worker process died"),
             (getattr(rex, "LocalRayletDiedError", ()), "node's raylet died"),
             (rex.ObjectLostError, "object lost"),
             (rex.RaySystemError, "Ray system error")]
    for cls, text in kinds:
        if cls and isinstance(e, cls):
            return text
    return None


def _ray_reason(e: BaseException) -> str:
    import ray.exceptions as rex

    if isinstance(e, rex.RayTaskError) and e.cause is not None:
        return failure_reason(e.cause)
    if isinstance(e, rex.RuntimeEnvSetupError):
        return f"Ray could not set up the task's runtime_env: {str(e).strip()[:200]}"
    return failure_reason(e)


def run_ray_candidate(task: dict, data: Any = None, digest: str | None = None) -> dict:
    """`run_candidate` in a Ray task: ``data`` (the bytes of a data set's cache file, from
    the object store) is written once per node as ``<cache>/shipped-<digest>.npz`` and
    becomes the task's ``data.root``; the result names the node it ran on."""
    import ray

    if data is not None:
        task = {**task, "data": {**task["data"], "root": str(_node_copy(data, digest,
                                                                        task["data"]))}}
    out = run_candidate(task)
    out["extra"]["node"] = ray.get_runtime_context().get_node_id()
    return out


def _node_copy(data: Any, digest: str | None, data_cfg: Mapping) -> str:
    import tempfile

    from nas.data import default_cache_dir

    folder = (os.path.expanduser(data_cfg["cache_dir"]) if data_cfg.get("cache_dir")
              else str(default_cache_dir()))
    path = os.path.join(folder, f"shipped-{digest}.npz")
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        # Write then rename: tasks starting together on one node never read half a file.
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".npz.tmp", delete=False) as tmp:
            tmp.write(memoryview(data))
        os.replace(tmp.name, path)
    return path


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


#: per process, the scorer of the supernet that scored last (a pool worker keeps its
#: supernet, calibration and validation images between candidates)
_SCORERS: dict[str, Any] = {}


def _scorer(opts: Mapping, data: Mapping, train: Mapping) -> Any:
    import json

    from nas.supernet import InheritedScorer

    key = json.dumps([opts["checkpoint"], opts["calib_batches"], opts["finetune_steps"],
                      data, train], sort_keys=True, default=str)
    if key not in _SCORERS:
        _SCORERS.clear()  # one supernet per process
        _SCORERS[key] = InheritedScorer(opts["checkpoint"], data=data, train=train,
                                        calib_batches=opts["calib_batches"],
                                        finetune_steps=opts["finetune_steps"])
    return _SCORERS[key]


def score_candidate(task: Mapping) -> dict:
    """Score one candidate of a `SupernetEvaluator` task with inherited weights (in
    whatever process the evaluator chose; never raises). The task's ``supernet`` entry names
    the checkpoint, its sha256 and the scoring options; the process loads that supernet
    once and keeps it for the next candidates. Returns a `Result` as a dict."""
    t0 = time.perf_counter()
    opts, arch_id = task["supernet"], str(task.get("arch_id"))
    try:
        scorer = _scorer(opts, task["data"], task["train"])
        if scorer.sha256 != opts["sha256"]:
            raise ValueError(f"supernet checkpoint {opts['checkpoint']} changed while the "
                             f"search ran (sha256 {scorer.sha256[:16]}, the search began "
                             f"with {opts['sha256'][:16]}); restore it or start a new search")
        s = scorer.score(task["genome"], seed=int(task["seed"]))
        result = Result(arch_id=arch_id, status="ok", accuracy=s["accuracy"],
                        val_loss=s["val_loss"], train_seconds=s["seconds"],
                        extra={"fidelity": dict(scorer.fidelity),
                               "calib_images": s["calib_images"],
                               "val_images": s["val_images"]})
    except Exception as e:  # noqa: BLE001 - every failure becomes a failed result
        log.debug("candidate %s failed:\n%s", arch_id, traceback.format_exc())
        result = Result.failed(arch_id, failure_reason(e))
    result.extra["wall_seconds"] = time.perf_counter() - t0
    return result.to_dict()


class SupernetEvaluator(LocalEvaluator):
    """Scores candidates with weights inherited from a trained supernet (`nas.supernet`):
    the subnet is extracted, optionally fine-tuned for ``finetune_steps`` steps, its BN
    statistics are recalibrated on ``calib_batches`` training batches, and its accuracy is
    measured on the validation split (the same split the from-scratch proxy uses). Each
    result's ``extra["fidelity"]`` names the checkpoint by the sha256 of its content.

    Candidates that are not genomes of the supernet's space (the baselines) are trained
    from scratch with the recipe, as `LocalEvaluator` does.

    Args:
        checkpoint: ``checkpoints/last.ckpt`` of a ``python -m nas.supernet`` run.
        calib_batches: training batches (of ``train.batch_size``) for BN recalibration.
        finetune_steps: optimiser steps of the recipe before scoring (0: none).
        workers: 0 scores in this process; N > 0 scores in N persistent worker processes
            (a `PoolEvaluator`), each of which loads the supernet once and keeps it.
        threads_per_worker: torch CPU threads per worker when ``train.num_threads`` is
            null; null = cores / workers.
        **common: see `Evaluator` (``timeout_s``: in this process, the baselines'
            ``train.max_time_s``; with workers, the pool's hard per-candidate limit).
    """

    def __init__(self, *, checkpoint: str | None = None, calib_batches: int = 10,
                 finetune_steps: int = 0, workers: int = 0,
                 threads_per_worker: int | None = None, **common: Any) -> None:
        super().__init__(**common)
        if not checkpoint:
            raise ValueError("evaluator=supernet needs evaluator.checkpoint=PATH, the "
                             "checkpoints/last.ckpt of a `python -m nas.supernet` run")
        checks.integer("evaluator.workers", workers, lo=0)  # 0: in this process
        checks.integer("evaluator.calib_batches", calib_batches, lo=1)
        checks.integer("evaluator.finetune_steps", finetune_steps, lo=0)
        from nas.supernet import load_supernet

        self.supernet, sha256 = load_supernet(checkpoint)
        self.options = {"checkpoint": str(checkpoint), "sha256": sha256,
                        "calib_batches": calib_batches, "finetune_steps": finetune_steps}
        self._pool: PoolEvaluator | None = None
        if workers:
            self._pool = PoolEvaluator(workers=workers, threads_per_worker=threads_per_worker,
                                       data=self.data, train=self.train,
                                       timeout_s=self.timeout_s)
        else:  # bad options (calib_batches, finetune_steps) fail here, before any search
            _scorer(self.options, self.data, self.train.to_dict())

    @property
    def slots(self) -> int:
        return self._pool.slots if self._pool is not None else 1

    def check_space(self, space: Any) -> None:
        """ValueError unless ``space`` is the supernet's space with the same config."""
        from nas.supernet import check_space

        check_space(self.supernet, space, self.options["checkpoint"])

    def _task(self, c: Candidate) -> dict:
        task = super()._task(c)
        space = self.supernet.space
        if c.genome is None or c.space != space.name:
            return task  # a baseline: trained from scratch
        if space.arch_id(c.genome) != c.arch_id:
            raise ValueError(f"candidate {c.arch_id} is not a genome of the supernet's "
                             f"{space.name} space config (another config made its id); "
                             f"search with the checkpoint's space config")
        task["genome"] = [int(g) for g in c.genome]
        task["supernet"] = self.options
        return task

    def _run(self, tasks: Feed, done: Callable[[int, Result], None]) -> None:
        if self._pool is not None:
            self._pool._run(tasks, done)
            return
        while (i := tasks.next()) is not None:
            done(i, Result(**run_candidate(tasks[i])))

    def _abort(self) -> None:
        if self._pool is not None:
            self._pool._abort()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


#: range of each numeric evaluator option, checked before anything starts (null: the
#: backend's default, named by ``none``)
_OPTION_RULES: dict[str, dict[str, Any]] = {
    "workers": {"kind": int, "lo": 1,
                "none": "every core: one worker per GPU, else one per core"},
    "threads_per_worker": {"kind": int, "lo": 1},
    "per_gpu": {"kind": int, "lo": 1},
    "calib_batches": {"kind": int, "lo": 1},
    "finetune_steps": {"kind": int, "lo": 0},
    "max_retries": {"kind": int, "lo": 0},
    "timeout_s": {"kind": float, "lo": 0.0, "lo_open": True},
    "cpus_per_task": {"kind": float, "lo": 0.0, "lo_open": True},
    "gpus_per_task": {"kind": float, "lo": 0.0},  # 0: CPU-only tasks on a GPU cluster
}
#: where a backend's option has another range than the table's
_BACKEND_RULES: dict[tuple[str, str], dict[str, Any]] = {
    ("supernet", "workers"): {"kind": int, "lo": 0},  # 0: score in the search's process
}


def check_evaluator_options(cfg: Mapping) -> None:
    """Raise ValueError naming the key and the fix for an unknown backend, an option the
    backend does not take, or an option value out of range; nothing is started."""
    opts = dict(plain(cfg))
    backend = opts.pop("backend", None)
    if backend not in BACKENDS:
        raise ValueError(f"evaluator.backend={backend!r} is invalid; pass one of "
                         f"{', '.join(BACKENDS)} (e.g. evaluator=pool)")
    allowed = backend_options(backend)
    unknown = sorted(set(opts) - allowed)
    if unknown:
        raise ValueError(f"evaluator.{unknown[0]} is not an option of the {backend} backend; "
                         f"options: {', '.join(sorted(allowed))}")
    for key, value in opts.items():
        rule = dict(_BACKEND_RULES.get((backend, key)) or _OPTION_RULES.get(key) or {})
        if not rule:
            continue
        kind, none = rule.pop("kind"), rule.pop("none", "the default")
        check = checks.integer if kind is int else checks.number
        check(f"evaluator.{key}", value, none=none, **rule)


def check_evaluator(cfg: Mapping, space: Any) -> None:
    """Raise ValueError when the evaluator config cannot score genomes of ``space`` (a
    search calls this before it writes anything): for ``supernet``, a missing, corrupt or
    foreign checkpoint, or one of another space or space config."""
    opts = dict(plain(cfg))
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
    check_evaluator_options(cfg)
    opts = dict(plain(cfg))
    backend = opts.pop("backend")
    allowed = backend_options(backend)
    for k, v in (hints or {}).items():
        if k in allowed and opts.get(k) is None:
            opts[k] = v
    return _backend_classes()[backend](data=data, train=train, **opts)


__all__ = ["BACKENDS", "Candidate", "Evaluator", "Feed", "LocalEvaluator", "PoolEvaluator",
           "RayEvaluator", "Result", "SupernetEvaluator", "TableEvaluator", "backend_options",
           "check_evaluator", "check_evaluator_options", "code_runtime_env", "failure_reason",
           "make_evaluator", "plan_workers", "ray_connect", "ray_slots", "ray_system_failure",
           "run_candidate", "run_ray_candidate", "score_candidate", "should_retry",
           "usable_cores"]
