"""Search algorithms behind one ask/tell interface.

* ``surrogate``: NSGANetV2-style (Lu et al. 2020). Each iteration fits a surrogate on every
  evaluated architecture, runs pymoo's NSGA-II for many cheap generations on (predicted
  error, cost), and proposes a diverse handful from the predicted front.
* ``nsga2``: pymoo's NSGA-II with every individual trained (no surrogate).
* ``optuna``: an Optuna sampler (NSGA-II, NSGA-III, Gaussian process or TPE; constraints as
  trial constraint values), every trial trained.
* ``random``: uniform samples of the space.
* ``evolution``: regularized (aging) evolution (Real et al. 2019), multi-objective tournaments.
* ``local``: Pareto local search over one-gene neighbourhoods (White et al. 2021).

An algorithm is asked for ``n`` genomes given the archive so far and told their objective
values. Its whole state (including random generators) is pickled by the search after each
``tell``, so a resumed run asks exactly what the interrupted one asked.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.distributions import IntDistribution
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

from nas import optuna_state, pareto
from nas.cost import totals
from nas.surrogate import make_surrogate, rank_metrics

log = logging.getLogger(__name__)

ALGORITHMS = ("surrogate", "nsga2", "optuna", "random", "evolution", "local")
#: objectives that are costs known from the spec (the rest come from evaluation) -> the
#: archive column that holds each
COST_OBJECTIVES = {"macs": "macs", "params": "params", "activations": "activations",
                   "latency": "latency_ms"}
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
    F: np.ndarray  # (n, K) evaluated objectives (error first); failed candidates have error 1.0
    seen: set[str] = field(default_factory=set)  # arch ids already evaluated
    constrained: bool = False  # whether `feasible` can ever say no
    # genome -> {"macs", "params", "activations", ...} of its network (memoised by the search);
    # None: decode and count each time.
    info: Callable[[Sequence[int]], dict] | None = None
    # objective names, in F's column order: "error", costs, table metrics
    objectives: tuple[str, ...] = ("error", "macs")
    # genome -> every cost objective (the F columns that are costs), in order; None: `cost`
    costs: Callable[[Sequence[int]], Sequence[float]] | None = None
    # genomes being evaluated right now (asynchronous evaluation): never proposed again
    pending: set[str] = field(default_factory=set)
    # (m, n_var) the pending genomes themselves (the surrogate search ranks them as "lies")
    pending_X: np.ndarray | None = None

    @property
    def n_obj(self) -> int:
        return len(self.objectives)

    @property
    def cost_index(self) -> list[int]:
        """F columns known before training (costs), in order."""
        return [i for i, o in enumerate(self.objectives) if o in COST_OBJECTIVES]

    @property
    def predicted_index(self) -> list[int]:
        """F columns known only after evaluation (error, table metrics)."""
        return [i for i, o in enumerate(self.objectives) if o not in COST_OBJECTIVES]

    def cost_matrix(self, genomes) -> np.ndarray:
        """(n, n_costs) costs of ``genomes``."""
        get = self.costs if self.costs is not None else (lambda g: (self.cost(g),))
        return np.array([get(tuple(int(v) for v in g)) for g in np.asarray(genomes)],
                        dtype=float).reshape(len(genomes), -1)

    def is_new(self, genome) -> bool:
        aid = self.space.arch_id(genome)
        return aid not in self.seen and aid not in self.pending


#: what the surrogate is fitted to (surrogate.target)
TARGETS = ("log", "raw")


def check_target(kind: Any) -> str:
    """``kind`` if it names a surrogate target (:data:`TARGETS`), else ValueError."""
    if kind not in TARGETS:
        raise ValueError(f"surrogate.target must be one of {list(TARGETS)}, got {kind!r}; "
                         f"e.g. surrogate.target=log")
    return kind


def to_target(errors: np.ndarray, kind: str) -> np.ndarray:
    """Errors (in (0, 1]) as the surrogate learns them. ``log``: natural log, floored at
    1e-4: relative differences between good networks weigh as much as those between bad
    ones (on NAS-Bench-201, 100 training networks: held-out Kendall tau 0.75 vs 0.65 on the
    raw error, GP; benchmarks/RESULTS.md)."""
    e = np.asarray(errors, dtype=float)
    return np.log(np.clip(e, 1e-4, None)) if kind == "log" else e


def from_target(values: np.ndarray, kind: str) -> np.ndarray:
    """Inverse of :func:`to_target`."""
    v = np.asarray(values, dtype=float)
    return np.exp(v) if kind == "log" else v


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
    """Every objective of a genome, predicted (error, table metrics) or exact (costs), with
    optional inequality constraints g <= 0 (a thin adapter)."""

    def __init__(self, space, predict, ctx, constraint):
        super().__init__(n_var=space.n_var, n_obj=ctx.n_obj,
                         n_ieq_constr=1 if constraint else 0, xl=space.xl, xu=space.xu,
                         vtype=int)
        self.space, self.predict, self.ctx, self.constraint = space, predict, ctx, constraint

    def _evaluate(self, X, out, *args, **kwargs):
        X = X.astype(np.int64)
        out["F"] = objective_matrix(self.ctx, X, self.predict)
        if self.constraint:
            out["G"] = np.array([[self.constraint(x)] for x in X], dtype=float)


def objective_matrix(ctx: Context, X: np.ndarray, predict) -> np.ndarray:
    """(n, K): ``predict(X)`` (n, n_predicted) in the predicted columns, exact costs in the
    others."""
    F = np.empty((len(X), ctx.n_obj))
    F[:, ctx.predicted_index] = predict(X)
    F[:, ctx.cost_index] = ctx.cost_matrix(X)
    return F


def moo_algorithm(n_obj: int, pop_size: int, **kwargs):
    """pymoo NSGA-II for two or three objectives, NSGA-III (Das-Dennis reference directions,
    population at least their number) beyond."""
    if n_obj <= 3:
        return NSGA2(pop_size=pop_size, **kwargs)
    from pymoo.algorithms.moo.nsga3 import NSGA3
    from pymoo.util.ref_dirs import get_reference_directions

    partitions = 4 if n_obj <= 5 else 3
    ref_dirs = get_reference_directions("das-dennis", n_obj, n_partitions=partitions)
    return NSGA3(ref_dirs=ref_dirs, pop_size=max(pop_size, len(ref_dirs)), **kwargs)


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
    #: asked a generation at a time: the next ask waits until the last one is told
    generational = False

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
    seen = set(ctx.seen) | set(ctx.pending)
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
                 pop_size: int = 64, enumerate_limit: int = 20_000,
                 reselect_growth: float = 0.25, local_share: float = 0.0,
                 rank_with_archive: bool = True):
        super().__init__(seed=seed)
        if generations < 1 or pop_size < 4:
            raise ValueError(f"algorithm.generations must be >= 1 and algorithm.pop_size >= 4, "
                             f"got {generations} and {pop_size}")
        if isinstance(enumerate_limit, bool) or not isinstance(enumerate_limit, int) or \
                enumerate_limit < 0:
            raise ValueError(f"algorithm.enumerate_limit must be a non-negative integer (0: "
                             f"never enumerate), got {enumerate_limit!r}")
        self.enumerate_limit = enumerate_limit
        if not isinstance(reselect_growth, (int, float)) or reselect_growth < 0:
            raise ValueError(f"algorithm.reselect_growth must be a number >= 0 (0: choose the "
                             f"adaptive surrogate every iteration), got {reselect_growth!r}")
        self.reselect_growth = float(reselect_growth)
        if isinstance(local_share, bool) or not isinstance(local_share, (int, float)) or \
                not 0 <= local_share <= 1:
            raise ValueError(f"algorithm.local_share must be a number in [0, 1], got "
                             f"{local_share!r}")
        self.local_share = float(local_share)
        self.rank_with_archive = bool(rank_with_archive)
        self._chosen: list[str] | None = None
        self._chosen_at = 0
        self.surrogate_cfg = dict(surrogate)
        self.inputs = check_inputs(self.surrogate_cfg.pop("inputs", "genes+costs"))
        self.target = check_target(self.surrogate_cfg.pop("target", "log"))
        self.generations = generations
        self.pop_size = pop_size
        self._pending_pred: dict[str, float] = {}  # arch id -> predicted error, until told
        self._told: list[tuple[float, float]] = []  # (true, predicted) error of told ones

    def fit(self, ctx: Context):
        """Fit one surrogate per predicted objective (error, table metrics) on the evaluated
        archive; returns ``predict(genomes) -> (n, n_predicted)`` and the log entry."""
        ok = ctx.F[:, 0] < 1.0
        cfg = dict(self.surrogate_cfg)
        name = cfg.pop("name", "adaptive")

        def encode(G):
            return surrogate_inputs(ctx.space, G, self.inputs, ctx.info)

        EX = encode(ctx.X[ok])
        n_ok = int(ok.sum())
        # The adaptive model's choice is re-made by cross-validation when the archive has
        # grown by `reselect_growth` since the last choice; in between the chosen model is
        # refitted alone (its choice rarely changes between nearby archive sizes, and the
        # cross-validation of every candidate is most of an iteration's time).
        reuse = (name == "adaptive" and self._chosen is not None
                 and n_ok < self._chosen_at * (1.0 + self.reselect_growth))
        models = []
        for col in ctx.predicted_index:
            seed = int(self.rng.integers(2**31))
            if reuse:
                model = make_surrogate(self._chosen[len(models)], seed=seed)
            else:
                model = make_surrogate(name, seed=seed, **cfg)
            model.fit(EX, to_target(ctx.F[ok, col], self.target))
            models.append(model)
        if name == "adaptive" and not reuse:
            self._chosen = [m.chosen for m in models]
            self._chosen_at = n_ok
        first = models[0]
        entry = {"surrogate": getattr(first, "chosen", first.name), "train_size": n_ok}
        for k, v in (getattr(first, "cv_scores", {}) or {}).get(entry["surrogate"], {}).items():
            entry[f"cv_{k}"] = float(v)

        def predict(G):
            E = encode(np.asarray(G, dtype=np.int64))
            return np.column_stack([from_target(m.predict(E), self.target) for m in models])

        return predict, entry

    def candidates(self, ctx: Context, predict) -> tuple[np.ndarray, np.ndarray, Any]:
        """Genomes to choose from, their objectives (predicted where unknown) and constraint
        violations: every distinct architecture when the space can list them within
        ``enumerate_limit`` (the predicted front is then exact), else the final population of
        NSGA-II (NSGA-III beyond three objectives) run on the surrogate."""
        pool = ctx.space.all_canonical(limit=self.enumerate_limit) \
            if self.enumerate_limit else None
        if pool is not None:
            keep = np.array([ctx.is_new(g) for g in pool], bool)
            if ctx.constrained:
                keep &= np.array([ctx.feasible(tuple(int(v) for v in g)) for g in pool], bool)
            pool = pool[keep]
            return pool, objective_matrix(ctx, pool, predict), None
        constraint = ((lambda x: 0.0 if ctx.feasible(tuple(int(v) for v in x)) else 1.0)
                      if ctx.constrained else None)
        problem = SurrogateProblem(ctx.space, predict, ctx, constraint)
        # Seed the population with the evaluated non-dominated set plus random samples.
        front = ctx.X[pareto.non_dominated(ctx.F)] if len(ctx.X) else np.empty((0, ctx.space.n_var))
        init = [tuple(int(v) for v in g) for g in front][: self.pop_size // 2]
        init += [tuple(int(v) for v in g)
                 for g in ctx.space.sample(self.pop_size - len(init), self.rng)]
        algo = moo_algorithm(ctx.n_obj, self.pop_size, sampling=np.array(init, dtype=np.int64),
                             **_operators(ctx.space, set()))
        res = minimize(problem, algo, ("n_gen", self.generations),
                       seed=int(self.rng.integers(2**31)), verbose=False)
        pop = res.pop if res.pop is not None else algo.pop
        return pop.get("X").astype(np.int64), pop.get("F"), pop.get("CV")

    def _against(self, ctx: Context) -> np.ndarray | None:
        return ctx.F if self.rank_with_archive else None

    def neighbours(self, ctx: Context, predict) -> tuple[np.ndarray, np.ndarray]:
        """The new, feasible one-gene neighbours of the evaluated front, with their
        objectives (predicted where unknown)."""
        front = pareto.non_dominated(ctx.F) if len(ctx.F) else np.empty(0, int)
        X = np.array(list(new_neighbours(ctx, front)),
                     dtype=np.int64).reshape(-1, ctx.space.n_var)
        return X, (objective_matrix(ctx, X, predict) if len(X) else np.empty((0, ctx.n_obj)))

    def ask(self, ctx: Context, n: int) -> list[tuple[int, ...]]:
        predict, entry = self.fit(ctx)
        chosen: list[tuple[int, ...]] = []
        n_local = int(round(self.local_share * n))
        if n_local:
            # Exploit: the predicted front of the evaluated front's neighbourhood (a local
            # search guided by the surrogate; networks near good ones are often good).
            NX, NF = self.neighbours(ctx, predict)
            chosen = select_diverse(ctx, NX, NF, None, n_local, against=self._against(ctx)) \
                if len(NX) else []
        ctx_g = dataclasses.replace(ctx, pending=ctx.pending | {ctx.space.arch_id(g)
                                                                for g in chosen})
        cand_X, cand_F, cv = self.candidates(ctx_g, predict)
        # Constant liar (Ginsbourger et al. 2010): architectures still training count as
        # evaluated at the surrogate's own prediction, so candidates they would dominate
        # wait, and new picks spread away from them.
        lies = None
        if ctx.pending_X is not None and len(ctx.pending_X):
            lies = objective_matrix(ctx, np.asarray(ctx.pending_X, np.int64), predict)
        against = self._against(ctx)
        if against is not None and lies is not None:
            against = np.vstack([against, lies])
        chosen += select_diverse(ctx_g, cand_X, cand_F, cv, n - len(chosen),
                                 against=against, spread_from=lies)
        if len(chosen) < n:  # the predicted front ran dry: fill with new random samples
            ctx2 = dataclasses.replace(
                ctx, seen=ctx.seen | {ctx.space.arch_id(g) for g in chosen})
            chosen += sample_new(ctx2, n - len(chosen), self.rng)
        preds = predict(np.array(chosen, dtype=np.int64))[:, 0] if chosen else []
        self._pending_pred.update({ctx.space.arch_id(g): float(p)
                                   for g, p in zip(chosen, preds)})
        self.log.append(entry)
        return chosen

    #: held-out quality is measured on at least this many of the latest told predictions
    HELDOUT_WINDOW = 6

    def tell(self, ctx: Context, genomes, F) -> None:
        # Held-out quality: the surrogate's predictions, made before training, of the told
        # architectures (the latest HELDOUT_WINDOW of them when asks are smaller).
        if not hasattr(self, "_told"):  # a state pickled before asynchronous evaluation
            self._told = []
        for g, f in zip(genomes, F):
            p = self._pending_pred.pop(ctx.space.arch_id(g), None)
            if p is not None and f[0] < 1.0:
                self._told.append((float(f[0]), p))
        window = self._told[-max(self.HELDOUT_WINDOW, len(genomes)):]
        if self.log and len(window) >= 3:
            true, pred = (np.array(v) for v in zip(*window))
            m = rank_metrics(true, pred)
            self.log[-1].update({f"heldout_{k}": float(v) for k, v in m.items()})


def select_diverse(ctx: Context, X: np.ndarray, F: np.ndarray, cv, n: int,
                   against: np.ndarray | None = None,
                   spread_from: np.ndarray | None = None) -> list[tuple[int, ...]]:
    """Pick ``n`` new architectures from the predicted front, spread along the cost axis:
    candidates are taken front by front, and within a front at evenly spaced cost quantiles
    (NSGANetV2 picks a diverse subset of the predicted front in the same spirit).

    ``against``: the evaluated objectives; when given, the fronts are those of the
    candidates sorted together with the evaluated architectures, so a candidate predicted
    to be dominated by a trained network waits behind those predicted to be dominated only
    by other candidates (it spends no evaluation where the front is already known).

    ``spread_from``: objectives of architectures still training (predicted); when given,
    each front is sampled farthest-first from them instead of at cost quantiles, so an
    ask for one architecture while others train does not repeat their region."""
    feas = np.ones(len(X), bool) if cv is None else (cv.reshape(-1) <= 0)
    keys = [ctx.space.arch_id(x) for x in X]
    fresh = np.array([feas[i] and keys[i] not in ctx.seen and keys[i] not in ctx.pending
                      for i in range(len(X))], bool)
    if not fresh.any():
        return []
    idx = np.flatnonzero(fresh)
    if against is not None and len(against):
        ranks = pareto.pareto_ranks(np.vstack([against, F[idx]]))[len(against):]
    else:
        ranks = pareto.pareto_ranks(F[idx])
    chosen: list[int] = []
    for r in np.unique(ranks):
        layer = idx[ranks == r]
        layer = layer[np.argsort(F[layer, 1], kind="stable")]
        need = n - len(chosen)
        if len(layer) <= need:
            chosen += list(layer)
        elif spread_from is not None and len(spread_from):
            chosen += list(layer[_farthest_points(F[layer], need, anchors=spread_from)])
        elif F.shape[1] == 2:
            pos = np.unique(np.round(np.linspace(0, len(layer) - 1, need)).astype(int))
            chosen += list(layer[pos])
        else:  # K > 2: farthest-point spread over the normalised objectives
            chosen += list(layer[_farthest_points(F[layer], need)])
        if len(chosen) >= n:
            break
    out, keys_out = [], set()
    for i in chosen[:n]:
        if keys[i] not in keys_out:
            keys_out.add(keys[i])
            out.append(tuple(int(v) for v in X[i]))
    return out


def _farthest_points(F: np.ndarray, k: int, anchors: np.ndarray | None = None) -> np.ndarray:
    """Indices of ``k`` rows of ``F`` spread out: start at the lowest first objective (or,
    with ``anchors``, at the row farthest from them), then repeatedly the row farthest from
    those chosen (objectives min-max normalised over ``F`` and the anchors)."""
    both = F if anchors is None else np.vstack([F, anchors])
    lo, span = both.min(axis=0), np.ptp(both, axis=0)
    Z = (F - lo) / np.where(span > 0, span, 1.0)
    if anchors is not None and len(anchors):
        A = (np.asarray(anchors, float) - lo) / np.where(span > 0, span, 1.0)
        dist = np.min(np.linalg.norm(Z[:, None, :] - A[None, :, :], axis=2), axis=1)
        chosen = [int(np.argmax(dist))]
        dist = np.minimum(dist, np.linalg.norm(Z - Z[chosen[0]], axis=1))
    else:
        chosen = [int(np.argmin(F[:, 0]))]
        dist = np.linalg.norm(Z - Z[chosen[0]], axis=1)
    while len(chosen) < k:
        i = int(np.argmax(dist))
        chosen.append(i)
        dist = np.minimum(dist, np.linalg.norm(Z - Z[i], axis=1))
    return np.array(chosen)


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
                                  **_operators(ctx.space, set()))
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
        from pymoo.core.population import Population

        if self.algo is None:  # the initial population
            self._setup(ctx, list(genomes), n=max(1, len(genomes)))
            self.algo.ask()
        pop = Population.new("X", np.array(genomes, dtype=np.int64))
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


def _mutants(space, genome: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every genome one gene away from ``genome``, canonical (may repeat networks)."""
    out = []
    for i, g in enumerate(space.genes):
        for v in range(g.hi + 1):
            if v != genome[i]:
                out.append(space.canonical(genome[:i] + (v,) + genome[i + 1:]))
    return out


