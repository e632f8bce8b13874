"""``nsga2``: pymoo's NSGA-II with every individual trained (no surrogate)."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.evaluator import Evaluator
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.problems.static import StaticProblem

from nas.algorithms.base import (
    Algorithm,
    Context,
    moo_algorithm,
    operators,
    sample_new,
)

log = logging.getLogger(__name__)


class EvolutionNSGA2(Algorithm):
    """pymoo NSGA-II, every individual trained; ``initial`` is its first population."""

    name = "nsga2"
    generational = True

    def __init__(self, *, seed: int):
        super().__init__(seed=seed)
        self.algo: NSGA2 | None = None
        self.problem: Problem | None = None

    def _setup(self, ctx: Context, init: list[tuple[int, ...]], n: int) -> None:
        self.problem = Problem(n_var=ctx.space.n_var, n_obj=ctx.n_obj, xl=ctx.space.xl,
                               xu=ctx.space.xu, vtype=int)
        self.algo = moo_algorithm(ctx.n_obj, len(init), n_offsprings=n,
                                  sampling=np.array(init, dtype=np.int64),
                                  **operators(ctx.space, set()))
        self.algo.setup(self.problem, seed=self.seed)

    def ask(self, ctx: Context, n: int) -> list[tuple[int, ...]]:
        if self.algo is None:
            raise RuntimeError("nsga2: ask() before the initial population was told")
        self.algo.n_offsprings = n
        self.algo.eliminate_duplicates.seen = set(ctx.seen) | set(ctx.pending)
        pop = self.algo.ask()
        X = [] if pop is None else [tuple(int(v) for v in x) for x in pop.get("X")][:n]
        # Mating knows nothing of the constraints: an offspring that breaks them is dropped
        # (never trained), and the generation filled as below.
        X = [g for g in X if ctx.feasible(g)] if ctx.constrained else X
        if len(X) < n:
            # Mating found too few new feasible offspring (a small space nearly explored, a
            # tight constraint): fill the generation with new random architectures rather
            # than idle.
            ctx2 = dataclasses.replace(ctx, seen=ctx.seen | {ctx.space.arch_id(g) for g in X})
            X += sample_new(ctx2, n - len(X), self.rng)
        return X

    def tell(self, ctx: Context, genomes, F) -> None:
        if self.algo is None:  # the initial population
            self._setup(ctx, list(genomes), n=max(1, len(genomes)))
            self.algo.ask()
        pop = Population.new("X", np.array(genomes, dtype=np.int64))
        Evaluator().eval(StaticProblem(self.problem, F=np.asarray(F, float)), pop)
        self.algo.tell(infills=pop)
