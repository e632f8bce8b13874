"""What an evaluator computes for a candidate: train it, look it up in a table, score it
with a supernet's inherited weights.

A :class:`Task` is created once per search in the search's process, from the evaluator
config (its options are checked there, before anything runs). :meth:`Task.to_task` turns
a :class:`~nas.evaluate.candidate.Candidate` into plain data, a dict that crosses process
and machine boundaries (pickled to a pool worker, shipped to a Ray node), and
:func:`run_task` computes the candidate's result from that dict in whichever process the
runner chose, never raising: every failure is a failed result with its reason. What a
process must load once for many candidates (a supernet, a table) it keeps in
:data:`PROCESS_CACHE` between tasks.

* :class:`TrainTask` (``evaluator=local | pool | ray``): train from scratch with the
  recipe (:func:`nas.train.train_spec`), optionally to a rung of successive halving and from
  a checkpoint.
* :class:`TableTask` (``evaluator=table``): look the genome up in a table of known results.
* :class:`SupernetTask` (``evaluator=supernet``): inherited weights, BN recalibrated,
  scored on the validation split; candidates that are not subnets (the baselines) train
  from scratch.
* :class:`ZeroCostTask` (``evaluator=zero_cost``): zero-cost proxies of the untrained
  network on one training batch, ranked against a reference sample of the space.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from nas import checks, registry, zero_cost
from nas.config import plain
from nas.cost import totals
from nas.evaluate.candidate import Candidate, Result, failure_reason, release_cuda_memory
from nas.spec import ArchSpec
from nas.supernet import InheritedScorer, check_space, load_supernet
from nas.table import load_table
from nas.train import TrainConfig, train_spec

log = logging.getLogger(__name__)


class Task:
    """What to compute for a candidate, with one data config and one training recipe.

    Args:
        data: ``make_datamodule`` kwargs with ``name`` (see `nas.train.train_spec`).
        train: the recipe (TrainConfig or mapping).
        test: also report test accuracy (final reports only; searches leave it off).
    """

    #: the kind :func:`run_task` dispatches on
    name: ClassVar[str] = "train"

    def __init__(self, *, data: Mapping, train: TrainConfig | Mapping | None = None,
                 test: bool = False) -> None:
        self.data = dict(plain(data))
        if not self.data.get("name"):
            raise ValueError("evaluator data config needs 'name', e.g. {'name': 'digits'}")
        self.train = TrainConfig.from_any(train)
        self.test = bool(test)

    @property
    def fidelity(self) -> dict | None:
        """What scored the candidates, for the archive (None: the recipe says it)."""
        return None

    def check_space(self, space: Any) -> None:
        """ValueError when this task cannot evaluate genomes of ``space`` (a search calls it
        before it writes anything)."""

    def train_task(self, c: Candidate) -> dict:
        """``c`` as a training task (the default, and the baselines of every task)."""
        task = {"task": "train", "arch_id": c.arch_id, "spec": c.spec.to_json(),
                "seed": int(c.seed), "data": self.data, "train": self.train.to_dict(),
                "test": self.test}
        if c.stop_epoch is not None or c.resume is not None or c.keep_state:
            task.update(stop_epoch=c.stop_epoch, resume=c.resume, keep_state=c.keep_state)
        return task

    def to_task(self, c: Candidate) -> dict:
        """``c`` as plain data for :func:`run_task`."""
        return self.train_task(c)

    def close(self) -> None:
        """Release what the task holds in this process."""


class TrainTask(Task):
    """Train from scratch with the recipe (:func:`nas.train.train_spec`)."""

    name = "train"


class TableTask(Task):
    """Look each candidate's genome up in a table (``nas.table``) instead of training it.

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

    name = "table"

    def __init__(self, *, source: str = "analog-nasbench", metric: str = "baseline_accuracy",
                 num_classes: int | None = None, in_channels: int | None = None,
                 **common: Any) -> None:
        super().__init__(**common)
        self.source, self.metric = source, metric
        self.num_classes, self.in_channels = num_classes, in_channels
        self.table = load_table(source, num_classes=num_classes, in_channels=in_channels)
        self.table.check_metric(metric)
        self.scale = self.table.scale(metric)

    @property
    def fidelity(self) -> dict:
        unit = "percent" if self.scale == 100.0 else "fraction"
        return {"table": self.source, "metric": self.metric, "metric_unit": unit,
                "dataset": self.table.dataset}

    def to_task(self, c: Candidate) -> dict:
        return {"task": "table", "arch_id": c.arch_id,
                "genome": None if c.genome is None else [int(g) for g in c.genome],
                "options": {"source": self.source, "metric": self.metric,
                            "num_classes": self.num_classes, "in_channels": self.in_channels}}


