"""What a search writes besides its archive and saved state: the CSVs, the plots, the
status and the trained weights it keeps. :class:`SearchOutputs` is an observer: the
scheduler (:class:`nas.search.scheduler.Search`) calls it after results are told and when
the run ends, and it writes through the run folder (:class:`nas.run.RunFolder`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nas import pareto
from nas.archive import Archive, final_rows
from nas.objectives import cost_column, is_cost, metric_column
from nas.report import write_front_plot
from nas.run import RunFolder, hypervolume_of, split_archive

log = logging.getLogger("nas.search")


@dataclass
class SearchOutputs:
    """The tables, plots, status and kept weights of one search.

    Args:
        folder: the run folder.
        objectives: the objective names, error first.
        cost_refs: per cost objective (in order), the divisor of the hypervolume
            normalisation.
        scored_by: what scored the candidates, for plot titles (the data set, or a table).
        space_name: the space's name, for plot titles.
        keep_weights: trained states of at most this many front members are kept.
        quality_label: ``accuracy``, or ``score (PROXY)`` for zero-cost scores.
        columns: cost-table columns kept per network (``min:COL`` objectives, limits).
    """

    folder: RunFolder
    objectives: Sequence[str]
    cost_refs: Sequence[float]
    scored_by: str
    space_name: str
    keep_weights: int = 0
    quality_label: str = "accuracy"
    columns: Sequence[str] = ()

    @property
    def cost_names(self) -> list[str]:
        return [o for o in self.objectives[1:] if is_cost(o)]

    @property
    def metric_names(self) -> list[str]:
        return [metric_column(o) for o in self.objectives[1:] if not is_cost(o)]

    @property
    def cost_col(self) -> str:
        return cost_column(self.cost_names[0])

    def objective_columns(self) -> list[str]:
        """Frame column of each objective: error, cost columns, ``<metric>_error``."""
        return ["error" if o == "error" else cost_column(o) if is_cost(o)
                else f"{metric_column(o)}_error" for o in self.objectives]

    def objective_refs(self) -> list[float]:
        """Per objective, the divisor of the hypervolume normalisation (1 for errors)."""
        refs = iter(self.cost_refs)
        return [next(refs) if is_cost(o) else 1.0 for o in self.objectives]

    def hypervolume(self, df: pd.DataFrame) -> float:
        """Hypervolume of ``df``'s ok rows over every objective (costs / their reference,
        errors as they are), reference point 1 in each."""
        cols, refs = self.objective_columns(), self.objective_refs()
        errs = [c for c, o in zip(cols, self.objectives) if not is_cost(o)]
        return hypervolume_of(df, [c for c, o in zip(cols, self.objectives) if is_cost(o)],
                              [r for r, o in zip(refs, self.objectives) if is_cost(o)],
                              error_cols=errs)

    def frames(self, archive: Archive) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(evaluated, baselines) from one read of the archive, one row per architecture
        at the highest fidelity (rung) it reached; table-metric objectives add a
        ``<metric>`` (accuracy) and a ``<metric>_error`` column."""
        return split_archive(final_rows(archive.to_frame()), self.metric_names, self.columns)

    def pareto_frame(self, ev: pd.DataFrame, bl: pd.DataFrame) -> pd.DataFrame:
        """The search's own front (non-dominated among its evaluated architectures) and
        every baseline; ``rank`` places each row in the union, so a search row with rank > 0
        is beaten by a baseline. Every objective counts."""
        ev = ev.assign(source="search", name=ev["arch_id"])
        bl = bl.assign(source="baseline")
        both = pd.concat([ev, bl], ignore_index=True)
        both = both[(both["status"] == "ok") & both["error"].notna()].reset_index(drop=True)
        if both.empty:
            return both.assign(rank=pd.Series(dtype=int))
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

    def write(self, archive: Archive, history: list[dict], *, plots: bool = False) -> None:
        """evaluated.csv, baselines.csv, pareto.csv, hypervolume.csv, surrogate.csv and,
        with ``plots``, pareto.png / pareto.html."""
        ev, bl = self.frames(archive)
        self.folder.write_csv("evaluated.csv", ev)
        self.folder.write_csv("baselines.csv", bl)
        pf = self.pareto_frame(ev, bl)
        self.folder.write_csv("pareto.csv", pf)
        hist = pd.DataFrame(history)
        if not hist.empty:
            hist = hist.assign(cost=self.cost_col, cost_ref=self.cost_refs[0],
                               objectives=",".join(self.objective_columns()),
                               refs=",".join(f"{r:g}" for r in self.objective_refs()))
            cols = ["iteration", "evaluations", "hypervolume", "cost", "cost_ref", "objectives",
                    "refs"]
            self.folder.write_csv("hypervolume.csv", hist[cols])
            sur = [c for c in hist.columns if c.startswith(
                ("surrogate", "cv_", "heldout_", "residual_", "train_size"))]
            if sur:
                self.folder.write_csv("surrogate.csv", hist[["iteration", "evaluations"] + sur]
                                      .dropna(subset=["surrogate"]))
        if plots:
            try:
                write_front_plot(ev, pf[pf["source"] == "search"], bl,
                                 self.folder.file("pareto.png"),
                                 self.folder.file("pareto.html"),
                                 title=f"{self.space_name} on {self.scored_by}: "
                                       f"{len(ev)} evaluated", cost=self.cost_col,
                                 objectives=self.objective_columns(),
                                 quality_label=self.quality_label)
            except Exception as e:  # noqa: BLE001 - a plot must never lose a finished run
                log.warning("plotting failed: %s", e)

    def prune_weights(self, archive: Archive, still_needed: Callable[[], set[str]]) -> None:
        """Keep the trained states of the search's front (at most ``keep_weights``, the
        most accurate first) and those ``still_needed`` (successive halving's states that
        may still be promoted); delete the rest."""
        folder = self.folder.file("weights")
        if not folder.is_dir():
            return
        keep = set(still_needed())
        if self.keep_weights:
            front = self.pareto_frame(*self.frames(archive))
            front = front[front["source"] == "search"].sort_values("error")
            keep |= set(front["arch_id"].head(self.keep_weights))
        keep_files = {self.folder.weights(a).name for a in keep}
        for f in folder.glob("*.ckpt"):
            if f.name not in keep_files:
                f.unlink(missing_ok=True)


__all__ = ["SearchOutputs"]
