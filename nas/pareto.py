"""Pareto fronts of evaluated architectures: ranks, hypervolume, knee, tables.

Every function takes an objective matrix ``F`` (n_points, n_objectives) with all objectives
minimised -- negate the ones to maximise, or use ``front_table`` which does it for you.

Failed candidates carry NaN objectives. Rule used throughout: a row with any NaN objective
is ignored -- it is never on a front, never dominates anything, contributes no hypervolume,
and gets rank NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

__all__ = ["front_table", "hypervolume", "knee_point", "non_dominated", "pareto_ranks"]

SENSES = ("min", "max")


def _as_objectives(F: Any) -> np.ndarray:
    F = np.asarray(F, dtype=float)
    if F.ndim != 2:
        raise ValueError(
            f"F must be a 2-D array (n_points, n_objectives); got shape {F.shape}. "
            "For a single point use F.reshape(1, -1)."
        )
    return F


def _valid_rows(F: np.ndarray) -> np.ndarray:
    """Indices of rows without NaN (the rows that take part in sorting)."""
    return np.flatnonzero(~np.isnan(F).any(axis=1))


def pareto_ranks(F: Any) -> np.ndarray:
    """Non-domination rank of every row (0 = Pareto front), float array; NaN rows get NaN.

    Sorting is pymoo's ``NonDominatedSorting`` (Deb et al., NSGA-II, 2002). Equal points do
    not dominate each other, so duplicates share a rank.
    """
    F = _as_objectives(F)
    ranks = np.full(len(F), np.nan)
    valid = _valid_rows(F)
    if len(valid):
        _, valid_ranks = NonDominatedSorting().do(F[valid], return_rank=True)
        ranks[valid] = valid_ranks
    return ranks


def non_dominated(F: Any) -> np.ndarray:
    """Sorted indices of the rows on the Pareto front (rank 0); NaN rows are ignored."""
    F = _as_objectives(F)
    valid = _valid_rows(F)
    if not len(valid):
        return np.empty(0, dtype=int)
    front = NonDominatedSorting().do(F[valid], only_non_dominated_front=True)
    return np.sort(valid[np.asarray(front, dtype=int)])


def hypervolume(F: Any, ref_point: Sequence[float] | np.ndarray) -> float:
    """Hypervolume dominated by ``F`` and bounded by ``ref_point`` (pymoo ``HV``).

    Points that do not strictly dominate ``ref_point`` in every objective (and NaN rows) add
    no volume and are dropped first; with none left the result is 0.0.
    """
    F = _as_objectives(F)
    ref = np.asarray(ref_point, dtype=float).reshape(-1)
    if len(ref) != F.shape[1] or not np.all(np.isfinite(ref)):
        raise ValueError(
            f"ref_point must hold {F.shape[1]} finite values (one per objective), got "
            f"{ref_point!r}; use a point worse than every point of interest, e.g. the nadir "
            "plus a margin."
        )
    F = F[_valid_rows(F)]
    F = F[np.all(F < ref, axis=1)]
    if not len(F):
        return 0.0
    return float(HV(ref_point=ref)(F))


def knee_point(F: Any) -> int:
    """Row index of the knee of the Pareto front of ``F``.

    Method (Das, "On characterizing the 'knee' of the Pareto curve based on Normal-Boundary
    Intersection", Struct. Optim. 1999): normalise the front to [0, 1] per objective (its
    ideal to its nadir), take the hyperplane through the extreme points (each objective's
    minimiser; in 2-D the line joining the two ends of the front) and return the front
    point farthest from it on the side of the ideal point. That is the point where
    improving one objective starts to cost the most in the others. Ties go to the lower
    index; a one-point front returns that point.
    """
    F = _as_objectives(F)
    front = non_dominated(F)
    if not len(front):
        raise ValueError("knee_point needs at least one row without NaN objectives; got none.")
    P = F[front]
    if not np.all(np.isfinite(P)):
        raise ValueError(
            "knee_point cannot normalise a front with infinite objectives; "
            "drop or clip those rows first."
        )
    lo, hi = P.min(axis=0), P.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)  # a flat objective adds nothing to the distance
    Z = (P - lo) / span
    # Row j: the point best in objective j, ties broken by the sum of the others.
    extremes = Z[[np.lexsort((Z.sum(axis=1), Z[:, j]))[0] for j in range(Z.shape[1])]]
    # Hyperplane w.x = 1 through the extremes; if they are degenerate (coincide), use the
    # plane through the unit points, which is what the extremes are in 2-D anyway.
    w, _, rank, _ = np.linalg.lstsq(extremes, np.ones(len(extremes)), rcond=None)
    if rank < len(extremes) or not np.all(np.isfinite(w)) or not np.any(w):
        w = np.ones(Z.shape[1])
    distance = (1.0 - Z @ w) / np.linalg.norm(w)  # > 0 on the side of the ideal point
    return int(front[int(np.argmax(distance))])


def front_table(
    df: pd.DataFrame, *, objectives: Sequence[str], senses: Sequence[str]
) -> pd.DataFrame:
    """Copy of ``df`` with an integer ``rank`` column, sorted by rank then objectives.

    ``senses[i]`` is ``"min"`` or ``"max"`` for ``objectives[i]`` (accuracy: ``"max"``; it is
    negated internally). Rows with a NaN objective get rank ``<NA>`` and come last. The
    original index is kept so that rows can be traced back.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}.")
    objectives, senses = list(objectives), list(senses)
    if not objectives or len(objectives) != len(senses):
        raise ValueError(
            f"give one sense per objective: objectives={objectives!r}, senses={senses!r}."
        )
    missing = [c for c in objectives if c not in df.columns]
    if missing:
        raise ValueError(
            f"objective column(s) {missing} not in the table; columns are {list(df.columns)}."
        )
    bad = [s for s in senses if s not in SENSES]
    if bad:
        raise ValueError(f"unknown sense(s) {bad}; each sense must be 'min' or 'max'.")
    if "rank" in df.columns:
        raise ValueError("df already has a 'rank' column; drop or rename it first.")
    try:
        values = df[objectives].to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"objective columns {objectives} must be numeric: {exc}") from exc
    F = values * np.array([1.0 if s == "min" else -1.0 for s in senses])
    out = df.copy()
    out["rank"] = pd.array(pareto_ranks(F), dtype="Int64")
    return out.sort_values(
        ["rank", *objectives],
        ascending=[True, *(s == "min" for s in senses)],
        na_position="last",
        kind="stable",
    )
