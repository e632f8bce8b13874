"""Where an evaluator runs its tasks: in this process, or in a pool of worker processes
that keeps every core or GPU busy."""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import wait as mp_wait
from typing import Any

import torch

from nas import checks
from nas.evaluate.candidate import Candidate, Feed, Result
from nas.evaluate.tasks import Task, run_task, with_time_limit
from nas.train import TrainConfig

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Base
# --------------------------------------------------------------------------------------------


class Runner:
    """Runs one :class:`~nas.evaluate.tasks.Task` for many candidates: the evaluator a
    search uses is a runner holding its task.

    Args:
        task: what to compute for each candidate.
        timeout_s: per-candidate time limit; see each runner for how it is enforced.
    """

    def __init__(self, task: Task, *, timeout_s: float | None = None) -> None:
        if not isinstance(task, Task):
            raise TypeError(f"a runner needs a Task, got {type(task).__name__}")
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s={timeout_s!r} is invalid; pass seconds > 0 or null")
        self.task = task
        self.timeout_s = None if timeout_s is None else float(timeout_s)

    @property
    def data(self) -> dict:
        return self.task.data

    @property
    def train(self) -> TrainConfig:
        return self.task.train

    @property
    def fidelity(self) -> dict | None:
        """What scored the candidates, for the archive (the task's)."""
        return self.task.fidelity

    def check_space(self, space: Any) -> None:
        """The task's check that it can evaluate genomes of ``space``."""
        self.task.check_space(space)

    @property
    def slots(self) -> int:
        """Candidates this runner evaluates at once."""
        return 1

    def start(self) -> None:
        """Start whatever runs candidates (worker processes for the pool); the first `run`
        does it when this was not called. Nothing to start here."""

    def _task(self, c: Candidate) -> dict:
        return self.task.to_task(c)

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
        """Release workers / clusters and what the task holds (idempotent)."""
        self.task.close()

    def terminate(self) -> None:
        """Stop now (Ctrl-C): kill work in flight and release everything, without waiting
        for workers to finish (idempotent)."""
        self._abort()
        self.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.terminate()
        else:
            self.close()


class LocalRunner(Runner):
    """In this process, sequentially. A process cannot kill itself, so ``timeout_s`` acts as
    ``train.max_time_s`` (checked after every batch) when that is unset."""

    def _task(self, c: Candidate) -> dict:
        return with_time_limit(super()._task(c), self.timeout_s)

    def _run(self, tasks: Feed, done: Callable[[int, Result], None]) -> None:
        while (i := tasks.next()) is not None:
            done(i, Result(**run_task(tasks[i])))


# --------------------------------------------------------------------------------------------
# Pool of worker processes
# --------------------------------------------------------------------------------------------


def _pool_worker(conn: Any, gpu: int | None, threads: int | None) -> None:
    """Worker process: pin the GPU, import once, then train tasks until told to stop."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)  # before anything initialises CUDA
    try:
        if threads:
            torch.set_num_threads(threads)
        conn.send(("ready", os.getpid()))
        while True:
            msg = conn.recv()
            if msg is None:
                break
            idx, task = msg
            conn.send(("result", idx, run_task(task)))
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


class PoolRunner(Runner):
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
        **common: see `Runner`.
    """

    def __init__(self, task: Task, *, workers: int | None = None,
                 threads_per_worker: int | None = None, per_gpu: int = 1,
                 step_macs: float | None = None, **common: Any) -> None:
        super().__init__(task, **common)
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
        self._finalizer = weakref.finalize(self, PoolRunner._shutdown, self._workers)
        atexit.register(self._finalizer)

    def start(self) -> None:
        """Start the worker processes (each imports torch and Lightning once, a few
        seconds); the first `run` does it when this was not called. Until then this
        process has the machine to itself (the search measures its estimate then)."""
        if not self._finalizer.alive:  # closed
            raise RuntimeError("this PoolRunner is closed; make a new one")
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
        self.task.close()


__all__ = ["THREADED_STEP_MACS", "LocalRunner", "PoolRunner", "Runner", "plan_workers",
           "usable_cores"]