class SupernetTask(Task):
    """Score candidates with weights inherited from a trained supernet (`nas.supernet`):
    the subnet is extracted, optionally fine-tuned for ``finetune_steps`` steps, its BN
    statistics are recalibrated on ``calib_batches`` training batches, and its accuracy is
    measured on the validation split (the same split the from-scratch proxy uses). Each
    result's ``extra["fidelity"]`` names the checkpoint by the sha256 of its content.

    Candidates that are not genomes of the supernet's space (the baselines) are trained
    from scratch with the recipe.

    Args:
        checkpoint: ``checkpoints/last.ckpt`` of a ``python -m nas.supernet`` run.
        calib_batches: training batches (of ``train.batch_size``) for BN recalibration.
        finetune_steps: optimiser steps of the recipe before scoring (0: none).
    """

    name = "supernet"

    def __init__(self, *, checkpoint: str | None = None, calib_batches: int = 10,
                 finetune_steps: int = 0, **common: Any) -> None:
        super().__init__(**common)
        if not checkpoint:
            raise ValueError("evaluator=supernet needs evaluator.checkpoint=PATH, the "
                             "checkpoints/last.ckpt of a `python -m nas.supernet` run")
        checks.integer("evaluator.calib_batches", calib_batches, lo=1)
        checks.integer("evaluator.finetune_steps", finetune_steps, lo=0)
        self.supernet, sha256 = load_supernet(checkpoint)
        self.options = {"checkpoint": str(checkpoint), "sha256": sha256,
                        "calib_batches": calib_batches, "finetune_steps": finetune_steps}

    @property
    def fidelity(self) -> dict:
        return {"evaluator": "supernet", "checkpoint_sha256": self.options["sha256"][:16],
                "calib_batches": self.options["calib_batches"],
                "finetune_steps": self.options["finetune_steps"]}

    def check_space(self, space: Any) -> None:
        """ValueError unless ``space`` is the supernet's space with the same config."""
        check_space(self.supernet, space, self.options["checkpoint"])

    def to_task(self, c: Candidate) -> dict:
        space = self.supernet.space
        if c.genome is None or c.space != space.name:
            return self.train_task(c)  # a baseline: trained from scratch
        if space.arch_id(c.genome) != c.arch_id:
            raise ValueError(f"candidate {c.arch_id} is not a genome of the supernet's "
                             f"{space.name} space config (another config made its id); "
                             f"search with the checkpoint's space config")
        return {"task": "supernet", "arch_id": c.arch_id, "seed": int(c.seed),
                "genome": [int(g) for g in c.genome], "data": self.data,
                "train": self.train.to_dict(), "options": self.options}


