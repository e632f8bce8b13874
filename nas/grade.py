"""Grading a search by a table of known results (``python -m nas.report RUN --grade``).

Where a table covers a run's space (NAS-Bench-201's networks in analog-nasbench, or a user's
table keyed by the genomes of their space), the table's accuracy of every network the run
evaluated is the ground truth for whatever scored it: a training on real images, successive
halving, a supernet, a zero-cost proxy. :func:`grade` puts it beside each row
(``true_accuracy``) and measures what the literature measures:

- the **true hypervolume ratio** of the front the run reports (``pareto.csv``'s search rows,
  at their true accuracy and MACs) to the table's true front over the space's distinct
  networks, on (error, MACs), normalised by the true front's ideal and nadir points with
  reference point 1.1 in each (as ``benchmarks/bench_table.py``);
- the **best pick**: the most accurate row of that front by what the run measured (its
  accuracy, or its score where it only scored), its true accuracy and the gap to the table's
  best network of the space;
- the **true-front points found**: those with an evaluated network within ``tol`` accuracy
  points at no more MACs.

MACs are the cost model's, of the space the table was measured on (for analog-nasbench the
default ``nb201`` space), so a run trained on a reduced network (one cell per stage, 16 px)
is graded on the networks the table knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from nas import registry
from nas.cost import totals
from nas.pareto import hypervolume, non_dominated
from nas.report import write_front_plot
from nas.run import Run, RunFolder, quality
from nas.table import ANALOG_NASBENCH, Table, TableError, load_table

#: accuracy points within which an evaluated network counts as having found a true-front one
TOL = 0.2
REF = 1.1


class GradeError(ValueError):
    """No table grades this run, with the fix."""


@dataclass
class TrueFront:
    """The table's non-dominated (error, cost) points over the space's distinct networks."""

    genomes: np.ndarray
    F: np.ndarray  # (k, 2): error, cost
    ideal: np.ndarray
    nadir: np.ndarray
    n: int  # distinct networks with a table entry
    best_accuracy: float  # the table's best over them

    def normalise(self, F: np.ndarray) -> np.ndarray:
        return (np.asarray(F, float) - self.ideal) / (self.nadir - self.ideal)

    def hypervolume(self, F: np.ndarray) -> float:
        """Hypervolume of (error, cost) points, normalised, reference point 1.1."""
        F = np.asarray(F, float).reshape(-1, 2)
        F = F[np.all(np.isfinite(F), axis=1)]
        return hypervolume(self.normalise(F), np.full(2, REF)) if len(F) else 0.0

    def hv_ratio(self, F: np.ndarray) -> float:
        return self.hypervolume(F) / self.hypervolume(self.F)

    def found(self, F: np.ndarray, tol: float = TOL) -> np.ndarray:
        """Per true-front point: whether a point of ``F`` is within ``tol`` accuracy points
        of it at no more cost."""
        F = np.asarray(F, float).reshape(-1, 2)
        return np.array([bool(np.any((F[:, 0] <= e + tol / 100) & (F[:, 1] <= c)))
                         for e, c in self.F])


def true_front(space: Any, table: Table, metric: str, cost: str = "macs",
               costs: Table | None = None) -> TrueFront:
    """The true front of ``table``'s ``metric`` over ``space``'s distinct networks (its
    canonical genomes) on (error, ``cost``): MACs by the cost model, or a column of the cost
    table ``costs`` (a device's latency)."""
    G = space.all_canonical(limit=10**7)
    if G is None:
        raise GradeError(f"the {space.name} space cannot be enumerated, so no table gives "
                         f"its true front")
    acc = table.accuracies(G, metric)
    ok = np.isfinite(acc)
    G, acc = G[ok], acc[ok]
    if not len(G):
        raise GradeError(f"table {table.source} has no {metric} for any network of the "
                         f"{space.name} space")
    c = _costs(space, G, cost, costs)
    F = np.column_stack([1.0 - acc, c])
    nd = non_dominated(F)
    return TrueFront(genomes=G[nd], F=F[nd], ideal=F[nd].min(axis=0),
                     nadir=F[nd].max(axis=0), n=len(G), best_accuracy=float(acc.max()))


def _costs(space: Any, G: np.ndarray, cost: str, costs: Table | None) -> np.ndarray:
    if cost == "macs":
        return np.array([totals(space.decode(tuple(int(x) for x in g)))[0] for g in G],
                        dtype=float)
    if costs is None:
        raise GradeError(f"cost {cost!r} needs a cost table")
    out = np.full(len(G), np.nan)
    for i, g in enumerate(G):
        row = costs.lookup(g)
        if row is not None:
            out[i] = row[cost]
    return out


@dataclass
class Grade:
    """What :func:`grade` measured (see the module docstring)."""

    table: str
    metric: str
    evaluated: pd.DataFrame  # the run's rows with true_accuracy
    pareto: pd.DataFrame  # pareto.csv with true_accuracy
    true_front_points: int
    networks: int
    hv_ratio: float
    best_pick: dict = field(default_factory=dict)
    table_best: float = float("nan")
    found: int = 0
    ungraded: int = 0  # evaluated networks the table lacks
    truth: np.ndarray | None = None  # (k, 2) the true front: error, MACs
    points: np.ndarray | None = None  # (n, 2) evaluated ok networks: true error, MACs
    reported: np.ndarray | None = None  # (m, 2) the reported front: true error, MACs

    def lines(self) -> list[str]:
        """The grade as the report and the search print it."""
        out = [f"graded by {self.table} ({self.metric}, true front over {self.networks:,} "
               f"distinct networks: {self.true_front_points} points, error x MACs)"]
        out.append(f"  true hypervolume ratio of the reported front: {self.hv_ratio:.4f}")
        if self.best_pick:
            b = self.best_pick
            out.append(f"  best pick {b['name']}: {b['measured']} measured, true accuracy "
                       f"{100 * b['true_accuracy']:.2f}% (the table's best "
                       f"{100 * self.table_best:.2f}%, gap "
                       f"{100 * (self.table_best - b['true_accuracy']):.2f} points)")
        out.append(f"  true-front points found: {self.found} of {self.true_front_points} "
                   f"(an evaluated network within {TOL} accuracy points at no more MACs)")
        if self.ungraded:
            out.append(f"  {self.ungraded} evaluated networks have no entry in the table")
        return out


def table_for(run: Run, source: str | None = None) -> tuple[Table, Any, str]:
    """The table that grades ``run``, the space its genomes index (built as the table was
    measured) and the metric: ``source`` when given, else the run's own table
    (``evaluator=table``), else analog-nasbench for an ``nb201`` run. GradeError naming the
    fix when none covers the run's space."""
    name = run.space
    if name is None:
        raise GradeError(f"{run.path}: the run names no search space, so no table grades it")
    ev = run.config.get("evaluator") or {}
    if source is None and ev.get("backend") == "table" and ev.get("source"):
        source = str(ev["source"])
    if source is None and name == "nb201":
        source = ANALOG_NASBENCH
    if source is None:
        raise GradeError(f"no table covers the {name} space; pass --table PATH (a CSV/"
                         f"Parquet of known accuracies with a 'genome' column of {name} "
                         f"genomes)")
    try:
        table = load_table(source, key="--table")
    except TableError as e:
        raise GradeError(str(e)) from None
    space_cfg = run.config.get("space")
    try:
        if source == ANALOG_NASBENCH:
            space = registry.space(name, num_classes=table.num_classes,
                                   in_channels=table.in_channels)
        else:
            space = registry.space(space_cfg if isinstance(space_cfg, dict) else name,
                                   num_classes=table.num_classes,
                                   in_channels=table.in_channels)
        table.check_space(space)
    except (TableError, ValueError) as e:
        raise GradeError(f"table {table.source} does not cover this run's {name} space: "
                         f"{e}") from None
    metric = str(ev.get("metric") or "") if ev.get("backend") == "table" else ""
    if metric not in table.metrics:
        metric = "baseline_accuracy" if "baseline_accuracy" in table.metrics \
            else table.metrics[0]
    return table, space, metric


def _genomes(frame: pd.DataFrame, space: Any) -> list[tuple[int, ...] | None]:
    """Each row's genome (the space's own text form, ``1-0-2-...``); None where a row has
    none the space reads."""
    out: list[tuple[int, ...] | None] = []
    for g in frame.get("genome", pd.Series([None] * len(frame))):
        try:
            out.append(tuple(space.parse_genome(str(g))))
        except (TypeError, ValueError):
            out.append(None)
    return out


def _true(genomes: list[tuple[int, ...] | None], table: Table, metric: str) -> np.ndarray:
    vals = [table.accuracy(g, metric) if g else None for g in genomes]
    return np.array([np.nan if a is None else a for a in vals], dtype=float)


def grade(run: Run, source: str | None = None) -> Grade:
    """Grade ``run`` by the table that covers its space (see :func:`table_for`)."""
    table, space, metric = table_for(run, source)
    tf = true_front(space, table, metric)
    ev = run.evaluated.copy()
    ev_genomes = pd.Series(_genomes(ev, space), index=ev.index, dtype=object)
    ev["true_accuracy"] = _true(list(ev_genomes), table, metric)
    pf = run.pareto.copy()
    pf_genomes = _genomes(pf, space)
    pf["true_accuracy"] = _true(pf_genomes, table, metric)
    if len(pf) and "source" in pf:
        pf.loc[pf["source"] == "baseline", "true_accuracy"] = np.nan
    is_search = (pf["source"] == "search").to_numpy() if "source" in pf else np.zeros(
        len(pf), bool)
    search = pf[is_search]
    search_genomes = [g for g, s in zip(pf_genomes, is_search) if s]
    ok = run.ok
    ok_genomes = list(ev_genomes[ok.index])
    # MACs of the networks the table was measured on, once per genome
    macs = {g: totals(space.decode(g))[0] for g in {*ok_genomes, *search_genomes} if g}
    F = np.array([[1.0 - t, macs.get(g, np.nan)] for g, t in
                  zip(search_genomes, search["true_accuracy"])], dtype=float).reshape(-1, 2)
    best: dict = {}
    if len(search):
        q = quality(search).to_numpy(float)
        if np.isfinite(q).any():
            r = search.iloc[int(np.nanargmax(q))]
            label = run.quality_label
            measured = (f"accuracy {100 * float(r['accuracy']):.2f}%" if label == "accuracy"
                        else f"{label} {float(r['score']):.4g}")
            best = {"name": str(r.get("arch_id", r.get("name", ""))), "measured": measured,
                    "true_accuracy": float(r["true_accuracy"])}
    ok_true = ev.loc[ok.index, "true_accuracy"].to_numpy(float)
    ok_macs = np.array([macs.get(g, np.nan) for g in ok_genomes], dtype=float)
    found = tf.found(np.column_stack([1.0 - ok_true, ok_macs]))
    return Grade(table=table.source, metric=metric, evaluated=ev, pareto=pf,
                 true_front_points=len(tf.F), networks=tf.n, hv_ratio=tf.hv_ratio(F),
                 best_pick=best, table_best=tf.best_accuracy, found=int(found.sum()),
                 ungraded=int(np.isnan(ev["true_accuracy"]).sum()), truth=tf.F,
                 points=np.column_stack([1.0 - ok_true, ok_macs]), reported=F)


def plot_grade(g: Grade, path: str | Path, title: str) -> Path:
    """``graded.png``: the table's true front, every evaluated network and the reported
    front, all at their true accuracy against MACs (log scale)."""
    fig = Figure(figsize=(8, 5.2), dpi=110)
    ax = fig.subplots()
    order = np.argsort(g.truth[:, 1])
    ax.step(g.truth[order, 1], 100 * (1 - g.truth[order, 0]), where="post", color="black",
            ls="--", lw=1.2, label=f"true front ({len(g.truth)} points, {g.table})")
    pts = g.points[np.all(np.isfinite(g.points), axis=1)]
    ax.scatter(pts[:, 1], 100 * (1 - pts[:, 0]), s=12, color="#1f77b4", alpha=0.35,
               linewidths=0, label=f"evaluated ({len(pts)})")
    rep = g.reported[np.all(np.isfinite(g.reported), axis=1)]
    ax.scatter(rep[:, 1], 100 * (1 - rep[:, 0]), s=34, color="#d62728", edgecolors="black",
               linewidths=0.5, zorder=3, label=f"reported front ({len(rep)}), true hv ratio "
                                               f"{g.hv_ratio:.3f}")
    ax.set_xscale("log")
    ax.set_xlabel("MACs (log scale)")
    ax.set_ylabel(f"true accuracy (%, {g.metric})")
    lo = 100 * (1 - max(g.truth[:, 0].max(), rep[:, 0].max() if len(rep) else 0.0))
    ax.set_ylim(max(0.0, lo - 5), 100 * g.table_best + 1)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def write_grade(run: Run, g: Grade) -> None:
    """``true_accuracy`` into the run's evaluated.csv and pareto.csv, and pareto.png/html
    drawn again with it."""
    folder = RunFolder(run.path)
    folder.write_csv("evaluated.csv", g.evaluated)
    folder.write_csv("pareto.csv", g.pareto)
    pf = g.pareto
    search = pf[pf["source"] == "search"] if "source" in pf else pf
    write_front_plot(g.evaluated, search, run.baselines, folder.file("pareto.png"),
                     folder.file("pareto.html"),
                     title=f"{run.space}: {len(g.evaluated)} evaluated, graded by {g.table}",
                     quality_label=run.quality_label)
    plot_grade(g, folder.file("graded.png"),
               f"{run.space}: {len(g.evaluated)} evaluated ({run.quality_label}), graded")


__all__ = ["Grade", "GradeError", "TOL", "TrueFront", "grade", "plot_grade", "table_for", "true_front",
           "write_grade"]
