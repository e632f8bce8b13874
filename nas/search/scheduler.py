"""The search loop: :class:`Search` asks the algorithm, queues what it proposes, archives
each result the moment it arrives, tells the algorithm, and hands what it writes besides
the archive and its state to :class:`~nas.search.outputs.SearchOutputs`."""


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
from nas.archive import Archive, Record
from nas.cost import human, totals
from nas.estimate import duration, estimate_search
from nas.evaluate import Candidate, Feed, check_evaluator, make_evaluator
from nas.evaluate.proxies import ProxyFeatures
from nas.latency import CarriedLatencyTable, LatencyTable
from nas.objectives import (
    COSTS,
    Coster,
    check_constraints,
    check_satisfiable,
    cost_column,
    cost_references,
    is_cost,
    limits_of,
    make_feasible,
    metric_column,
    objectives_of,
)
from nas.registry import DataInfo, baseline_spec
from nas.run import RunFolder, atomic_write, quality_label
from nas.search.outputs import SearchOutputs
from nas.search.settings import (
    SearchError,
    SearchInterrupted,
    fidelity_of,
    fidelity_rungs,
    min_evaluated,
)
from nas.surrogate import NotEnoughDataError
from nas.table import TableError, load_table

log = logging.getLogger("nas.search")

class Search:
    """One search run in ``run_dir`` (fresh or resumed)."""

    def __init__(self, cfg: DictConfig, run_dir: Path, *, retry_failed: bool = False):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.folder = RunFolder(self.run_dir)
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
                    if not is_cost(m):
                        self.table.check_metric(metric_column(m))
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
        self.cost_names = [o for o in self.objectives[1:] if is_cost(o)]
        self.metric_names = [metric_column(o) for o in self.objectives[1:] if not is_cost(o)]
        # a device's costs by genome (costs.table), else the table evaluator's own columns
        self.cost_table = None
        constraints = OmegaConf.to_container(cfg.constraints, resolve=True)
        try:
            if (cfg.get("costs") or {}).get("table"):
                self.cost_table = load_table(str(cfg.costs.table), space=self.space,
                                             key="costs.table")
            columns = self.cost_table if self.cost_table is not None else self.table
            for o in self.cost_names:
                col = cost_column(o)
                if o.startswith("min:") and (columns is None
                                             or col not in columns.frame.columns):
                    have = ", ".join(map(str, columns.frame.columns)) if columns else "none"
                    raise SearchError(f"objective {o}: no column {col!r} in "
                                      f"{'the cost table ' + columns.source if columns else 'any table'}"
                                      f" (columns: {have}); name one of them, e.g. "
                                      f"objectives=[error,min:COL]")
            check_constraints(constraints, columns)
        except (TableError, ValueError) as e:
            raise SearchError(str(e)) from None
        self.cost_col = cost_column(self.cost_names[0])
        self.cost_cols = [cost_column(c) for c in self.cost_names]
        #: cost-table columns the archive keeps per network (objectives and limits)
        self.column_names = [c for c in dict.fromkeys(self.cost_cols + list(limits_of(
            constraints))) if c not in COSTS.values()]
        table = None
        if "latency" in self.cost_names or cfg.constraints.get("max_latency_ms"):
            lat = cfg.get("latency", {}) or {}
            try:
                table = (CarriedLatencyTable(lat["table"]) if lat.get("table") else
                         LatencyTable(None, batch=int(lat.get("batch", 1)),
                                      threads=lat.get("threads"),
                                      device=str(lat.get("device", "cpu"))))
            except ValueError as e:
                raise SearchError(str(e)) from None
        self.coster = Coster(self.space, tuple(self.cost_names), table,
                             columns=columns if self.column_names else None)
        if self.coster.columns is not None or isinstance(table, CarriedLatencyTable):
            # every network the search may propose (a finite space's every one, else a
            # sample) must be in the cost table and the carried latency table: said now,
            # not mid-run
            G = self.space.all_canonical(limit=20_000)
            if G is None:
                G = self.space.sample(200, np.random.default_rng(0))
            carried = isinstance(table, CarriedLatencyTable)
            for g in G:
                try:  # a table row needs only the genome; a carried latency, its spec
                    if carried:
                        self.coster.info(g)
                    else:
                        self.coster.row(g)
                except ValueError as e:
                    raise SearchError(str(e)) from None
        self.feasible, self.constrained = make_feasible(self.coster, constraints)
        try:
            check_satisfiable(self.space, self.coster, self.feasible, constraints)
        except ValueError as e:
            raise SearchError(str(e)) from None
        self.fidelity = fidelity_of(cfg)
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
        self.trains = ev_cfg.get("backend") not in ("table", "supernet", "zero_cost")
        self.proxy_features = None  # surrogate.features: made when the run starts
        #: zero-cost proxies the surrogate search's predictor takes as features
        self.features = (list(cfg.surrogate.get("features") or [])
                         if cfg.algorithm.get("name") == "surrogate" else [])
        if self.features:
            info = registry.data_info(OmegaConf.to_container(cfg.data, resolve=True))
            if info.in_channels != self.in_channels:
                raise SearchError(
                    f"surrogate.features={self.features} computes zero-cost proxies on a batch of "
                    f"the search's data, but data={info.name} has {info.in_channels} "
                    f"channel(s) and the {self.space.name} space's networks take "
                    f"{self.in_channels}; pass the data they were made for (e.g. "
                    f"data=cifar10 data.root=PATH for NAS-Bench-201)")
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

    def proposals(self, state: dict) -> list[tuple[int, ...]]:
        """Every genome the algorithm proposed, in the order proposed."""
        return [tuple(g) for b in state["batches"] for g in b["genomes"]]

    def context(self, state: dict | None = None) -> Context:
        """What the algorithm sees when asked: every architecture archived so far (at its
        highest fidelity) and those still training (``pending``). With reproducible asks
        (and ``state``): the results of the proposals within :meth:`known_limit`, in the
        order proposed, and every later proposal as pending, finished or not."""
        limit = None if state is None else self.known_limit(state)
        if limit is None:
            recs = self.search_records()
            pend = [j["genome"] for j in self._jobs.values() if j["space"] != "baseline"
                    and j["rung"] == 0]
        else:
            made = self.proposals(state)
            by_id = {r.arch_id: r for r in self.search_records()}
            recs = [by_id[self.space.arch_id(g)] for g in made[:limit]]
            pend = made[limit:]
        if recs:
            X = np.array([r.genome for r in recs], dtype=np.int64)
            F = np.array([self.objective_vector(r) for r in recs], dtype=float)
        else:
            X = np.empty((0, self.space.n_var), np.int64)
            F = np.empty((0, len(self.objectives)))
        PX = np.array(pend, dtype=np.int64).reshape(len(pend), self.space.n_var)
        return Context(self.space, self.coster.cost, self.feasible, X, F,
                       {r.arch_id for r in recs}, self.constrained, self.coster.info,
                       objectives=tuple(self.objectives), costs=self.coster.costs,
                       pending={self.space.arch_id(g) for g in pend}, pending_X=PX,
                       proxy_features=self.proxy_features)

    def objective_vector(self, r: Record) -> list[float]:
        """A record's objectives in config order; a failed candidate gets error 1.0 (and
        1.0 for every table metric), so it is never on a front but its costs stay real."""
        ok = r.status == "ok" and r.error is not None
        costs = iter(self.coster.costs(r.genome))
        out = []
        for o in self.objectives:
            if o == "error":
                out.append(float(r.error) if ok else 1.0)
            elif is_cost(o):
                out.append(next(costs))
            else:
                v = (r.extra or {}).get(metric_column(o))
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
        if result.accuracy is not None:
            acc = float(result.accuracy)
            ok = result.status == "ok" and math.isfinite(acc)
            err = 1.0 - acc if ok else None
        else:  # a score that is not an accuracy (zero-cost proxies): its own error
            acc = None
            ok = (result.status == "ok" and result.error is not None
                  and math.isfinite(float(result.error)))
            err = float(result.error) if ok else None
        return Record(
            id=None, arch_id=info["arch_id"], space=space,
            genome=tuple(int(v) for v in genome) if genome is not None else None,
            spec=info["spec"].to_string(), macs=int(info["macs"]), params=int(info["params"]),
            activations=int(info["activations"]), latency_ms=info.get("latency_ms"),
            accuracy=acc if ok else None,
            error=err,
            status="ok" if ok else "failed",
            reason=None if ok else (result.reason or "no accuracy or score reported"),
            # An evaluator may add to the fidelity (evaluator=supernet: which checkpoint).
            fidelity={**fidelity, **result.extra.get("fidelity", {})},
            seed=self.seed, iteration=iteration,
            train_seconds=result.train_seconds, created=time.time(),
            extra={k: v for k, v in {**{c: info["columns"][c] for c in self.column_names
                                        if c in info.get("columns", {})},
                                     "score": result.score,
                                     "proxies": result.extra.get("proxies"),
                                     "test_accuracy": result.test_accuracy,
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
        if self.coster.columns is not None:
            if cfg.get("names"):
                say("baselines skipped: the cost table (%s) has no row for a network "
                    "outside the space", self.coster.columns.source)
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
        return self.folder.weights(arch_id)

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
        result (and, when asks are reproducible, that lies within what the next ask may
        know: :meth:`known_limit`); True if one was told."""
        told = False
        recs = None
        limit = self.known_limit(state)
        seen = 0
        for b in state["batches"]:
            seen += len(b["genomes"])
            if b["told"]:
                continue
            if limit is not None and seen > limit:
                break
            ids = [self.space.arch_id(g) for g in b["genomes"]]
            if any(self._done_at(aid, 0) is None for aid in ids):
                break  # batches are told in the order they were asked
            recs = recs or {r.arch_id: r for r in self.search_records()}
            F = np.array([self.objective_vector(recs[aid]) for aid in ids], dtype=float)
            algo = state["algorithm"]
            algo.tell(self.context(state), b["genomes"], F)
            b["told"] = True
            told = True
            df = self.evaluated_frame()
            row = {"iteration": b["iteration"], "evaluations": len(df),
                   "hypervolume": self.hypervolume(df)}
            if b.get("log") is not None and b["log"] < len(algo.log):
                row.update(algo.log[b["log"]])
            state["history"].append(row)
        return told

    def reproducible(self) -> bool:
        """Whether asks are made at fixed points of the proposal sequence (see
        :meth:`known_limit`): with ``reproducible: true``, several slots, an algorithm asked
        a slot's worth at a time and fixed fidelity (successive halving's promotions depend
        on which results came first)."""
        algo_generational = self.cfg.algorithm.get("name") in ("nsga2", "optuna")
        return (bool(self.cfg.get("reproducible", True)) and self.slots > 1
                and not algo_generational and self.rungs is None)

    def known_limit(self, state: dict) -> int | None:
        """How many of the proposals made so far the next ask sees: all but the last two
        slots' worth (those may still be training), whatever else has finished; None when
        asks see whatever has finished (not reproducible) or no ask will come (budget
        spent: everything may be told)."""
        if not self.reproducible():
            return None
        if state["evaluations"] >= int(self.cfg.budget.evaluations) or self._exhausted:
            return None
        return max(0, state["evaluations"] - 2 * self.slots)

    @property
    def slots(self) -> int:
        """Candidates the evaluator runs at once."""
        return max(1, int(getattr(self.evaluator, "slots", 1)))

    def _schedule(self, state: dict) -> None:
        """Keep every slot busy: promotions first, then as many new architectures as slots
        are free (a generation at a time for generational algorithms); close the feed when
        nothing more will come."""
        cfg, algo = self.cfg, state["algorithm"]
        budget = int(cfg.budget.evaluations)
        slots = self.slots
        self._promote()
        generational = getattr(algo, "generational", False)
        repro = self.reproducible()
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
            initial = int(cfg.budget.initial)
            need = min_evaluated(cfg)
            if repro and state["batches"]:
                # Reproducible: this ask sees exactly the proposals up to the known limit
                # (all but the last two slots' worth), the same whichever finished first;
                # it waits, should one of those still train.
                limit = self.known_limit(state)
                made = self.proposals(state)
                if any(self._done_at(self.space.arch_id(g), 0) is None for g in made[:limit]):
                    break
                if self._tell_ready(state):
                    self.save_state(state)
                by_id = {r.arch_id: r for r in self.search_records()}
                n_ok = sum(by_id[self.space.arch_id(g)].status == "ok" for g in made[:limit])
                if n_ok < need and not any(j["space"] != "baseline"
                                           for j in self._jobs.values()) \
                        and sum(r.status == "ok" for r in by_id.values()) < need:
                    raise NotEnoughDataError(f"{need} successful evaluations needed, "
                                             f"{n_ok} so far")
                first = n_ok < max(need, 1)  # too few known results: random fill-ins
                n = slots
            else:
                # Random samples (the algorithm's initial()) until the results can steer
                # it: when the initial sample is back but for what the other slots still
                # train (at least a few results; with one slot, all of it, as the
                # synchronous search had it); more slots than the initial sample fill with
                # more random samples meanwhile.
                first = not state["batches"] or (not generational and len(
                    self.search_records()) < max(min(initial, 4), initial - slots
                                                 + (1 if slots == 1 else 0)))
                if first and state["batches"] and busy >= slots:
                    break  # random fill-ins only for a free slot, never queued ahead
                if not state["batches"]:
                    n = initial
                elif (slots == 1 or generational) and not first:
                    n = int(cfg.budget.per_iteration)
                else:
                    n = slots + (0 if first else ahead) - busy
                if not first:
                    n_ok = sum(r.status == "ok" for r in self.search_records())
                    if n_ok < need:
                        if any(j["space"] != "baseline" for j in self._jobs.values()):
                            break  # wait: what is still training may succeed
                        raise NotEnoughDataError(f"{need} successful evaluations needed, "
                                                 f"{n_ok} so far")
            n = min(n, budget - state["evaluations"])
            it = state["iteration"]
            ctx = self.context(state)
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
            acc = ("failed" if rec.status != "ok" else f"{rec.accuracy:.3f}"
                   if rec.accuracy is not None else f"score {rec.extra.get('score'):.4g}")
            at = f" at {self.rungs[rung]} epochs" if self.rungs is not None else ""
            eta = "" if self.bill is None else f"eta {duration(self.bill.remaining_s())}, "
            self.bar.set_postfix_str(f"{eta}{info.get('name') or rec.arch_id}: {acc}{at}")
        if rec.status == "failed":
            log.warning("%s failed: %s", rec.arch_id, rec.reason)
        if self.slot_s is not None:
            self.slot_s += float(res.extra.get("wall_seconds") or 0.0)
        if space != "baseline" and rung == 0 and self._tell_ready(state):
            self.save_state(state)
            self.out.write(self.archive, state["history"])
            self.prune_weights()
            self.folder.status("running", evaluations=len(self.search_records()),
                               budget=int(self.cfg.budget.evaluations),
                               iteration=state["iteration"])
        self._schedule(state)

    def prune_weights(self, final: bool = False) -> None:
        """Keep the front's trained states (``keep_weights``) and, while successive halving
        runs, those that may still be promoted."""

        def promotable() -> set[str]:
            if self.rungs is None or final:
                return set()
            last = len(self.rungs) - 1
            return {aid for aid in self._order if self._done_at(aid, last) is None}

        self.out.prune_weights(self.archive, promotable)

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
        state = self.folder.load_state()
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
        self.folder.save_state(state)

    def step_macs(self) -> float:
        """MACs of a median candidate's training step (the pool sizes its threads by it)."""
        genomes = self.space.sample(64, np.random.default_rng(7))
        macs = float(np.median([self.coster.info(g, latency=False)["macs"] for g in genomes]))
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
        scored = (f"table {self.table.source}" if self.table is not None
                  else self.cfg.data.get("name"))
        self.out = SearchOutputs(self.folder, self.objectives, self.cost_refs, str(scored),
                                 self.space.name, self.keep_weights,
                                 quality_label(OmegaConf.to_container(cfg, resolve=True)),
                                 columns=self.column_names)
        if self.features:
            cache = cfg.surrogate.get("proxy_cache") or self.run_dir / "proxies.sqlite"
            proxy_seed = int(cfg.surrogate.get("proxy_seed", 0))
            self.proxy_features = ProxyFeatures(
                self.space, self.features, data=OmegaConf.to_container(cfg.data, resolve=True),
                train=OmegaConf.to_container(cfg.train, resolve=True), cache=cache,
                seed=proxy_seed, progress=self._proxy_progress if cfg.get("progress", True)
                else None)
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
        self.slot_s: float | None = None  # seconds the slots spent on results
        state = self.load_state()
        self.folder.status("running", evaluations=len(self.search_records()), budget=budget)
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
                try:  # e.g. zero-cost proxies score their reference sample of the space
                    self.evaluator.check_space(self.space)
                except ValueError as e:
                    self._finish(state, "failed", reason=str(e))
                    raise SearchError(str(e)) from None
                # measured for one slot at its threads, before pool workers start (two
                # processes importing torch beside the probes inflate them 1.3-1.8x)
                self.bill = self.announce(self.estimate(
                    threads=getattr(self.evaluator, "threads", None)))
                self.evaluator.start()
                t_start = time.monotonic()  # the estimate is of what follows
                self.feed = Feed()
                self.slot_s = 0.0
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
        if self.wall_s > 0:
            # the share of the slots' time spent evaluating (the rest: idle, or asking)
            timing["slots_busy"] = round(self.slot_s / (self.slots * self.wall_s), 3)
        if self.proxy_features is not None:  # what the surrogate's proxy features cost
            timing["proxy_networks"] = self.proxy_features.computed
            timing["proxy_seconds"] = round(self.proxy_features.seconds, 1)
        df = self._finish(state, "complete", **timing)
        ok = df[df["status"] == "ok"]
        return {"run_dir": str(self.run_dir), "hypervolume": self.hypervolume(df),
                "evaluations": len(df),
                "accuracy": float(ok["accuracy"].max()) if ok["accuracy"].notna().any()
                else 0.0,
                # the best 1 - error: an accuracy, or a proxy's percentile in the space
                "quality": float(1.0 - ok["error"].min()) if len(ok) else 0.0,
                # every rung's training counts
                "train_seconds": float(sum(r.train_seconds or 0.0 for rows in
                                           self._rows.values() for r in rows
                                           if r.space != "baseline"))}

    def _proxy_progress(self, done: int, total: int) -> None:
        """A bar while the surrogate's proxy features of many networks are computed."""
        if total < 20:
            return
        bar = getattr(self, "_proxy_bar", None)
        if bar is None:
            bar = self._proxy_bar = tqdm(total=total, desc="zero-cost features", unit="net",
                                         dynamic_ncols=True, file=sys.stderr, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            self._proxy_bar = None

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
        self.out.write(self.archive, state["history"], plots=True)
        self.prune_weights(final=status == "complete")
        df = self.evaluated_frame()
        self.folder.status(status, evaluations=len(df), budget=int(self.cfg.budget.evaluations),
                           hypervolume=self.hypervolume(df), **extra)
        return df

    # -- outputs (SearchOutputs) ---------------------------------------------------------
    def objective_columns(self) -> list[str]:
        return self.out.objective_columns()

    def objective_refs(self) -> list[float]:
        return self.out.objective_refs()

    def hypervolume(self, df: pd.DataFrame) -> float:
        return self.out.hypervolume(df)

    def evaluated_frame(self) -> pd.DataFrame:
        return self.out.frames(self.archive)[0]

    def pareto_frame(self) -> pd.DataFrame:
        return self.out.pareto_frame(*self.out.frames(self.archive))


__all__ = ["Search"]
