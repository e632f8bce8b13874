"""``optuna``: an Optuna sampler (NSGA-II, NSGA-III, Gaussian process or TPE; constraints as
trial constraint values), every trial trained. Its state between calls is plain data
(:mod:`nas.optuna_state`)."""

from __future__ import annotations

import logging

import numpy as np
import optuna
from optuna.distributions import IntDistribution

from nas import checks, optuna_state, registry
from nas.algorithms.base import (
    Algorithm,
    Context,
)

log = logging.getLogger(__name__)


# The samplers the optuna comparator can use (algorithm.sampler).
#: the samplers the optuna comparator can use (algorithm.sampler)
OPTUNA_SAMPLERS = ("nsga2", "nsga3", "gp", "tpe")
# Name of the comparator's one trial constraint (Trial.set_constraint): 0 feasible, 1 not.
CONSTRAINT = "limits"


def make_optuna_sampler(name: str, *, seed: int, population_size: int = 16):
    """The Optuna sampler ``name`` (:data:`OPTUNA_SAMPLERS`) from the one factory
    (:func:`nas.registry.optuna_sampler`); ``population_size`` is the generation size of
    nsga2 and nsga3. Every sampler reads the constraint values that trials carry (Optuna
    >= 5), so no ``constraints_func`` is needed."""
    if name not in OPTUNA_SAMPLERS:
        raise checks.unknown("Optuna sampler", name, OPTUNA_SAMPLERS, "algorithm.sampler=NAME")
    checks.integer("algorithm.population_size", population_size, lo=2)
    options = {"population_size": population_size} if name in ("nsga2", "nsga3") else {}
    return registry.optuna_sampler(name, seed=seed, **options)


class OptunaSearch(Algorithm):
    """An Optuna sampler with ask/tell, every trial trained; genes are integer parameters
    ``g0..gN``. ``sampler``: ``nsga2`` (NSGAIISampler), ``nsga3`` (NSGAIIISampler), ``gp``
    (GPSampler: Gaussian process, log-EHVI) or ``tpe`` (multivariate TPE).

    Constraints reach the sampler as trial constraint values (``Trial.set_constraint``): a
    proposal that breaks them is not trained, is told with error 1.0 and its true cost, and
    is marked infeasible, so constrained domination ranks it behind every feasible trial. A proposal that repeats
    an architecture already trained is told that architecture's result; one that repeats
    another proposal of the same batch is told its twin's result once that is trained; one
    that repeats an architecture being evaluated (``Context.pending``) is told as failed.

    Between calls the algorithm holds the study only as plain data
    (:func:`nas.optuna_state.snapshot`: trials, attributes, the sampler's random generators),
    and every ask or tell rebuilds the study and a fresh sampler from it. So its pickled
    state holds no Optuna object, and a search resumed from it runs the same code on the
    same data as the live one (samplers' caches between asks, such as the GP sampler's
    kernel parameters, are rebuilt the same way in both)."""

    name = "optuna"
    generational = True

    def __init__(self, *, seed: int, sampler: str = "nsga2", population_size: int = 16):
        super().__init__(seed=seed)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.sampler = sampler
        self.population_size = population_size
        make_optuna_sampler(sampler, seed=seed, population_size=population_size)  # checks
        self._state: dict | None = None  # the study as plain data; None before the first ask
        self._trials: list = []  # (trial number, arch id) of the proposals awaiting results
        self._twins: list = []  # (trial number, arch id) repeating a proposal of the batch

    def _open(self, ctx: Context) -> optuna.Study:
        """The study as the last call left it, driven by a freshly made sampler."""
        sampler = make_optuna_sampler(self.sampler, seed=self.seed,
                                      population_size=self.population_size)
        if self._state is None:
            return optuna.create_study(directions=["minimize"] * ctx.n_obj, sampler=sampler)
        return optuna_state.restore(self._state, sampler)

    def _close(self, study: optuna.Study) -> None:
        self._state = optuna_state.snapshot(study, study.sampler)

    @property
    def study(self) -> optuna.Study | None:
        """A copy of the study as it stands (for inspection; the algorithm keeps its own)."""
        if self._state is None:
            return None
        return optuna_state.restore(self._state, make_optuna_sampler(
            self.sampler, seed=self.seed, population_size=self.population_size))

    def _dists(self, ctx: Context):
        return {f"g{i}": IntDistribution(int(lo), int(hi))
                for i, (lo, hi) in enumerate(zip(ctx.space.xl, ctx.space.xu))}

    def initial(self, ctx: Context, n: int) -> list[tuple[int, ...]]:
        init = super().initial(ctx, n)
        study = self._open(ctx)
        for g in init:
            study.enqueue_trial({f"g{i}": int(v) for i, v in enumerate(g)})
        self._close(study)
        return self.ask(ctx, len(init))

    def _tell(self, ctx: Context, study, number: int, values, feasible: bool = True) -> None:
        if ctx.constrained:
            optuna_state.running_trial(study, number).set_constraint(
                CONSTRAINT, 0.0 if feasible else 1.0)
        study.tell(number, [float(v) for v in values])

    def ask(self, ctx: Context, n: int) -> list[tuple[int, ...]]:
        dists = self._dists(ctx)
        known = {ctx.space.arch_id(x): f for x, f in zip(ctx.X, ctx.F)}
        out, keys = [], set()
        self._trials, self._twins = [], []
        tries = 0
        study = self._open(ctx)
        while len(out) < n and tries < 50 * n:
            tries += 1
            trial = study.ask(dists)
            g = ctx.space.canonical([trial.params[f"g{i}"] for i in range(ctx.space.n_var)])
            aid = ctx.space.arch_id(g)
            if aid in known:  # already trained: tell Optuna the known result for free
                self._tell(ctx, study, trial.number, known[aid])
                continue
            if aid in keys:  # a repeat within the batch: told with its twin's result
                self._twins.append((trial.number, aid))
                continue
            if aid in ctx.pending:  # being evaluated elsewhere: not proposed twice
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            if not ctx.feasible(g):
                worst = np.ones(ctx.n_obj)  # error 1.0 (and table metrics), true costs
                worst[ctx.cost_index] = ctx.cost_matrix([g])[0]
                self._tell(ctx, study, trial.number, worst, feasible=False)
                continue
            keys.add(aid)
            out.append(tuple(int(v) for v in g))
            self._trials.append((trial.number, aid))
        self._close(study)
        return out

    def tell(self, ctx: Context, genomes, F) -> None:
        study = self._open(ctx)
        by_id = {}
        for (number, aid), f in zip(self._trials, F):
            self._tell(ctx, study, number, f)
            by_id[aid] = f
        for number, aid in self._twins:
            self._tell(ctx, study, number, by_id[aid])
        self._trials, self._twins = [], []
        self._close(study)
