"""``evolution``: regularized (aging) evolution (Real et al. 2019) with multi-objective
tournaments."""

from __future__ import annotations

import dataclasses
import logging

from nas import checks
from nas.algorithms.base import (
    Algorithm,
    Context,
    ranks_crowding,
    sample_new,
)

log = logging.getLogger(__name__)


class RegularizedEvolution(Algorithm):
    """Regularized (aging) evolution (Real et al., AAAI 2019), multi-objective: the
    population is the ``population`` most recently evaluated architectures; each child
    mutates one gene of the winner of a tournament among ``sample`` random members (lowest
    Pareto rank, then largest crowding distance, as NSGA-II compares). The population is read
    from the archive in evaluation order, so the algorithm keeps no state of its own besides
    its random generator (resume-exact)."""

    name = "evolution"

    def __init__(self, *, seed: int, population: int = 50, sample: int = 10):
        super().__init__(seed=seed)
        population = checks.integer("algorithm.population", population, lo=2)
        sample = checks.integer("algorithm.sample", sample, lo=1, hi=population)
        self.population, self.sample = population, sample

    def ask(self, ctx: Context, n: int) -> list[tuple[int, ...]]:
        X, F = ctx.X[-self.population:], ctx.F[-self.population:]
        ranks, crowd = ranks_crowding(F)
        out: list[tuple[int, ...]] = []
        taken = set()
        for _ in range(50 * n):
            if len(out) == n:
                break
            pick = self.rng.choice(len(X), size=min(self.sample, len(X)), replace=False)
            parent = min(pick, key=lambda i: (ranks[i], -crowd[i]))
            genome = tuple(int(v) for v in X[parent])
            i = int(self.rng.integers(ctx.space.n_var))
            choices = [v for v in range(ctx.space.genes[i].hi + 1) if v != genome[i]]
            if not choices:
                continue
            child = ctx.space.canonical(genome[:i] + (int(self.rng.choice(choices)),)
                                        + genome[i + 1:])
            aid = ctx.space.arch_id(child)
            if aid in taken or not ctx.is_new(child) or not ctx.feasible(child):
                continue
            taken.add(aid)
            out.append(child)
        if len(out) < n:
            ctx2 = dataclasses.replace(ctx, seen=ctx.seen | taken)
            out += sample_new(ctx2, n - len(out), self.rng)
        return out
