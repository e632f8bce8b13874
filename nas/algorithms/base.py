"""What every search algorithm shares.

**The ask/tell lifecycle.** A search builds one :class:`Algorithm` (seeded), then asks it
for :meth:`~Algorithm.initial` genomes once and for :meth:`~Algorithm.ask` batches after,
each time with a :class:`Context`: the archive as it stood (evaluated genomes and their
objectives), the genomes still being evaluated, the space, costs and constraints. It tells
each batch's objectives with :meth:`~Algorithm.tell`, in the order asked. Between calls the
search pickles the algorithm (its random generators included), so a resumed run asks what
the killed one would have asked. An algorithm returns feasible, canonical genomes the
context has not seen and is not evaluating, distinct within the batch; fewer only when the
space runs out. ``tell`` is optional (the default does nothing).

Also here: pymoo adapters (canonical repair and duplicate elimination, NSGA-II or NSGA-III
by the number of objectives), what a surrogate is fitted on, one-gene neighbourhoods, and
Pareto ranks with crowding for tournaments.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.algorithms.moo.nsga3 import NSGA3
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.repair import Repair
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
from pymoo.util.ref_dirs import get_reference_directions

from nas import pareto
from nas.cost import totals
from nas.objectives import is_cost

log = logging.getLogger(__name__)


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
    # genomes -> (n, k) zero-cost proxy features of their networks (surrogate.features);
    # None: the search computes none
    proxy_features: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def n_obj(self) -> int:
        return len(self.objectives)

    @property
    def cost_index(self) -> list[int]:
        """F columns known before training (costs), in order."""
        return [i for i, o in enumerate(self.objectives) if is_cost(o)]

    @property
    def predicted_index(self) -> list[int]:
        """F columns known only after evaluation (error, table metrics)."""
        return [i for i, o in enumerate(self.objectives) if not is_cost(o)]

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


def counted(space, genome) -> dict:
    macs, params, acts = totals(space.decode(genome))
    return {"macs": macs, "params": params, "activations": acts}


def surrogate_inputs(space, genomes, kind: str = "genes+costs",
                     info: Callable[[Sequence[int]], dict] | None = None,
                     proxies: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """The rows a surrogate is fitted on and predicts from, one per genome (2-D input).

    ``genes``: ``space.features`` (one-hot choices, numeric genes scaled to [0, 1]).
    ``genes+costs``: the same plus the natural logs of the decoded network's MACs,
    parameters and activations, exact from the cost model. They summarise what many genes
    do together (resolution x width x depth) in three numbers that track accuracy
    (measured on the search benchmark, benchmarks/RESULTS.md: the adaptive surrogate's
    Kendall tau on held-out random architectures after 50 evaluations 0.48 with genes only,
    0.53-0.54 with costs).
    ``info`` maps a genome to a dict with those counts (the search's memo); None counts.
    ``proxies`` (``surrogate.features``): genomes -> zero-cost proxy columns appended last
    (:class:`nas.evaluate.proxies.ProxyFeatures`).
    """
    check_inputs(kind)
    X = space.features(genomes)
    if kind != "genes":
        get = info if info is not None else (lambda g: counted(space, g))
        logs = [[math.log(max(float(d[k]), 1.0)) for k in ("macs", "params", "activations")]
                for d in (get(tuple(int(v) for v in g)) for g in np.asarray(genomes))]
        X = np.concatenate([X, np.asarray(logs, dtype=np.float64).reshape(len(X), 3)], axis=1)
    if proxies is not None:
        X = np.concatenate([X, np.asarray(proxies(np.asarray(genomes)), dtype=np.float64)
                            .reshape(len(X), -1)], axis=1)
    return X


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
    partitions = 4 if n_obj <= 5 else 3
    ref_dirs = get_reference_directions("das-dennis", n_obj, n_partitions=partitions)
    return NSGA3(ref_dirs=ref_dirs, pop_size=max(pop_size, len(ref_dirs)), **kwargs)


def operators(space, seen: set[str]):
    return dict(crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                mutation=PM(prob=1.0, eta=20, vtype=float, repair=RoundingRepair()),
                repair=CanonicalRepair(space),
                eliminate_duplicates=CanonicalDuplicates(space, seen))


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


def mutants(space, genome: tuple[int, ...]) -> list[tuple[int, ...]]:
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
        near = mutants(ctx.space, tuple(int(v) for v in ctx.X[i]))
        if shuffle is not None:
            near = [tuple(int(v) for v in g) for g in shuffle(np.array(near, dtype=np.int64))]
        for g in near:
            aid = ctx.space.arch_id(g)
            if aid in keys or not ctx.is_new(g) or not ctx.feasible(g):
                continue
            keys.add(aid)
            yield g


def ranks_crowding(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pareto rank and crowding distance (pymoo's) within each front, for tournaments."""
    ranks = pareto.pareto_ranks(F)
    crowd = np.zeros(len(F))
    for r in np.unique(ranks[np.isfinite(ranks)]):
        idx = np.flatnonzero(ranks == r)
        crowd[idx] = calc_crowding_distance(F[idx]) if len(idx) > 2 else np.inf
    return ranks, crowd


# What the surrogate sees of an architecture (surrogate.inputs).
INPUTS = ("genes", "genes+costs")
