"""The main job: search a space for the accuracy-versus-cost Pareto front.

    python -m nas.search +space=mobile                      # digits, surrogate NSGA-II
    python -m nas.search +space=residual data=cifar10 data.root=/data/cifar10.tar.gz
    python -m nas.search +space=mobile algorithm=random     # a comparator
    python -m nas.search resume=runs/2026-11-21/10-00-00    # continue a killed run
    python -m nas.search --multirun +space=mobile,residual seed=0,1,2

A run folder holds everything that must survive a crash: ``config.yaml`` (resolved),
``archive.sqlite`` (every evaluated architecture, written as each one finishes),
``state.pkl`` (the algorithm between iterations, random generators included) and
``status.json``. From these it writes ``evaluated.csv``, ``pareto.csv``, ``baselines.csv``,
``hypervolume.csv``, ``surrogate.csv``, ``pareto.png`` and ``pareto.html``.

Evaluation is asynchronous: the evaluator's slots (one per core or GPU by default) are kept
busy. Once the initial sample steers the algorithm, a slot's worth of candidates waits in the
queue; a freed slot starts one before the result is looked at, and whenever the queue runs
empty the algorithm is asked for a slot's worth more while every slot trains, knowing which
architectures are still training or queued (``Context.pending``). Generational comparators
(``nsga2``, ``optuna``) are asked for a whole generation once the previous one is told; with
a single slot every algorithm is asked for ``budget.per_iteration`` at a time, as nothing
runs while it thinks.

Resume: every ask is saved (``state.pkl``: the algorithm after the ask, random generators
included, and the proposals in order) before its architectures are queued, and every result
is archived the moment it arrives; on resume the proposals without a result are queued
again first, batches whose results all arrived are told, and the search goes on. Nothing is
lost or trained twice, and with one slot (``evaluator=local``) the archive equals that of an
uninterrupted run.

``fidelity=sha`` trains by asynchronous successive halving (ASHA, Li et al. 2020): every
architecture first trains ``fidelity.rungs[0]`` epochs of a schedule that spans the last
rung; whenever a rung's results allow, the best ``1/eta`` of them (by Pareto rank, then error,
as multi-objective ASHA ranks, Schmucker et al. 2021) continue from their checkpoint to the
next rung. Each rung is an archive row; the CSVs and fronts hold each architecture's highest
rung, with its ``epochs``.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from nas import pareto, registry
from nas.algorithms import Context, make_algorithm
from nas.archive import Archive, Record, final_rows
from nas.cost import human, totals
from nas.estimate import duration, estimate_search
from nas.evaluate import Candidate, Feed, check_evaluator, make_evaluator
from nas.latency import LatencyTable
from nas.objectives import (
    COSTS,
    Coster,
    check_satisfiable,
    cost_references,
    make_feasible,
    objectives_of,
)
from nas.registry import DataInfo, baseline_spec
from nas.report import write_front_plot
from nas.run import (
    atomic_write,
    hypervolume_of,
    load_state,
    save_state,
    split_archive,
    weights_path,
    write_status,
)
from nas.surrogate import MIN_POINTS, NotEnoughDataError
from nas.table import TableError, load_table

log = logging.getLogger("nas.search")

#: fidelity.kind values
FIDELITIES = ("fixed", "sha")


class SearchError(ValueError):
    """A configuration or run-folder problem, reported as one clear line."""


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C: the run folder is consistent (status ``interrupted``); the message says how
    to continue."""


# --------------------------------------------------------------------------------------------
# Configuration checks (before anything is written)
# --------------------------------------------------------------------------------------------


def min_evaluated(cfg: DictConfig) -> int:
    """Successful evaluations the configured algorithm needs before its first ``ask``."""
    return MIN_POINTS if (cfg.get("algorithm") or {}).get("name") == "surrogate" else 0


def fidelity_rungs(cfg: DictConfig) -> tuple[list[int] | None, float]:
    """``(rungs, eta)`` of ``fidelity=sha`` (epochs per rung, increasing; reduction
    factor), or ``(None, 0)`` for fixed fidelity; SearchError naming the fix otherwise."""
    f = cfg.get("fidelity") or {}
    kind = f.get("kind", "fixed")
    if kind not in FIDELITIES:
        raise SearchError(f"fidelity.kind={kind!r} is invalid; use fidelity=fixed or "
                          f"fidelity=sha")
    if kind == "fixed":
        return None, 0.0
    rungs, eta = f.get("rungs"), f.get("eta")
    ok = (rungs is not None and not isinstance(rungs, str) and len(rungs) >= 2
          and all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in rungs)
          and all(a < b for a, b in zip(rungs, list(rungs)[1:])))
    if not ok:
        raise SearchError(f"fidelity.rungs={show_value(rungs)} is invalid: give two or more epoch "
                          f"counts in increasing order, e.g. fidelity.rungs=[1,3,9]")
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not eta > 1:
        raise SearchError(f"fidelity.eta={eta!r} is invalid: the reduction factor must be a "
                          f"number > 1, e.g. fidelity.eta=3")
    return [int(r) for r in rungs], float(eta)