class ZeroCostTask(Task):
    """Score candidates with zero-cost proxies (:mod:`nas.zero_cost`) of the untrained
    network on one mini-batch of the training images: no training.

    ``proxy`` is one of :data:`nas.zero_cost.PROXIES`, or a combination of
    :data:`nas.zero_cost.COMBINATIONS` (``z_mean``, ``rank_mean``) of the proxies in
    ``combine``. The result's ``score`` is the proxy's raw value (a combination's value in
    0..1); what the search minimises, the result's ``error``, is
    :func:`nas.zero_cost.error` against a reference sample of ``reference`` random networks
    of the space scored the same way before the first candidate, so that every proxy
    shares the error's 0..1 axis and keeps its own order of the networks. Baselines are
    scored like the candidates. No accuracy is reported: a proxy's score is not one.

    Args:
        proxy: the proxy, or a combination.
        combine: the proxies a combination uses (default
            :data:`nas.zero_cost.DEFAULT_COMBINATION`).
        batch: images of the batch (default: each proxy's :data:`nas.zero_cost.BATCH`).
        reference: random networks of the space in the reference sample.
        seed: seeds the batch, the networks' initial weights and the reference sample.
        init: the initial weights the proxies see (:data:`nas.zero_cost.INITS`).
    """

    name = "zero_cost"

    def __init__(self, *, proxy: str = "z_mean", combine: Sequence[str] | None = None,
                 batch: int | None = None, reference: int = 64, seed: int = 0,
                 init: str = "kaiming", **common: Any) -> None:
        super().__init__(**common)
        proxies = check_zero_cost_options(proxy=proxy, combine=combine, batch=batch,
                                          reference=reference, seed=seed, init=init)
        self.init = init
        self.proxy, self.proxies = proxy, tuple(dict.fromkeys(proxies))
        self.method = proxy if proxy in zero_cost.COMBINATIONS else "z_mean"
        self.batches = {p: int(batch or zero_cost.BATCH[p]) for p in self.proxies}
        self.n_reference, self.seed = int(reference), int(seed)
        self.reference: dict[str, list[float]] | None = None
        #: (MACs, seconds) of each reference network scored (the estimate's measurement)
        self.reference_seconds: list[tuple[float, float]] = []

    @property
    def fidelity(self) -> dict:
        return {"evaluator": "zero_cost", "proxy": self.proxy,
                "proxies": list(self.proxies), "reference": self.n_reference,
                "proxy_seed": self.seed,
                **({"init": self.init} if self.init != "kaiming" else {})}

    def check_space(self, space: Any) -> None:
        """Score the reference sample of ``space`` in this process (once per search; a
        progress bar on a terminal), timing each network for the search's estimate
        (:attr:`reference_seconds`); ValueError when the proxies fail on most of it."""
        ref: dict[str, list[float]] = {p: [] for p in self.proxies}
        failed: list[str] = []
        self.reference_seconds = []
        genomes = space.sample(self.n_reference, np.random.default_rng(self.seed))
        for genome in tqdm(genomes, desc=f"zero-cost reference ({self.proxy})", unit="net",
                           disable=None, leave=False, file=sys.stderr):
            spec = space.decode(genome)
            t0 = time.perf_counter()
            try:
                values = proxy_values(self.proxies, spec, self.data, self.train,
                                      self.batches, self.seed, init=self.init)
            except zero_cost.ProxyError as e:
                failed.append(str(e))
                continue
            self.reference_seconds.append((float(totals(spec)[0]), time.perf_counter() - t0))
            for p in self.proxies:
                ref[p].append(values[p])
        if len(failed) > self.n_reference // 2:
            raise ValueError(f"zero-cost proxy {self.proxy} failed on {len(failed)} of the "
                             f"{self.n_reference} reference networks of the {space.name} "
                             f"space ({failed[0]}); choose another evaluator.proxy")
        self.reference = ref

    def to_task(self, c: Candidate) -> dict:
        if self.reference is None:
            raise RuntimeError("ZeroCostTask.check_space(space) scores the reference sample "
                               "before the first candidate")
        return {"task": "zero_cost", "arch_id": c.arch_id, "spec": c.spec.to_json(),
                "data": self.data, "train": self.train.to_dict(),
                "options": {"proxy": self.proxy, "method": self.method,
                            "proxies": list(self.proxies), "batches": self.batches,
                            "seed": self.seed, "init": self.init,
                            "reference": self.reference}}