def new_neighbours(ctx: Context, rows, shuffle=None):
    """Yield the distinct, new, feasible one-gene neighbours of ``ctx.X[rows]``, member by
    member; ``shuffle`` (e.g. ``rng.permutation``) reorders each member's neighbours."""
    keys: set[str] = set()
    for i in rows:
        mutants = _mutants(ctx.space, tuple(int(v) for v in ctx.X[i]))
        if shuffle is not None:
            mutants = [tuple(int(v) for v in g)
                       for g in shuffle(np.array(mutants, dtype=np.int64))]
        for g in mutants:
            aid = ctx.space.arch_id(g)
            if aid in keys or not ctx.is_new(g) or not ctx.feasible(g):
                continue
            keys.add(aid)
            yield g


def _ranks_crowding(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pareto rank and crowding distance (pymoo's) within each front, for tournaments."""
    from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance

    ranks = pareto.pareto_ranks(F)
    crowd = np.zeros(len(F))
    for r in np.unique(ranks[np.isfinite(ranks)]):
        idx = np.flatnonzero(ranks == r)
        crowd[idx] = calc_crowding_distance(F[idx]) if len(idx) > 2 else np.inf
    return ranks, crowd


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
        if population < 2 or not 1 <= sample <= population:
            raise ValueError(f"algorithm.population must be >= 2 and 1 <= algorithm.sample <= "
                             f"population, got {population} and {sample}")
        self.population, self.sample = population, sample

    def ask(self, ctx: Context, n: int) -> list[tuple[int, ...]]:
        X, F = ctx.X[-self.population:], ctx.F[-self.population:]
        ranks, crowd = _ranks_crowding(F)
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
    if name == "evolution":
        return RegularizedEvolution(seed=seed, **cfg)
    if name == "local":
        return LocalSearch(seed=seed, **cfg)
    raise ValueError(f"unknown algorithm {name!r}; choose algorithm=one of {list(ALGORITHMS)}")
