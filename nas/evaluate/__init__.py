"""Evaluators: a runner (where: this process, a pool of worker processes, a Ray cluster)
running a task (what: train, look up in a table, score with a supernet) for every
candidate, one :class:`Result` each.

``evaluate(candidates, callback=...)`` returns results in the order of the candidates and
calls ``callback(result)`` in the calling process as each one completes, so a search can
archive results as they arrive. ``run(feed, callback)`` evaluates from a :class:`Feed` that
the callback may keep filling, so every slot (``evaluator.slots``) stays busy while the
search asks for more (asynchronous evaluation).

* runners (:mod:`nas.evaluate.runners`, :mod:`nas.evaluate.cluster`): ``LocalRunner``
  (in this process, one after another), ``PoolRunner`` (persistent ``spawn`` workers, one
  per GPU or per core, a worker over its time limit or dead is replaced), ``RayRunner``
  (one Ray task per candidate; infrastructure failures retried elsewhere);
* tasks (:mod:`nas.evaluate.tasks`): ``TrainTask``, ``TableTask``, ``SupernetTask``,
  ``ZeroCostTask``.

The config's ``evaluator.backend`` (conf/evaluator/*.yaml) names a pair
(:data:`nas.registry.BACKENDS`): ``local``, ``pool`` and ``ray`` train; ``table`` looks up
in this process; ``supernet`` and ``zero_cost`` score in this process (``workers: 0``) or
in a pool of N workers. A candidate never takes the others down: divergence, out-of-memory, time-outs,
crashed workers and any exception become ``Result(status="failed", reason=...)``. Tasks
travel to workers as plain dicts; results come back as plain dicts.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from nas import checks, registry
from nas.config import plain
from nas.evaluate.candidate import Candidate, Feed, Result, failure_reason
from nas.evaluate.runners import LocalRunner, PoolRunner, Runner, plan_workers, usable_cores
from nas.evaluate.tasks import (
    SupernetTask,
    TableTask,
    Task,
    TrainTask,
    ZeroCostTask,
    check_zero_cost_options,
    run_task,
)
from nas.supernet import check_space, load_supernet
from nas.train import TrainConfig

#: the evaluator options (``evaluator.backend``) of conf/evaluator/
BACKENDS = tuple(registry.BACKENDS)

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
    ("zero_cost", "workers"): {"kind": int, "lo": 0},
}
#: backends that run in the search's process with ``workers: 0`` and in a pool of N
#: worker processes with ``workers: N``
_POOL_BY_WORKERS = ("supernet", "zero_cost")


def check_evaluator_options(cfg: Mapping) -> None:
    """Raise ValueError naming the key and the fix for an unknown backend, an option the
    backend does not take, or an option value out of range; nothing is started."""
    opts = dict(plain(cfg))
    backend = opts.pop("backend", None)
    if backend not in BACKENDS:
        raise checks.unknown("evaluator", backend, BACKENDS, "evaluator=NAME")
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
    if backend == "zero_cost":
        check_zero_cost_options(**opts)


def check_evaluator(cfg: Mapping, space: Any) -> None:
    """Raise ValueError when the evaluator config cannot score genomes of ``space`` (a
    search calls this before it writes anything): for ``supernet``, a missing, corrupt or
    foreign checkpoint, or one of another space or space config."""
    opts = dict(plain(cfg))
    if opts.get("backend") == "zero_cost":
        check_zero_cost_options(**opts)
        return
    if opts.get("backend") != "supernet":
        return
    if not opts.get("checkpoint"):
        raise ValueError("evaluator=supernet needs evaluator.checkpoint=PATH, the "
                         "checkpoints/last.ckpt of a `python -m nas.supernet` run")
    supernet, _ = load_supernet(opts["checkpoint"])
    check_space(supernet, space, opts["checkpoint"])


# --------------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------------


def _split(backend: str, opts: Mapping) -> tuple[str, str, dict, dict]:
    """``(task, runner, task options, runner options)`` of a backend's options: each key
    goes to whichever of the two takes it. A supernet's ``workers`` picks its runner (0: in
    this process; N: a pool of N workers)."""
    task, runner = registry.BACKENDS[backend]
    opts = dict(opts)
    if backend in _POOL_BY_WORKERS and opts.get("workers"):
        runner = "pool"
    if backend in _POOL_BY_WORKERS and not opts.get("workers"):
        opts.pop("workers", None)
        opts.pop("threads_per_worker", None)
    task_keys, runner_keys = _keys(registry.TASKS.get(task)), _keys(registry.RUNNERS.get(runner))
    return (task, runner, {k: v for k, v in opts.items() if k in task_keys},
            {k: v for k, v in opts.items() if k in runner_keys and k not in task_keys})


def _keys(cls: type) -> set[str]:
    """Keyword-only constructor arguments of ``cls`` and its bases."""
    return {p.name for c in cls.__mro__ if "__init__" in vars(c)
            for p in inspect.signature(c.__init__).parameters.values()
            if p.kind is p.KEYWORD_ONLY} - {"data", "train", "test"}


def backend_options(backend: str) -> set[str]:
    """Config keys (besides ``backend``) the evaluator ``backend`` accepts: its task's and
    its runner's options."""
    task, runner = registry.BACKENDS[backend]
    keys = _keys(registry.TASKS.get(task)) | _keys(registry.RUNNERS.get(runner))
    if backend in _POOL_BY_WORKERS:
        keys |= {"workers", "threads_per_worker"}
    return keys


def make_evaluator(cfg: Mapping, *, data: Mapping, train: TrainConfig | Mapping,
                   hints: Mapping | None = None, test: bool = False) -> Runner:
    """The evaluator ``cfg.backend`` names (see :data:`BACKENDS`), its task and runner built
    with the rest of ``cfg`` as their options (conf/evaluator/*.yaml). ``hints`` (e.g.
    ``{"step_macs": ...}``, what the caller knows of its candidates) go to the runners that
    take them."""
    check_evaluator_options(cfg)
    opts = dict(plain(cfg))
    backend = opts.pop("backend")
    task_name, runner_name, task_opts, runner_opts = _split(backend, opts)
    runner_keys = _keys(registry.RUNNERS.get(runner_name))
    for k, v in (hints or {}).items():
        if k in runner_keys and runner_opts.get(k) is None:
            runner_opts[k] = v
    task = registry.TASKS.build(task_name, data=data, train=train, test=test, **task_opts)
    return registry.RUNNERS.get(runner_name)(task, **runner_opts)


__all__ = ["BACKENDS", "Candidate", "Feed", "LocalRunner", "PoolRunner", "Result", "Runner",
           "SupernetTask", "TableTask", "Task", "TrainTask", "ZeroCostTask", "backend_options",
           "check_evaluator", "check_evaluator_options", "failure_reason", "make_evaluator",
           "plan_workers", "run_task", "usable_cores"]