def check_zero_cost_options(*, proxy: Any = "z_mean", combine: Any = None, batch: Any = None,
                            reference: Any = 64, seed: Any = 0, init: Any = "kaiming",
                            **_: Any) -> tuple[str, ...]:
    """The proxies ``evaluator=zero_cost`` computes with these options; ValueError naming
    the option and the fix otherwise (a search calls it before it writes anything)."""
    if proxy in zero_cost.COMBINATIONS:
        proxies = tuple(combine or zero_cost.DEFAULT_COMBINATION)
    elif proxy in zero_cost.PROXIES:
        if combine:
            raise ValueError(f"evaluator.combine={list(combine)} goes with a combination "
                             f"(evaluator.proxy={' | '.join(zero_cost.COMBINATIONS)}), not "
                             f"with evaluator.proxy={proxy}; drop evaluator.combine")
        proxies = (proxy,)
    else:
        raise checks.unknown("zero-cost proxy", proxy,
                             (*zero_cost.PROXIES, *zero_cost.COMBINATIONS),
                             "evaluator.proxy=NAME")
    if isinstance(proxies, str) or not all(isinstance(p, str) for p in proxies):
        raise ValueError(f"evaluator.combine={combine!r} is invalid; pass a list of proxy "
                         f"names, e.g. evaluator.combine=[synflow,naswot,jacov]")
    for p in proxies:
        if p not in zero_cost.PROXIES:
            raise checks.unknown("zero-cost proxy", p, zero_cost.PROXIES,
                                 "evaluator.combine=[NAME,...]")
    if batch is not None:
        checks.integer("evaluator.batch", batch, lo=1)
    checks.integer("evaluator.reference", reference, lo=2)
    checks.integer("evaluator.seed", seed, lo=0)
    if init not in zero_cost.INITS:
        raise checks.unknown("initialisation", init, zero_cost.INITS, "evaluator.init=NAME")
    return tuple(dict.fromkeys(proxies))


