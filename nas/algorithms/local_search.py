"""``local``: Pareto local search over one-gene neighbourhoods (White et al. 2021)."""

from __future__ import annotations

import dataclasses
import itertools
import logging

import numpy as np

from nas import pareto
from nas.algorithms.base import (
    Algorithm,
    Context,
    new_neighbours,
    sample_new,
)

log = logging.getLogger(__name__)


class LocalSearch(Algorithm):
    """Pareto local search (Paquete et al. 2004; White et al., UAI 2021 find local search
    hard to beat on NAS-Bench-201): take a member of the current Pareto front whose one-gene
    neighbourhood is not yet fully evaluated and propose its unevaluated neighbours; when
    every front member is explored (a Pareto local optimum), restart from random samples.
    The front is read from the archive, so no state but the random generator is kept."""

    name = "local"

    def ask(self, ctx: Context, n: int) -> list[tuple[int, ...]]:
        front = pareto.non_dominated(ctx.F) if len(ctx.F) else np.empty(0, int)
        out = list(itertools.islice(
            new_neighbours(ctx, self.rng.permutation(front), shuffle=self.rng.permutation), n))
        if len(out) == n:
            return out
        ctx2 = dataclasses.replace(ctx, seen=ctx.seen | {ctx.space.arch_id(g) for g in out})
        return out + sample_new(ctx2, n - len(out), self.rng)