def show_value(v: Any) -> str:
    try:
        v = OmegaConf.to_container(v) if OmegaConf.is_config(v) else v
    except ValueError:
        pass
    return str(v).replace(" ", "") if isinstance(v, list) else repr(v)


# --------------------------------------------------------------------------------------------
# Costs
# --------------------------------------------------------------------------------------------


def _fidelity(cfg: DictConfig) -> dict:
    t = OmegaConf.to_container(cfg.train, resolve=True)
    keys = ("epochs", "batch_size", "train_fraction", "val_fraction", "optimizer", "lr",
            "limit_train_batches")
    return {"data": cfg.data.get("name"), **{k: t.get(k) for k in keys if k in t}}


# --------------------------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------------------------


class Search:
    """One search run in ``run_dir`` (fresh or resumed)."""

    def __init__(self, cfg: DictConfig, run_dir: Path, *, retry_failed: bool = False):
        self.cfg, self.run_dir = cfg, run_dir
        self.retry_failed = retry_failed  # the config is checked by run_search
        self.objectives = objectives_of(cfg)
        ev_cfg = OmegaConf.to_container(cfg.evaluator, resolve=True)
        self.table = None
        if ev_cfg.get("backend") == "table":
            # Looked-up results: the table, not a data set, fixes classes and channels.
            try:
                self.table = load_table(ev_cfg.get("source", "analog-nasbench"),
                                        num_classes=ev_cfg.get("num_classes"),
                                        in_channels=ev_cfg.get("in_channels"))
                self.table.check_metric(ev_cfg.get("metric", "baseline_accuracy"))
                for m in self.objectives[1:]:
                    if m not in COSTS:
                        self.table.check_metric(m)
            except TableError as e:
                raise SearchError(str(e)) from None
            self.num_classes, self.in_channels = self.table.num_classes, self.table.in_channels
        else:
            data_kw = OmegaConf.to_container(cfg.data, resolve=True)
            dm = registry.datamodule(**data_kw)
            self.num_classes, self.in_channels = dm.num_classes, dm.in_channels
        self.space = registry.space(OmegaConf.to_container(cfg.space, resolve=True),
                                    num_classes=self.num_classes, in_channels=self.in_channels)
        if self.table is not None:
            try:  # the table's genomes must be this space's
                self.table.check_space(self.space)
            except TableError as e:
                raise SearchError(str(e)) from None
        check_evaluator(cfg.evaluator, self.space)  # e.g. a supernet of another space config
        self.cost_names = [o for o in self.objectives[1:] if o in COSTS]
        self.metric_names = [o for o in self.objectives[1:] if o not in COSTS]
        table = None
        if "latency" in self.cost_names or cfg.constraints.get("max_latency_ms"):
            lat = cfg.get("latency", {}) or {}
            table = LatencyTable(None, batch=int(lat.get("batch", 1)),
                                 threads=lat.get("threads"), device=str(lat.get("device", "cpu")))
        self.coster = Coster(self.space, tuple(self.cost_names), table)
        constraints = OmegaConf.to_container(cfg.constraints, resolve=True)
        self.feasible, self.constrained = make_feasible(self.coster, constraints)
        try:
            check_satisfiable(self.space, self.coster, self.feasible, constraints)
        except ValueError as e:
            raise SearchError(str(e)) from None
        self.cost_col = COSTS[self.cost_names[0]]
        self.cost_cols = [COSTS[c] for c in self.cost_names]
        self.fidelity = _fidelity(cfg)
        if self.table is not None:
            self.fidelity = {"table": self.table.source,
                             "metric": ev_cfg.get("metric", "baseline_accuracy"),
                             "dataset": self.table.dataset}
        self.seed = int(cfg.seed)
        self.rungs, self.eta = fidelity_rungs(cfg)
        if self.rungs is not None:
            self.fidelity = {**self.fidelity, "epochs": self.rungs[-1],
                             "schedule_epochs": self.rungs[-1]}
        # trained states are kept where training happens (not for looked-up or inherited
        # scores): the front's weights (keep_weights) and successive halving's checkpoints
        self.trains = ev_cfg.get("backend") not in ("table", "supernet")
        self.keep_weights = int(cfg.get("keep_weights", 0) or 0) if self.trains else 0

    # -- archive views -------------------------------------------------------------------
    def search_records(self) -> list[Record]:
        """One record per searched architecture (its highest fidelity, the latest on
        ties), in the order of their first evaluation; from the rows this run holds in
        memory (``_rows``, every archived row), not a new read of the archive."""
        out = []
        for aid in self._order:
            best = None
            for r in self._rows[aid]:
                if r.space != "baseline" and (best is None
                                              or self._epochs(r) >= self._epochs(best)):
                    best = r
            if best is not None:
                out.append(best)
        return out

    @staticmethod
    def _epochs(r: Record) -> float:
        e = (r.fidelity or {}).get("epochs")
        return float(e) if isinstance(e, (int, float)) else -1.0

    def context(self) -> Context:
        """What the algorithm sees when asked: every architecture archived so far (at its
        highest fidelity) and those still training (``pending``)."""
        recs = self.search_records()
        if recs:
            X = np.array([r.genome for r in recs], dtype=np.int64)
            F = np.array([self.objective_vector(r) for r in recs], dtype=float)
        else:
            X = np.empty((0, self.space.n_var), np.int64)
            F = np.empty((0, len(self.objectives)))
        pend = [j["genome"] for j in self._jobs.values() if j["space"] != "baseline"
                and j["rung"] == 0]
        PX = np.array(pend, dtype=np.int64).reshape(len(pend), self.space.n_var)
        return Context(self.space, self.coster.cost, self.feasible, X, F,
                       {r.arch_id for r in recs}, self.constrained, self.coster.info,
                       objectives=tuple(self.objectives), costs=self.coster.costs,
                       pending={self.space.arch_id(g) for g in pend}, pending_X=PX)

    def objective_vector(self, r: Record) -> list[float]:
        """A record's objectives in config order; a failed candidate gets error 1.0 (and
        1.0 for every table metric), so it is never on a front but its costs stay real."""
        ok = r.status == "ok" and r.error is not None
        costs = iter(self.coster.costs(r.genome))
        out = []
        for o in self.objectives:
            if o == "error":
                out.append(float(r.error) if ok else 1.0)
            elif o in COSTS:
                out.append(next(costs))
            else:
                v = (r.extra or {}).get(o)
                out.append(1.0 - float(v) if ok and v is not None else 1.0)
        return out

    def fidelity_at(self, rung: int) -> dict:
        """The archive's fidelity of a result at successive halving's ``rung`` (the fixed
        fidelity without rungs)."""
        if self.rungs is None:
            return self.fidelity
        return {**self.fidelity, "epochs": self.rungs[rung]}

    def _record(self, result, info: dict, genome, space: str, iteration: int,
                fidelity: dict) -> Record:
        ok = result.status == "ok" and result.accuracy is not None and math.isfinite(
            result.accuracy)
        return Record(
            id=None, arch_id=info["arch_id"], space=space,
            genome=tuple(int(v) for v in genome) if genome is not None else None,
            spec=info["spec"].to_string(), macs=int(info["macs"]), params=int(info["params"]),
            activations=int(info["activations"]), latency_ms=info.get("latency_ms"),
            accuracy=float(result.accuracy) if ok else None,
            error=(1.0 - float(result.accuracy)) if ok else None,
            status="ok" if ok else "failed",
            reason=None if ok else (result.reason or "no accuracy reported"),
            # An evaluator may add to the fidelity (evaluator=supernet: which checkpoint).
            fidelity={**fidelity, **result.extra.get("fidelity", {})},
            seed=self.seed, iteration=iteration,
            train_seconds=result.train_seconds, created=time.time(),
            extra={k: v for k, v in {"test_accuracy": result.test_accuracy,
                                     "val_loss": result.val_loss,
                                     "images_per_second": result.images_per_second,
                                     "name": info.get("name"),
                                     # layers reused from train.init (transfer learning)
                                     "init_layers": result.extra.get("init_layers"),
                                     # evaluator=ray: the node that trained it, submissions
                                     "node": result.extra.get("node"),
                                     "attempts": result.extra.get("attempts"),
                                     # successive halving: epochs trained before this rung
                                     "start_epoch": result.extra.get("start_epoch"),
                                     **self._metric_values(result)}.items() if v is not None})

    def _metric_values(self, result) -> dict[str, float]:
        """Table-metric objectives of a looked-up result, as fractions."""
        row = (result.extra or {}).get("metrics") or {}
        return {m: row[m] / self.table.scale(m) for m in self.metric_names
                if self.table is not None and m in row and math.isfinite(row[m])}

    def failure_summary(self) -> str:
        """``8 of 10 candidates failed, most often: <reason> (x6)``."""
        recs = self.search_records()
        failed = [r.reason or "no reason" for r in recs if r.status == "failed"]
        if not failed:
            return f"{len(recs)} candidates evaluated, none failed"
        reason, n = Counter(failed).most_common(1)[0]
        return f"{len(failed)} of {len(recs)} candidates failed, most often: {reason} (x{n})"

    def failure_fix(self) -> str:
        """What to do when the candidates failed: fix what evaluates them, then resume."""
        if self.table is not None:
            return ("Check that evaluator.source holds the space's genomes and "
                    "evaluator.metric a value for them, then start a new run")
        return (f"Fix the recipe and continue (failed candidates are trained again): "
                f"python -m nas.search resume={self.run_dir} train.KEY=VALUE")

    # -- jobs ----------------------------------------------------------------------------
    def baseline_items(self, *, quiet: bool = False) -> list[dict]:
        """The cost info dicts (with ``name``) of each configured baseline that fits the
        data and ``baselines.max_macs`` (``quiet``: without logging the skipped ones)."""
        say = (lambda *a: None) if quiet else log.info
        cfg = self.cfg.get("baselines") or {}
        if self.table is not None:
            if cfg.get("names"):
                say("baselines skipped: evaluator=table only knows the genomes of its table")
            return []
        res = int(cfg.get("resolution") or self.space.decode(self.space.xu).input[1])
        items = []
        for name in cfg.get("names") or []:
            try:  # at the search's resolution, so that the front compares like with like
                spec = baseline_spec(name, DataInfo(None, self.num_classes, self.in_channels),
                                     res)
            except ValueError as e:
                if not quiet:
                    log.warning("baseline %s skipped: %s", name, str(e).splitlines()[0])
                continue
            macs, params, acts = totals(spec)
            if cfg.get("max_macs") and macs > float(cfg.max_macs):
                say("baseline %s skipped: %s MACs > baselines.max_macs", name, human(macs))
                continue
            lat = (float(self.coster.latency_table.predict(spec))
                   if self.coster.latency_table is not None else None)
            items.append({"arch_id": f"baseline:{name}", "name": name, "spec": spec,
                          "macs": macs, "params": params, "activations": acts,
                          "latency_ms": lat})
        return items

    def _done_at(self, arch_id: str, rung: int) -> Record | None:
        """The archived result of ``arch_id`` at ``rung`` (any evaluator additions to the
        fidelity allowed), or None."""
        want = self.fidelity_at(rung)
        for r in self._rows.get(arch_id, ()):
            if all(r.fidelity.get(k) == v for k, v in want.items()):
                return r
        return None

    def _submit(self, info: dict, genome, space: str, iteration: int, rung: int = 0,
                front: bool = False) -> None:
        resume = None
        if rung > 0:
            resume = self._weights_path(info["arch_id"]).read_bytes()
        last = self.rungs is None or rung == len(self.rungs) - 1
        cand = Candidate(arch_id=info["arch_id"], spec=info["spec"], seed=self.seed,
                         genome=None if genome is None else tuple(int(v) for v in genome),
                         space=space,
                         stop_epoch=None if last else self.rungs[rung], resume=resume,
                         keep_state=self.trains and (not last or (
                             space != "baseline" and self.keep_weights > 0)))
        i = self.feed.put(cand, front=front)
        self._jobs[i] = {"info": info, "genome": genome, "space": space,
                         "iteration": iteration, "rung": rung}

    def _weights_path(self, arch_id: str) -> Path:
        return weights_path(self.run_dir, arch_id)

    def _promote(self) -> None:
        """Successive halving: queue (first) every architecture in the best ``1/eta`` of
        its rung's results that has not gone on yet; baselines always go on."""
        if self.rungs is None:
            return
        busy = {(j["info"]["arch_id"], j["rung"]) for j in self._jobs.values()}
        for k in range(len(self.rungs) - 2, -1, -1):
            rows = [(aid, r) for aid in self._order for r in [self._done_at(aid, k)]
                    if r is not None]
            go = [aid for aid, r in rows if r.space == "baseline" and r.status == "ok"]
            ok = [(aid, r) for aid, r in rows if r.space != "baseline" and r.status == "ok"
                  and r.genome is not None]
            n_top = int(math.floor(sum(r.space != "baseline" for _, r in rows) / self.eta))
            if ok and n_top:
                F = np.array([self.objective_vector(r) for _, r in ok], dtype=float)
                ranks = pareto.pareto_ranks(F)
                order = sorted(range(len(ok)), key=lambda i: (ranks[i], F[i, 0]))
                go += [ok[i][0] for i in order[:n_top]]
            for aid in go:
                if self._done_at(aid, k + 1) is None and (aid, k + 1) not in busy:
                    r = self._done_at(aid, k)
                    info = (self._baseline_info[aid] if r.space == "baseline"
                            else self.coster.info(r.genome))
                    self._submit(info, r.genome, r.space, r.iteration, rung=k + 1, front=True)
                    busy.add((aid, k + 1))

    def _tell_ready(self, state: dict) -> bool:
        """Tell the algorithm every asked batch, in order, whose architectures all have a
        result; True if one was told."""
        told = False
        recs = None
        for b in state["batches"]:
            if b["told"]:
                continue
            ids = [self.space.arch_id(g) for g in b["genomes"]]
            if any(self._done_at(aid, 0) is None for aid in ids):
                break  # batches are told in the order they were asked
            recs = recs or {r.arch_id: r for r in self.search_records()}
            F = np.array([self.objective_vector(recs[aid]) for aid in ids], dtype=float)
            algo = state["algorithm"]
            algo.tell(self.context(), b["genomes"], F)
            b["told"] = True
            told = True
            df = self.evaluated_frame()
            row = {"iteration": b["iteration"], "evaluations": len(df),
                   "hypervolume": self.hypervolume(df)}
            if b.get("log") is not None and b["log"] < len(algo.log):
                row.update(algo.log[b["log"]])
            state["history"].append(row)
        return told

    def _schedule(self, state: dict) -> None:
        """Keep every slot busy: promotions first, then as many new architectures as slots
        are free (a generation at a time for generational algorithms); close the feed when
        nothing more will come."""
        cfg, algo = self.cfg, state["algorithm"]
        budget = int(cfg.budget.evaluations)
        slots = max(1, int(getattr(self.evaluator, "slots", 1)))
        self._promote()
        generational = getattr(algo, "generational", False)
        # With several slots, once the algorithm steers, it is asked for a slot's worth of
        # candidates whenever the queue runs empty, while every slot still trains: a slot
        # that frees starts a queued candidate at once instead of idling through an ask (a
        # second or two for the surrogate search), and asks are half as many as results.
        ahead = slots if slots > 1 and not generational else 0
        while not self._exhausted and state["evaluations"] < budget:
            busy = len(self._jobs)
            if busy >= slots + (1 if ahead else 0):  # asked only when nothing is queued
                break
            if generational and any(not b["told"] for b in state["batches"]):
                break  # a generation is told whole before the next is asked
            # Random samples (the algorithm's initial()) until the results can steer it:
            # when the initial sample is back but for what the other slots still train (at
            # least a few results; with one slot, all of it, as the synchronous search had
            # it); more slots than the initial sample fill with more random samples meanwhile.
            initial = int(cfg.budget.initial)
            first = not state["batches"] or (not generational and len(self.search_records())
                                             < max(min(initial, 4), initial - slots
                                                   + (1 if slots == 1 else 0)))
            if first and state["batches"] and busy >= slots:
                break  # random fill-ins only for a free slot, never queued ahead
            if not state["batches"]:
                n = initial
            elif (slots == 1 or generational) and not first:
                n = int(cfg.budget.per_iteration)
            else:
                n = slots + (0 if first else ahead) - busy
            n = min(n, budget - state["evaluations"])
            if not first:
                need = min_evaluated(cfg)
                n_ok = sum(r.status == "ok" for r in self.search_records())
                if n_ok < need:
                    if any(j["space"] != "baseline" for j in self._jobs.values()):
                        break  # wait: what is still training may succeed
                    raise NotEnoughDataError(f"{need} successful evaluations needed, "
                                             f"{n_ok} so far")
            it = state["iteration"]
            ctx = self.context()
            n_log = len(algo.log)
            genomes = algo.initial(ctx, n) if first else algo.ask(ctx, n)
            if not genomes:
                log.warning("the algorithm proposed nothing new (space exhausted?); "
                            "stopping at %d evaluations", state["evaluations"])
                self._exhausted = True
                break
            genomes = [tuple(int(v) for v in g) for g in genomes]
            state["batches"].append({"iteration": it, "genomes": genomes, "told": False,
                                     "log": n_log if len(algo.log) > n_log else None})
            state["iteration"] = it + 1
            state["evaluations"] += len(genomes)
            self.save_state(state)  # what was asked is on disk before it is queued
            for g in genomes:
                self._submit(self.coster.info(g), g, self.space.name, it)
        if not self._jobs:
            self.feed.close()

    def _on_result(self, state: dict, i: int, res) -> None:
        job = self._jobs.pop(i)
        info, genome, space, rung = job["info"], job["genome"], job["space"], job["rung"]
        blob = res.extra.pop("state", None)
        rec = self._record(res, info, genome, space, job["iteration"], self.fidelity_at(rung))
        if blob is not None and rec.status == "ok":
            path = self._weights_path(rec.arch_id)
            path.parent.mkdir(exist_ok=True)
            atomic_write(path, blob)  # before the archive row that may promote from it
        self.archive.add(rec)
        self._rows.setdefault(rec.arch_id, []).append(rec)
        if rec.arch_id not in self._order:
            self._order.append(rec.arch_id)
        if self.bill is not None and rung == 0:
            self.bill.finished(info["macs"], baseline=info.get("name"))
        if self.bar is not None:
            if rung == 0:
                self.bar.update(1)
            acc = "failed" if rec.accuracy is None else f"{rec.accuracy:.3f}"
            at = f" at {self.rungs[rung]} epochs" if self.rungs is not None else ""
            eta = "" if self.bill is None else f"eta {duration(self.bill.remaining_s())}, "
            self.bar.set_postfix_str(f"{eta}{info.get('name') or rec.arch_id}: {acc}{at}")
        if rec.status == "failed":
            log.warning("%s failed: %s", rec.arch_id, rec.reason)
        if space != "baseline" and rung == 0 and self._tell_ready(state):
            self.save_state(state)
            df = self.evaluated_frame()
            self.write_outputs(state)
            self.prune_weights()
            write_status(self.run_dir, "running", evaluations=len(df),
                         budget=int(self.cfg.budget.evaluations),
                         iteration=state["iteration"])
        self._schedule(state)

    def prune_weights(self, final: bool = False) -> None:
        """Keep the trained states of the search's front (at most ``keep_weights``, the
        most accurate first) and, during successive halving, those that may still be
        promoted; delete the rest."""
        folder = self.run_dir / "weights"
        if not folder.is_dir():
            return
        keep: set[str] = set()
        if self.keep_weights:
            front = self.pareto_frame()
            front = front[front["source"] == "search"].sort_values("error")
            keep |= set(front["arch_id"].head(self.keep_weights))
        if self.rungs is not None and not final:
            last = len(self.rungs) - 1
            keep |= {aid for aid in self._order if self._done_at(aid, last) is None}
        keep_files = {self._weights_path(a).name for a in keep}
        for f in folder.glob("*.ckpt"):
            if f.name not in keep_files:
                f.unlink(missing_ok=True)

    def estimate(self, threads: int | None = None):
        """The run's time estimated before training (`nas.estimate`), for one slot of
        ``threads`` torch threads; None without progress output, with ``estimate=false``
        or with nothing to train."""
        if not (self.cfg.get("progress", True) and self.cfg.get("estimate", True)):
            return None
        return estimate_search(self, threads=threads)

    def announce(self, bill):
        """``bill`` spread over the evaluator's slots, printed (with advice when long)."""
        if bill is None:
            return None
        bill.parallel(self.evaluator.slots)
        if self.bar is not None:
            self.bar.clear()
        print(bill.report(), file=sys.stderr, flush=True)
        return bill

    # -- state ---------------------------------------------------------------------------
    def load_state(self) -> dict:
        state = load_state(self.run_dir)
        if state is not None:
            if "batches" not in state:  # written before asynchronous evaluation
                state["batches"] = []
                state["evaluations"] = len(self.search_records())
            return state
        algo = make_algorithm(OmegaConf.to_container(self.cfg.algorithm, resolve=True),
                              seed=self.seed,
                              surrogate=OmegaConf.to_container(self.cfg.surrogate,
                                                               resolve=True))
        return {"iteration": 0, "evaluations": 0, "algorithm": algo, "history": [],
                "batches": []}

    def save_state(self, state: dict) -> None:
        save_state(self.run_dir, state)

    def step_macs(self) -> float:
        """MACs of a median candidate's training step (the pool sizes its threads by it)."""
        genomes = self.space.sample(64, np.random.default_rng(7))
        macs = float(np.median([self.coster.info(g)["macs"] for g in genomes]))
        return macs * 3 * int(self.cfg.train.batch_size)  # forward + backward ~ 3x forward

    # -- main loop -----------------------------------------------------------------------
    def run(self) -> dict:
        cfg = self.cfg
        budget = int(cfg.budget.evaluations)
        self.archive = Archive(self.run_dir / "archive.sqlite")
        refs = self.archive.get_meta("cost_refs")
        if refs is None:
            refs = {}
            if cfg.hypervolume.get("cost_ref"):  # the user's reference for the first cost
                refs[self.cost_names[0]] = float(cfg.hypervolume.cost_ref)
            refs.update(cost_references(self.space, self.coster, kinds=tuple(
                c for c in self.cost_names if c not in refs)))
            self.archive.set_meta("cost_refs", refs)
            self.archive.set_meta("cost_ref", refs[self.cost_names[0]])
        self.cost_refs = [float(refs[c]) for c in self.cost_names]
        self.cost_ref = self.cost_refs[0]
        if self.retry_failed:  # a resume changed the recipe or evaluator: train them again
            failed = self.archive.records(status="failed")
            if failed:
                log.warning("training again %d candidate(s) that failed under the previous "
                            "settings", len(failed))
            for r in failed:
                self.archive.remove(r.id)
        self._rows: dict[str, list[Record]] = {}
        self._order: list[str] = []
        for r in self.archive.records():
            self._rows.setdefault(r.arch_id, []).append(r)
            if r.arch_id not in self._order:
                self._order.append(r.arch_id)
        self._jobs: dict[int, dict] = {}
        self._exhausted = False
        state = self.load_state()
        write_status(self.run_dir, "running", evaluations=len(self.search_records()),
                     budget=budget)
        baselines = self.baseline_items()
        self._baseline_info = {b["arch_id"]: b for b in baselines}
        self.bar, self.bill = None, None
        if cfg.get("progress", True):
            todo = sum(b["arch_id"] not in self._rows for b in baselines)
            # the ETA is the bill's (postfix), not tqdm's mean rate over unlike candidates
            self.bar = tqdm(total=budget + todo, initial=len(self.search_records()),
                            desc=f"search {self.space.name}", unit="arch", dynamic_ncols=True,
                            file=sys.stderr, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} "
                                                        "[{elapsed}{postfix}]")
        train = OmegaConf.to_container(cfg.train, resolve=True)
        if self.rungs is not None:
            train["epochs"] = self.rungs[-1]  # the schedule spans the last rung
        data = OmegaConf.to_container(cfg.data, resolve=True)
        t_start = time.monotonic()
        hints = {"step_macs": self.step_macs()}
        try:
            with make_evaluator(cfg.evaluator, data=data, train=train,
                                hints=hints) as self.evaluator:
                # measured for one slot at its threads, before pool workers start (two
                # processes importing torch beside the probes inflate them 1.3-1.8x)
                self.bill = self.announce(self.estimate(
                    threads=getattr(self.evaluator, "threads", None)))
                self.evaluator.start()
                t_start = time.monotonic()  # the estimate is of what follows
                self.feed = Feed()
                for b in baselines:  # first: they are known up front
                    if self._done_at(b["arch_id"], 0) is None:
                        self._submit(b, None, "baseline", -1)
                for batch in state["batches"]:  # asked before a kill, or failures to retry
                    for g in batch["genomes"]:
                        if self._done_at(self.space.arch_id(g), 0) is None:
                            self._submit(self.coster.info(g), g, self.space.name,
                                         batch["iteration"])
                if self._tell_ready(state):
                    self.save_state(state)
                self._schedule(state)
                self.evaluator.run(self.feed, lambda i, res: self._on_result(state, i, res))
        except KeyboardInterrupt:
            self._finish(state, "interrupted")
            raise SearchInterrupted(
                f"interrupted after {len(self.search_records())} of {budget} evaluations "
                f"(nothing finished is lost); continue with: python -m nas.search "
                f"resume={self.run_dir}") from None
        except NotEnoughDataError:
            self._finish(state, "failed", reason=self.failure_summary())
            raise SearchError(
                f"search stopped: {self.failure_summary()}; the surrogate needs "
                f"{min_evaluated(cfg)} successful evaluations. {self.failure_fix()}") from None
        records = self.search_records()
        if records and not any(r.status == "ok" for r in records):
            self._finish(state, "failed", reason=self.failure_summary())
            raise SearchError(f"search failed: {self.failure_summary()}, so it found no "
                              f"architecture. {self.failure_fix()}")
        self.wall_s = time.monotonic() - t_start
        timing = {} if self.bill is None else {"estimated_s": round(self.bill.total_s, 1),
                                               "wall_s": round(self.wall_s, 1)}
        df = self._finish(state, "complete", **timing)
        ok = df[df["status"] == "ok"]
        return {"run_dir": str(self.run_dir), "hypervolume": self.hypervolume(df),
                "evaluations": len(df),
                "accuracy": float(ok["accuracy"].max()) if len(ok) else 0.0,
                # every rung's training counts
                "train_seconds": float(sum(r.train_seconds or 0.0 for rows in
                                           self._rows.values() for r in rows
                                           if r.space != "baseline"))}

    def close(self) -> None:
        """Close the archive (after :meth:`run`, once the caller has read what it needs)."""
        if getattr(self, "archive", None) is not None:
            self.archive.close()

    def _finish(self, state: dict, status: str, **extra: Any) -> pd.DataFrame:
        """Close the bar, write the CSVs and plots of what exists and the final status."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if status == "complete":  # otherwise the last state saved is the consistent one
            self.save_state(state)
        self.write_outputs(state, plots=True)
        self.prune_weights(final=status == "complete")
        df = self.evaluated_frame()
        write_status(self.run_dir, status, evaluations=len(df),
                     budget=int(self.cfg.budget.evaluations), hypervolume=self.hypervolume(df),
                     **extra)
        return df

    # -- objectives ----------------------------------------------------------------------
    def objective_columns(self) -> list[str]:
        """Frame column of each objective: error, cost columns, ``<metric>_error``."""
        return ["error" if o == "error" else COSTS[o] if o in COSTS else f"{o}_error"
                for o in self.objectives]

    def objective_refs(self) -> list[float]:
        """Per objective, the divisor of the hypervolume normalisation (1 for errors)."""
        refs = iter(self.cost_refs)
        return [next(refs) if o in COSTS else 1.0 for o in self.objectives]

    def hypervolume(self, df: pd.DataFrame) -> float:
        """Hypervolume of ``df``'s ok rows over every objective (costs / their reference,
        errors as they are), reference point 1 in each."""
        cols, refs = self.objective_columns(), self.objective_refs()
        errs = [c for c, o in zip(cols, self.objectives) if o not in COSTS]
        return hypervolume_of(df, [c for c, o in zip(cols, self.objectives) if o in COSTS],
                              [r for r, o in zip(refs, self.objectives) if o in COSTS],
                              error_cols=errs)

    # -- outputs -------------------------------------------------------------------------
    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(evaluated, baselines) from one read of the archive; table-metric objectives add
        a ``<metric>`` (accuracy) and a ``<metric>_error`` column."""
        # one row per architecture, at the highest fidelity (rung) it reached
        return split_archive(final_rows(self.archive.to_frame()), self.metric_names)

    def evaluated_frame(self) -> pd.DataFrame:
        return self.frames()[0]

    def pareto_frame(self, ev: pd.DataFrame | None = None,
                     bl: pd.DataFrame | None = None) -> pd.DataFrame:
        if ev is None or bl is None:
            ev, bl = self.frames()
        ev = ev.assign(source="search", name=ev["arch_id"])
        bl = bl.assign(source="baseline")
        both = pd.concat([ev, bl], ignore_index=True)
        both = both[(both["status"] == "ok") & both["error"].notna()].reset_index(drop=True)
        if both.empty:
            return both.assign(rank=pd.Series(dtype=int))
        # The search's own front (non-dominated among its evaluated architectures) and every
        # baseline; `rank` places each row in the union, so a search row with rank > 0 is
        # beaten by a baseline. Every objective counts.
        F = both[self.objective_columns()].to_numpy(float)
        both["rank"] = pareto.pareto_ranks(F).astype(int)
        is_search = (both["source"] == "search").to_numpy()
        own_front = np.zeros(len(both), bool)
        if is_search.any():
            own_front[np.flatnonzero(is_search)[pareto.non_dominated(F[is_search])]] = True
        front = both[~is_search | own_front]
        front = front.sort_values([self.cost_col, "error"]).reset_index(drop=True)
        cols = ["rank", "source", "name"] + [c for c in ev.columns if c not in ("source", "name")]
        return front[cols]

    def write_outputs(self, state: dict, plots: bool = False) -> None:
        d = self.run_dir
        ev, bl = self.frames()
        ev.to_csv(d / "evaluated.csv", index=False)
        bl.to_csv(d / "baselines.csv", index=False)
        pf = self.pareto_frame(ev, bl)
        pf.to_csv(d / "pareto.csv", index=False)
        hist = pd.DataFrame(state["history"])
        if not hist.empty:
            hist = hist.assign(cost=self.cost_col, cost_ref=self.cost_ref,
                               objectives=",".join(self.objective_columns()),
                               refs=",".join(f"{r:g}" for r in self.objective_refs()))
            cols = ["iteration", "evaluations", "hypervolume", "cost", "cost_ref", "objectives",
                    "refs"]
            hist[cols].to_csv(d / "hypervolume.csv", index=False)
            sur = [c for c in hist.columns if c.startswith(("surrogate", "cv_", "heldout_",
                                                            "train_size"))]
            if sur:
                hist[["iteration", "evaluations"] + sur].dropna(
                    subset=["surrogate"]).to_csv(d / "surrogate.csv", index=False)
        if plots:
            try:
                scored = (f"table {self.table.source}" if self.table is not None
                          else self.cfg.data.get("name"))
                write_front_plot(ev, pf[pf["source"] == "search"], bl,
                                 d / "pareto.png", d / "pareto.html",
                                 title=f"{self.space.name} on {scored}: "
                                       f"{len(ev)} evaluated", cost=self.cost_col,
                                 objectives=self.objective_columns())
            except Exception as e:  # noqa: BLE001 - a plot must never lose a finished run
                log.warning("plotting failed: %s", e)