def proxy_batch(data: Mapping, train: TrainConfig | Mapping, resolution: int, n: int,
                seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images of the training split (the recipe's splits; a seeded draw), normalised
    and resized to ``resolution`` as training serves them but not augmented, and their
    labels."""
    cfg = TrainConfig.from_any(train)
    name, kwargs = registry.split_data_config(data)
    dm = registry.datamodule(name, **kwargs, train_fraction=cfg.train_fraction,
                             val_fraction=cfg.val_fraction, resolution=resolution, seed=seed)
    x, y = dm.arrays("train")
    idx = np.sort(np.random.default_rng(seed).choice(len(y), size=min(n, len(y)),
                                                     replace=False))
    xb = torch.from_numpy(np.ascontiguousarray(x[idx])).permute(0, 3, 1, 2)
    yb = torch.from_numpy(y[idx].astype(np.int64))
    xb, yb = dm.on_after_batch_transfer((xb, yb))
    return xb.contiguous(), yb


def proxy_values(proxies: Sequence[str], spec: ArchSpec, data: Mapping,
                 train: TrainConfig | Mapping, batches: Mapping[str, int],
                 seed: int, init: str = "kaiming") -> dict[str, float]:
    """Each proxy of ``spec`` (its weights initialised as ``init`` says), proxies of one
    batch size sharing the passes they can; the batch is loaded once per process, data set,
    resolution and size."""
    res = int(spec.input[1])
    train_d = TrainConfig.from_any(train).to_dict()
    out: dict[str, float] = {}
    for size in sorted({int(batches[p]) for p in proxies}):
        group = [p for p in proxies if int(batches[p]) == size]
        x, y = PROCESS_CACHE.get(f"proxy_batch:{res}:{size}", [data, train_d, seed],
                                 lambda size=size: proxy_batch(data, train_d, res, size, seed))
        out.update(zero_cost.scores(group, spec, x, y, seed=seed, init=init))
    return out


# --------------------------------------------------------------------------------------------
# Running a task, in any process
# --------------------------------------------------------------------------------------------


class ProcessCache:
    """What this process loaded for the tasks it ran, kept for the next ones (a pool worker
    keeps its supernet, its calibration and validation images, its table), one entry per
    kind: a task with other options replaces it."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, Any]] = {}

    def get(self, kind: str, key: Any, make: Any) -> Any:
        text = json.dumps(key, sort_keys=True, default=str)
        held = self._entries.get(kind)
        if held is None or held[0] != text:
            self._entries[kind] = (text, make())
        return self._entries[kind][1]


#: this process's loaded resources (see :class:`ProcessCache`)
PROCESS_CACHE = ProcessCache()


def _train(task: Mapping) -> Result:
    spec = ArchSpec.from_json(task["spec"])
    out = train_spec(spec, data=task["data"], train=task["train"], seed=int(task["seed"]),
                     test=bool(task.get("test", False)), stop_epoch=task.get("stop_epoch"),
                     resume=task.get("resume"), keep_state=bool(task.get("keep_state", False)))
    return Result.from_train(str(task["arch_id"]), out)


def _lookup(task: Mapping) -> Result:
    opts, arch_id, genome = task["options"], str(task["arch_id"]), task.get("genome")
    table = PROCESS_CACHE.get("table", opts, lambda: load_table(
        opts["source"], num_classes=opts["num_classes"], in_channels=opts["in_channels"]))
    source, metric = opts["source"], opts["metric"]
    if genome is None:
        return Result.failed(arch_id, f"not in table {source}: only genomes of the table's "
                                      f"space can be looked up")
    row = table.lookup(genome)
    if row is None:
        return Result.failed(arch_id, f"genome {table.key(genome)} is not in table {source}")
    acc = row[metric]
    if not math.isfinite(acc):
        return Result.failed(arch_id, f"table {source} has no {metric} for genome "
                                      f"{table.key(genome)}")
    seconds = row.get(table.seconds) if table.seconds else None
    return Result(arch_id=arch_id, status="ok", accuracy=acc / table.scale(metric),
                  train_seconds=seconds, extra={"metrics": row})


def _score(task: Mapping) -> Result:
    opts = task["options"]
    key = [opts["checkpoint"], opts["calib_batches"], opts["finetune_steps"], task["data"],
           task["train"]]
    scorer = PROCESS_CACHE.get("supernet", key, lambda: InheritedScorer(
        opts["checkpoint"], data=task["data"], train=task["train"],
        calib_batches=opts["calib_batches"], finetune_steps=opts["finetune_steps"]))
    if scorer.sha256 != opts["sha256"]:
        raise ValueError(f"supernet checkpoint {opts['checkpoint']} changed while the search "
                         f"ran (sha256 {scorer.sha256[:16]}, the search began with "
                         f"{opts['sha256'][:16]}); restore it or start a new search")
    s = scorer.score(task["genome"], seed=int(task["seed"]))
    return Result(arch_id=str(task["arch_id"]), status="ok", accuracy=s["accuracy"],
                  val_loss=s["val_loss"], train_seconds=s["seconds"],
                  extra={"fidelity": dict(scorer.fidelity), "calib_images": s["calib_images"],
                         "val_images": s["val_images"]})


def _proxy(task: Mapping) -> Result:
    opts = task["options"]
    spec = ArchSpec.from_json(task["spec"])
    values = proxy_values(opts["proxies"], spec, task["data"], task["train"], opts["batches"],
                          opts["seed"], init=opts.get("init", "kaiming"))
    err = zero_cost.error(values, opts["reference"], method=opts["method"])
    proxy = opts["proxy"]
    score = (zero_cost.combine(values, opts["reference"], method=proxy)
             if proxy in zero_cost.COMBINATIONS else values[proxy])
    return Result(arch_id=str(task["arch_id"]), status="ok", score=score, error=err,
                  extra={"proxies": values})


#: task kind -> what computes it
_RUN = {"train": _train, "table": _lookup, "supernet": _score, "zero_cost": _proxy}


def run_task(task: Mapping) -> dict:
    """The result (a :class:`Result` as a dict) of one task dict made by
    :meth:`Task.to_task`, in whatever process the runner chose; never raises."""
    t0 = time.perf_counter()
    arch_id = str(task.get("arch_id"))
    try:
        result = _RUN[task.get("task", "train")](task)
    except Exception as e:  # noqa: BLE001 - every failure becomes a failed result
        log.debug("candidate %s failed:\n%s", arch_id, traceback.format_exc())
        result = Result.failed(arch_id, failure_reason(e))
        release_cuda_memory()
    result.extra["wall_seconds"] = time.perf_counter() - t0
    return result.to_dict()


def with_time_limit(task: Mapping, seconds: float | None) -> dict:
    """``task`` with ``seconds`` as its recipe's ``max_time_s`` where that is unset (a
    process cannot kill itself: the limit of an in-process runner is the recipe's)."""
    if seconds is None or "train" not in task or task["train"].get("max_time_s") is not None:
        return dict(task)
    train = replace(TrainConfig.from_any(task["train"]), max_time_s=seconds).to_dict()
    return {**task, "train": train}


__all__ = ["PROCESS_CACHE", "ProcessCache", "SupernetTask", "TableTask", "Task", "TrainTask",
           "ZeroCostTask", "check_zero_cost_options", "proxy_batch", "proxy_values", "run_task",
           "with_time_limit"]
