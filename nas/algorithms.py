"""Search algorithms behind one ask/tell interface.

* ``surrogate``: NSGANetV2-style (Lu et al. 2020). Each iteration fits a surrogate on every
  evaluated architecture, runs pymoo's NSGA-II for many cheap generations on (predicted
  error, cost), and proposes a diverse handful from the predicted front.
* ``nsga2``: pymoo's NSGA-II with every individual trained (no surrogate).
* ``optuna``: an Optuna sampler (NSGA-II, NSGA-III, Gaussian process or TPE; constraints
  through its ``constraints_func``), every trial trained.
* ``random``: uniform samples of the space.

An algorithm is asked for ``n`` genomes given the archive so far and told their objective
values. Its whole state (including random generators) is pickled by the search after each
``tell``, so a resumed run asks exactly what the interrupted one asked.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.evaluator import Evaluator
from pymoo.core.problem import Problem
from pymoo.core.repair import Repair
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.optimize import minimize
from pymoo.problems.static import StaticProblem

from nas import pareto
from nas.cost import totals
from nas.surrogate import make_surrogate, rank_metrics

log = logging.getLogger(__name__)

ALGORITHMS = ("surrogate", "nsga2", "optuna", "random")
# What the surrogate sees of an architecture (surrogate.inputs).
INPUTS = ("genes", "genes+costs")


@dataclass
class Context:
    """What an algorithm may read when asked: the space, the cost function, the
    constraint check, and the evaluated archive as arrays (genomes are canonical)."""

    space: object
    cost: Callable[[Sequence[int]], float]
    feasible: Callable[[Sequence[int]], bool]
    X: np.ndarray  # (n, n_var) evaluated genomes
    F: np.ndarray  # (n, 2) evaluated (error, cost); failed candidates have error 1.0
    seen: set[str] = field(default_factory=set)  # arch ids already evaluated
    constrained: bool = False  # whether `feasible` can ever say no
    # genome -> {"macs", "params", "activations", ...} of its network (memoised by the search);
    # None: decode and count each time.
    info: Callable[[Sequence[int]], dict] | None = None


def check_inputs(kind: Any) -> str:
    """``kind`` if it names a surrogate input encoding (:data:`INPUTS`), else ValueError."""
    if kind not in INPUTS:
        raise ValueError(f"surrogate.inputs must be one of {list(INPUTS)}, got {kind!r}; "
                         f"e.g. surrogate.inputs=genes+costs")
    return kind


def _counted(space, genome) -> dict:
    macs, params, acts = totals(space.decode(genome))
    return {"macs": macs, "params": params, "activations": acts}


def surrogate_inputs(space, genomes, kind: str = "genes+costs",
                     info: Callable[[Sequence[int]], dict] | None = None) -> np.ndarray:
    """The rows a surrogate is fitted on and predicts from, one per genome (2-D input).

    ``genes``: ``space.features`` (one-hot choices, numeric genes scaled to [0, 1]).
    ``genes+costs``: the same plus the natural logs of the decoded network's MACs,
    parameters and activations, exact from the cost model. They summarise what many genes
    do together (resolution x width x depth) in three numbers that track accuracy
    (measured on the search benchmark, benchmarks/RESULTS.md: the adaptive surrogate's
    Kendall tau on held-out random architectures after 50 evaluations 0.48 with genes only,
    0.53-0.54 with costs).
    ``info`` maps a genome to a dict with those counts (the search's memo); None counts.
    """
    check_inputs(kind)
    X = space.features(genomes)
    if kind == "genes":
        return X
    get = info if info is not None else (lambda g: _counted(space, g))
    logs = [[math.log(max(float(d[k]), 1.0)) for k in ("macs", "params", "activations")]
            for d in (get(tuple(int(v) for v in g)) for g in np.asarray(genomes))]
    return np.concatenate([X, np.asarray(logs, dtype=np.float64).reshape(len(X), 3)], axis=1)


# --------------------------------------------------------------------------------------------
# pymoo adapters: canonical repair, canonical duplicate elimination, the surrogate problem
# --------------------------------------------------------------------------------------------


class CanonicalRepair(Repair):
    """Round to integers and map every genome to its space's canonical form, so genes of
    skipped blocks cannot make distinct-looking duplicates."""

    def __init__(self, space):
        super().__init__()
        self.space = space

    def _do(self, problem, X, **kwargs):
        X = np.clip(np.rint(X), self.space.xl, self.space.xu).astype(np.int64)
        return self.space.canonical_batch(X).astype(np.int64)


class CanonicalDuplicates(DuplicateElimination):
    """Duplicates by canonical genome (hashing, O(n))."""

    def __init__(self, space, seen: set[str] | None = None):
        super().__init__()
        self.space = space
        self.seen = seen if seen is not None else set()

    def _do(self, pop, other, is_duplicate):
        keys_other = set(self.seen)
        if other is not None:
            keys_other |= {self.space.arch_id(x) for x in other.get("X")}
        keys = set()
        for i, x in enumerate(pop.get("X")):
            k = self.space.arch_id(x)
            if k in keys or k in keys_other:
                is_duplicate[i] = True
            keys.add(k)
        return is_duplicate


class SurrogateProblem(Problem):
    """(predicted error, cost) with optional inequality constraints g <= 0 (thin adapter)."""

    def __init__(self, space, model, encode, cost, constraint):
        super().__init__(n_var=space.n_var, n_obj=2, n_ieq_constr=1 if constraint else 0,
                         xl=space.xl, xu=space.xu, vtype=int)
        self.space, self.model, self.encode = space, model, encode
        self.cost, self.constraint = cost, constraint

    def _evaluate(self, X, out, *args, **kwargs):
        X = X.astype(np.int64)
        out["F"] = np.column_stack([self.model.predict(self.encode(X)),
                                    [self.cost(x) for x in X]])
        if self.constraint:
            out["G"] = np.array([[self.constraint(x)] for x in X], dtype=float)


def _operators(space, seen: set[str]):
    return dict(crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                mutation=PM(prob=1.0, eta=20, vtype=float, repair=RoundingRepair()),
                repair=CanonicalRepair(space),
                eliminate_duplicates=CanonicalDuplicates(space, seen))


# --------------------------------------------------------------------------------------------
# Algorithms
# --------------------------------------------------------------------------------------------


class Algorithm:
    name = ""

    def __init__(self, *, seed: int):
        self.rng = np.random.default_rng(seed)
        self.seed = seed
        self.log: list[dict] = []  # per-ask diagnostics (surrogate quality, ...)

    def initial(self, ctx: Context, n: int) -> list[tuple[int, ...]]:
        """The initial sample: feasible, canonical, distinct (shared by every algorithm so
        comparisons start from the same architectures)."""
        return sample_new(ctx, n, self.rng)

    def ask(self, ctx: Context, n: int) -> list[tuple[int, ...]]:
        raise NotImplementedError

    def tell(self, ctx: Context, genomes: list[tuple[int, ...]], F: np.ndarray) -> None:
        """Receive the objectives of the genomes of the last ask (default: nothing)."""


def sample_new(ctx: Context, n: int, rng: np.random.Generator,
               max_tries: int = 200) -> list[tuple[int, ...]]:
    """``n`` feasible canonical genomes not yet evaluated (fewer if the space runs out)."""
    out: list[tuple[int, ...]] = []
    seen = set(ctx.seen)
    for _ in range(max_tries):
        for g in ctx.space.sample(max(4 * n, 16), rng):
            g = tuple(int(v) for v in g)
            aid = ctx.space.arch_id(g)
            if aid in seen or not ctx.feasible(g):
                continue
            seen.add(aid)
            out.append(g)
            if len(out) == n:
                return out
    return out


class RandomSearch(Algorithm):
    name = "random"

    def ask(self, ctx: Context, n: int) -> list[tuple[int, ...]]:
        return sample_new(ctx, n, self.rng)


class SurrogateSearch(Algorithm):
    """NSGANetV2-style surrogate-assisted search (see the module docstring)."""

    name = "surrogate"

    def __init__(self, *, seed: int, surrogate: dict, generations: int = 30,
                 pop_size: int = 64):
        super().__init__(seed=seed)
        if generations < 1 or pop_size < 4:
            raise ValueError(f"algorithm.generations must be >= 1 and algorithm.pop_size >= 4, "
                             f"got {generations} and {pop_size}")
        self.surrogate_cfg = dict(surrogate)
        self.inputs = check_inputs(self.surrogate_cfg.pop("inputs", "genes+costs"))
        self.generations = generations
        self.pop_size = pop_size
        self._pending_pred: dict[str, float] = {}

    def ask(self, ctx: Context, n: int) -> list[tuple[int, ...]]:
        ok = ctx.F[:, 0] < 1.0
        X, y = ctx.X[ok], ctx.F[ok, 0]
        cfg = dict(self.surrogate_cfg)
        model = make_surrogate(cfg.pop("name", "adaptive"), seed=int(self.rng.integers(2**31)),
                               **cfg)
        def encode(G):
            return surrogate_inputs(ctx.space, G, self.inputs, ctx.info)

        model.fit(encode(X), y)
        entry = {"surrogate": getattr(model, "chosen", model.name), "train_size": int(len(y))}
        for k, v in (getattr(model, "cv_scores", {}) or {}).get(entry["surrogate"], {}).items():
            entry[f"cv_{k}"] = float(v)
        constraint = ((lambda x: 0.0 if ctx.feasible(tuple(int(v) for v in x)) else 1.0)
                      if ctx.constrained else None)
        problem = SurrogateProblem(ctx.space, model, encode, ctx.cost, constraint)
        # Seed the population with the evaluated non-dominated set plus random samples.
        front = ctx.X[pareto.non_dominated(ctx.F)] if len(ctx.X) else np.empty((0, ctx.space.n_var))
        init = [tuple(int(v) for v in g) for g in front][: self.pop_size // 2]
        init += [tuple(int(v) for v in g)
                 for g in ctx.space.sample(self.pop_size - len(init), self.rng)]
        algo = NSGA2(pop_size=self.pop_size, sampling=np.array(init, dtype=np.int64),
                     **_operators(ctx.space, set()))
        res = minimize(problem, algo, ("n_gen", self.generations),
                       seed=int(self.rng.integers(2**31)), verbose=False)
        pop = res.pop if res.pop is not None else algo.pop
        cand_X = pop.get("X").astype(np.int64)
        cand_F = pop.get("F")
        cv = pop.get("CV")
        chosen = select_diverse(ctx, cand_X, cand_F, cv, n)
        if len(chosen) < n:  # the predicted front ran dry: fill with new random samples
            ctx2 = dataclasses.replace(
                ctx, seen=ctx.seen | {ctx.space.arch_id(g) for g in chosen})
            chosen += sample_new(ctx2, n - len(chosen), self.rng)
        preds = model.predict(encode(np.array(chosen, dtype=np.int64)))
        self._pending_pred = {ctx.space.arch_id(g): float(p) for g, p in zip(chosen, preds)}
        self.log.append(entry)
        return chosen

    def tell(self, ctx: Context, genomes, F) -> None:
        # Held-out quality: the surrogate's predictions for this batch, made before training.
        pred = np.array([self._pending_pred.get(ctx.space.arch_id(g), np.nan) for g in genomes])
        ok = np.isfinite(pred) & (F[:, 0] < 1.0)
        if self.log and ok.sum() >= 3:
            m = rank_metrics(F[ok, 0], pred[ok])
            self.log[-1].update({f"heldout_{k}": float(v) for k, v in m.items()})


def select_diverse(ctx: Context, X: np.ndarray, F: np.ndarray, cv, n: int
                   ) -> list[tuple[int, ...]]:
    """Pick ``n`` new architectures from the predicted front, spread along the cost axis:
    candidates are taken front by front, and within a front at evenly spaced cost quantiles
    (NSGANetV2 picks a diverse subset of the predicted front in the same spirit)."""
    feas = np.ones(len(X), bool) if cv is None else (cv.reshape(-1) <= 0)
    keys = [ctx.space.arch_id(x) for x in X]
    fresh = np.array([feas[i] and keys[i] not in ctx.seen for i in range(len(X))], bool)
    if not fresh.any():
        return []
    idx = np.flatnonzero(fresh)
    ranks = pareto.pareto_ranks(F[idx])
    chosen: list[int] = []
    for r in np.unique(ranks):
        layer = idx[ranks == r]
        layer = layer[np.argsort(F[layer, 1], kind="stable")]
        need = n - len(chosen)
        if len(layer) <= need:
            chosen += list(layer)
        else:
            pos = np.unique(np.round(np.linspace(0, len(layer) - 1, need)).astype(int))
            chosen += list(layer[pos])
        if len(chosen) >= n:
            break
    out, keys_out = [], set()
    for i in chosen[:n]:
        if keys[i] not in keys_out:
            keys_out.add(keys[i])
            out.append(tuple(int(v) for v in X[i]))
    return out


class EvolutionNSGA2(Algorithm):
    """pymoo NSGA-II, every individual trained; ``initial`` is its first population."""

    name = "nsga2"

    def __init__(self, *, seed: int):
        super().__init__(seed=seed)
        self.algo: NSGA2 | None = None
        self.problem: Problem | None = None
        self._pop = None

    def _setup(self, ctx: Context, init: list[tuple[int, ...]], n: int) -> None:
        self.problem = Problem(n_var=ctx.space.n_var, n_obj=2, xl=ctx.space.xl,
                               xu=ctx.space.xu, vtype=int)
        self.algo = NSGA2(pop_size=len(init), n_offsprings=n,
                          sampling=np.array(init, dtype=np.int64),
                          **_operators(ctx.space, set()))
        self.algo.setup(self.problem, seed=self.seed)

    def ask(self, ctx: Context, n: int) -> list[tuple[int, ...]]:
        if self.algo is None:
            raise RuntimeError("nsga2: ask() before the initial population was told")
        self.algo.n_offsprings = n
        self.algo.eliminate_duplicates.seen = set(ctx.seen)
        self._pop = self.algo.ask()
        X = [tuple(int(v) for v in x) for x in self._pop.get("X")]
        return X[:n]

    def tell(self, ctx: Context, genomes, F) -> None:
        if self.algo is None:  # the initial population
            self._setup(ctx, list(genomes), n=max(1, len(genomes)))
            self._pop = self.algo.ask()
        pop = self._pop[: len(genomes)]
        pop.set("X", np.array(genomes, dtype=np.int64))
        Evaluator().eval(StaticProblem(self.problem, F=np.asarray(F, float)), pop)
        self.algo.tell(infills=pop)


# The samplers the optuna comparator can use (algorithm.sampler).
OPTUNA_SAMPLERS = ("nsga2", "nsga3", "gp", "tpe")
# Name of the comparator's one trial constraint (Trial.set_constraint): 0 feasible, 1 not.
CONSTRAINT = "limits"


def make_optuna_sampler(name: str, *, seed: int, population_size: int = 16):
    """The Optuna sampler ``name`` (:data:`OPTUNA_SAMPLERS`); ``population_size`` is the
    generation size of nsga2 and nsga3. Every one of them reads the constraint values that
    trials carry (Optuna >= 5), so no ``constraints_func`` is needed."""
    import optuna

    if name not in OPTUNA_SAMPLERS:
        raise ValueError(f"algorithm.sampler must be one of {list(OPTUNA_SAMPLERS)}, got "
                         f"{name!r}; e.g. algorithm.sampler=nsga2")
    if isinstance(population_size, bool) or not isinstance(population_size, int) \
            or population_size < 2:
        raise ValueError(f"algorithm.population_size must be an integer >= 2, got "
                         f"{population_size!r}; e.g. algorithm.population_size=8")
    s = optuna.samplers
    if name == "nsga2":
        return s.NSGAIISampler(population_size=population_size, seed=seed)
    if name == "nsga3":
        return s.NSGAIIISampler(population_size=population_size, seed=seed)
    if name == "gp":
        return s.GPSampler(seed=seed)
    # constant_liar: the trials of one batch are all asked before any is told
    return s.TPESampler(seed=seed, multivariate=True, constant_liar=True)


class OptunaSearch(Algorithm):
    """An Optuna sampler with ask/tell, every trial trained; genes are integer parameters
    ``g0..gN``. ``sampler``: ``nsga2`` (NSGAIISampler), ``nsga3`` (NSGAIIISampler), ``gp``
    (GPSampler: Gaussian process, log-EHVI) or ``tpe`` (multivariate TPE).

    Constraints reach the sampler as trial constraint values (``Trial.set_constraint``): a
    proposal that breaks them is not trained, is told with error 1.0 and its true cost, and
    is marked infeasible, so constrained domination ranks it behind every feasible trial. A proposal that repeats
    an architecture already trained is told that architecture's result; one that repeats
    another proposal of the same batch is told its twin's result once that is trained."""

    name = "optuna"

    def __init__(self, *, seed: int, sampler: str = "nsga2", population_size: int = 16):
        super().__init__(seed=seed)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.sampler = sampler
        self.population_size = population_size
        self.study = optuna.create_study(
            directions=["minimize", "minimize"],
            sampler=make_optuna_sampler(sampler, seed=seed, population_size=population_size))
        self._trials: list = []  # (trial, arch id) of the proposals awaiting results
        self._twins: list = []  # (trial, arch id) repeating a proposal of the same batch

    def _dists(self, ctx: Context):
        from optuna.distributions import IntDistribution

        return {f"g{i}": IntDistribution(int(lo), int(hi))
                for i, (lo, hi) in enumerate(zip(ctx.space.xl, ctx.space.xu))}

    def initial(self, ctx: Context, n: int) -> list[tuple[int, ...]]:
        init = super().initial(ctx, n)
        for g in init:
            self.study.enqueue_trial({f"g{i}": int(v) for i, v in enumerate(g)})
        return self.ask(ctx, len(init))

    def _tell(self, ctx: Context, trial, values, feasible: bool = True) -> None:
        if ctx.constrained:
            trial.set_constraint(CONSTRAINT, 0.0 if feasible else 1.0)
        self.study.tell(trial, [float(v) for v in values])

    def ask(self, ctx: Context, n: int) -> list[tuple[int, ...]]:
        dists = self._dists(ctx)
        known = {ctx.space.arch_id(x): f for x, f in zip(ctx.X, ctx.F)}
        out, keys = [], set()
        self._trials, self._twins = [], []
        tries = 0
        while len(out) < n and tries < 50 * n:
            tries += 1
            trial = self.study.ask(dists)
            g = ctx.space.canonical([trial.params[f"g{i}"] for i in range(ctx.space.n_var)])
            aid = ctx.space.arch_id(g)
            if aid in known:  # already trained: tell Optuna the known result for free
                self._tell(ctx, trial, known[aid])
                continue
            if aid in keys:  # a repeat within the batch: told with its twin's result
                self._twins.append((trial, aid))
                continue
            if not ctx.feasible(g):
                self._tell(ctx, trial, [1.0, float(ctx.cost(g))], feasible=False)
                continue
            keys.add(aid)
            out.append(tuple(int(v) for v in g))
            self._trials.append((trial, aid))
        return out

    def tell(self, ctx: Context, genomes, F) -> None:
        by_id = {}
        for (trial, aid), f in zip(self._trials, F):
            self._tell(ctx, trial, f)
            by_id[aid] = f
        for trial, aid in self._twins:
            self._tell(ctx, trial, by_id[aid])
        self._trials, self._twins = [], []


def make_algorithm(cfg: dict, *, seed: int, surrogate: dict) -> Algorithm:
    """Build the algorithm named ``cfg['name']`` (see :data:`ALGORITHMS`)."""
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    if name == "surrogate":
        return SurrogateSearch(seed=seed, surrogate=surrogate, **cfg)
    if name == "nsga2":
        return EvolutionNSGA2(seed=seed, **cfg)
    if name == "optuna":
        return OptunaSearch(seed=seed, **cfg)
    if name == "random":
        return RandomSearch(seed=seed, **cfg)
    raise ValueError(f"unknown algorithm {name!r}; choose algorithm=one of {list(ALGORITHMS)}")
