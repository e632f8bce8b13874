"""What a search minimises and under which limits: objectives, the costs of genomes,
constraints.

An objective is ``error`` (1 - validation accuracy), a *cost* known from the spec before
training (:data:`COSTS`: MACs, parameters, activations, predicted latency) or, with a table
evaluator, an accuracy column of the table (minimised as 1 - accuracy). :class:`Coster`
decodes genomes once and memoises their costs; :func:`make_feasible` turns the
``constraints`` section into a predicate.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from omegaconf import DictConfig

from nas.cost import human, totals

#: cost objectives (known from the spec before training) -> the archive column of each
COSTS = {"macs": "macs", "params": "params", "activations": "activations",
         "latency": "latency_ms"}
#: the objectives when the config names none: error and MACs
DEFAULT_OBJECTIVES = ("error", "macs")
#: constraint keys -> the cost column each limits
LIMITS = {"max_macs": "macs", "max_params": "params", "max_latency_ms": "latency_ms"}


def objectives_of(cfg: DictConfig) -> list[str]:
    """The objective names of a config: ``objectives: [error, macs, ...]`` (a run folder
    written before objectives were a list holds ``{cost: NAME}``, read as
    ``[error, NAME]``)."""
    obj = cfg.get("objectives")
    if obj is None:
        return list(DEFAULT_OBJECTIVES)
    if isinstance(obj, (DictConfig, dict)):
        return ["error", str(obj.get("cost", "macs"))]
    if isinstance(obj, str):
        raise ValueError(f"objectives must be a list such as [error,macs], got {obj!r}; "
                         f"e.g. objectives=[error,macs,params]")
    return [str(x) for x in obj]


def check_objectives(names: list[str], *, table: bool = False) -> None:
    """``error`` first, then at least one cost of :data:`COSTS`; further names only with
    ``table`` (evaluator=table), as accuracy columns of the table (minimised as
    1 - accuracy; the search checks them against the table once it is loaded)."""
    if len(names) < 2 or names[0] != "error":
        raise ValueError(f"objectives={names}: the first objective must be error, followed "
                         f"by at least one cost of {list(COSTS)}; e.g. objectives=[error,macs]")
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"objectives={names} names {sorted(dup)[0]!r} twice")
    for n in names[1:]:
        if n in COSTS:
            continue
        if not table:
            raise ValueError(f"objective {n!r} is not a cost ({', '.join(COSTS)}); table "
                             f"metrics are objectives only with evaluator=table")
    if not any(n in COSTS for n in names[1:]):
        raise ValueError(f"objectives={names} has no cost: add one of {list(COSTS)}")


@dataclass
class Coster:
    """Decodes genomes once and memoises their costs (macs, params, activations, latency).

    The memo is least-recently-used and bounded by ``capacity``: the surrogate's NSGA-II
    touches ~2,000 new genomes per iteration at ~5 KB each, so an unbounded memo would grow by
    ~10 MB per iteration for the whole of a long search."""

    space: Any
    cost_kinds: tuple[str, ...]
    latency_table: Any = None
    capacity: int = 20_000

    def __post_init__(self):
        if isinstance(self.cost_kinds, str):
            self.cost_kinds = (self.cost_kinds,)
        self.cost_kinds = tuple(self.cost_kinds)
        self._memo: OrderedDict[str, dict] = OrderedDict()

    def info(self, genome) -> dict:
        aid = self.space.arch_id(genome)
        got = self._memo.get(aid)
        if got is not None:
            self._memo.move_to_end(aid)
        else:
            spec = self.space.decode(genome)
            macs, params, acts = totals(spec)
            got = {"arch_id": aid, "spec": spec, "macs": macs, "params": params,
                   "activations": acts, "latency_ms": None}
            if self.latency_table is not None:
                got["latency_ms"] = float(self.latency_table.predict(spec))
            self._memo[aid] = got
            if len(self._memo) > self.capacity:
                self._memo.popitem(last=False)
        return got

    @property
    def cost_kind(self) -> str:
        """The first cost objective."""
        return self.cost_kinds[0]

    def cost(self, genome) -> float:
        """The first cost objective of ``genome``."""
        return float(self.info(genome)[COSTS[self.cost_kinds[0]]])

    def costs(self, genome) -> tuple[float, ...]:
        """Every cost objective of ``genome``, in objective order."""
        i = self.info(genome)
        return tuple(float(i[COSTS[k]]) for k in self.cost_kinds)


def make_feasible(coster: Coster, constraints: dict):
    """``(feasible(genome) -> bool, constrained)`` for the ``constraints`` section (a None
    limit is no limit)."""
    limits = {k: v for k, v in constraints.items() if v is not None}

    def feasible(genome) -> bool:
        if not limits:
            return True
        i = coster.info(genome)
        return all(i[LIMITS[k]] <= v for k, v in limits.items())

    return feasible, bool(limits)


def check_satisfiable(space, coster: Coster, feasible, constraints: dict, n: int = 2000) -> None:
    """ValueError naming the limits when none of ``n`` random genomes of ``space`` meets
    them (fixed seed)."""
    if coster.latency_table is not None:
        n = min(n, 100)  # every new block is measured: keep the probe small
    rng = np.random.default_rng(12345)
    genomes = space.sample(n, rng)
    if any(feasible(g) for g in genomes):
        return
    lows = []
    for key, col in LIMITS.items():
        if constraints.get(key) is not None:
            smallest = min(coster.info(g)[col] for g in genomes)
            lows.append(f"constraints.{key}={human(constraints[key])} (the smallest of {n} "
                        f"samples has {human(smallest)})")
    raise ValueError(f"no architecture of space {space.name!r} satisfies "
                      f"{'; '.join(lows)}: raise the limit or choose a smaller space config")


def cost_references(space, coster: Coster, n: int = 1000,
                    kinds: tuple[str, ...] | None = None) -> dict[str, float]:
    """Fixed hypervolume reference of each cost axis (``kinds``, default every cost of the
    coster): the largest cost among ``n`` samples drawn with a fixed seed (independent of
    the run's seed, so runs compare)."""
    kinds = tuple(coster.cost_kinds if kinds is None else kinds)
    if not kinds:
        return {}
    if "latency" in kinds:
        n = min(n, 100)  # every new block is measured: keep the probe small
    genomes = space.sample(n, np.random.default_rng(2024))
    infos = [coster.info(g) for g in genomes]
    return {k: float(max(i[COSTS[k]] for i in infos)) for k in kinds}


__all__ = ["COSTS", "Coster", "DEFAULT_OBJECTIVES", "LIMITS", "check_objectives",
           "check_satisfiable", "cost_references", "make_feasible", "objectives_of"]
