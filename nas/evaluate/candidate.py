"""The candidates an evaluator receives, the results it returns, the feed it pulls from."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from nas.spec import ArchSpec
from nas.train import CandidateFailed

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
    params, epochs and wall_seconds where known. An evaluator that measures no accuracy
    (zero-cost proxies) reports ``score`` (its own quantity, higher better) and ``error``
    (what the search minimises, in [0, 1]) instead."""

    arch_id: str
    status: str  # "ok" | "failed"
    reason: str | None = None
    accuracy: float | None = None
    score: float | None = None
    error: float | None = None
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
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, CandidateFailed):
        return msg
    oom = isinstance(e, MemoryError | torch.cuda.OutOfMemoryError)
    if oom:
        return f"out of memory: {msg or type(e).__name__}"
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def release_cuda_memory() -> None:
    """Give cached CUDA memory back after a candidate failed (its tensors are gone)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


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


__all__ = ["Candidate", "Feed", "Result", "failure_reason", "release_cuda_memory"]
