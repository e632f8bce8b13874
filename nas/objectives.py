"""What a search minimises and under which limits: objectives, the costs of genomes,
constraints.

An objective is ``error`` (1 - validation accuracy), a *cost* known before evaluation, or,
with a table evaluator, an accuracy column of the table (``COL`` or ``max:COL``, minimised
as 1 - accuracy). Costs are those of the spec (:data:`COSTS`: MACs, parameters,
activations, predicted latency) or ``min:COL``, a column of a table keyed by genome: a
device's measured latency or energy (``costs.table=PATH``, or the table evaluator's own
source). :class:`Coster` decodes genomes once and memoises their costs;
:func:`make_feasible` turns the ``constraints`` section (``max_macs``, ...,
``max: {COL: limit}``) into a predicate.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from omegaconf import DictConfig

from nas import checks
from nas.cost import human, totals

#: cost objectives (known from the spec before training) -> the archive column of each
COSTS = {"macs": "macs", "params": "params", "activations": "activations",
         "latency": "latency_ms"}
#: the objectives when the config names none: error and MACs
DEFAULT_OBJECTIVES = ("error", "macs")
#: constraint keys -> the cost column each limits
LIMITS = {"max_macs": "macs", "max_params": "params", "max_latency_ms": "latency_ms"}
#: units of a table column, read from its name's suffix (for labels)
UNITS = {"_ms": "ms", "_mj": "mJ", "_us": "us", "_s": "s", "_j": "J", "_mw": "mW",
         "_w": "W", "_mb": "MB", "_kb": "kB"}


def is_cost(name: str) -> bool:
    """Whether objective ``name`` is known before evaluation (a spec cost or ``min:COL``)."""
    return name in COSTS or name.startswith("min:")


def cost_column(name: str) -> str:
    """The frame column of cost objective ``name`` (``latency`` -> ``latency_ms``,
    ``min:COL`` -> ``COL``)."""
    return COSTS[name] if name in COSTS else name.removeprefix("min:")


def metric_column(name: str) -> str:
    """The table column of accuracy objective ``name`` (``max:COL`` or ``COL``)."""
    return name.removeprefix("max:")


def column_label(col: str) -> str:
    """``raspi4_latency_ms`` -> ``raspi4 latency (ms)`` (the unit from the suffix)."""
    for suffix, unit in UNITS.items():
        if col.lower().endswith(suffix):
            return f"{col[:-len(suffix)].replace('_', ' ')} ({unit})"
    return col.replace("_", " ")


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


def check_objectives(names: list[str], *, table: bool = False,
                     cost_table: bool = False) -> None:
    """``error`` first, then at least one cost (:data:`COSTS`, or ``min:COL`` of a table:
    ``cost_table`` (costs.table) or ``table`` (evaluator=table)); accuracy columns
    (``COL``, ``max:COL``) only with ``table``. The columns are checked against the tables
    once they are loaded."""
    if len(names) < 2 or names[0] != "error":
        raise ValueError(f"objectives={names}: the first objective must be error, followed "
                         f"by at least one cost of {list(COSTS)} or min:COL; e.g. "
                         f"objectives=[error,macs]")
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"objectives={names} names {sorted(dup)[0]!r} twice")
    for n in names[1:]:
        if n in COSTS:
            continue
        if n.startswith("min:"):
            if not n[4:]:
                raise ValueError(f"objective {n!r} names no column; write min:COL")
            if not (table or cost_table):
                raise ValueError(f"objective {n!r} reads a column of a table: pass "
                                 f"costs.table=PATH (a CSV or Parquet file with a genome "
                                 f"column) or use evaluator=table")
            continue
        if n.startswith("max:") and not n[4:]:
            raise ValueError(f"objective {n!r} names no column; write max:COL")
        if not table:
            what = "an accuracy column" if n.startswith("max:") else "not a cost"
            raise ValueError(f"objective {n!r} is {what} ({', '.join(COSTS)}, min:COL); "
                             f"accuracy columns of a table are objectives only with "
                             f"evaluator=table")
    if not any(is_cost(n) for n in names[1:]):
        raise ValueError(f"objectives={names} has no cost: add one of {list(COSTS)} or "
                         f"min:COL")


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
    #: a table keyed by genome (:class:`nas.table.Table`) whose columns ``min:COL`` costs and
    #: ``constraints.max.COL`` limits read (a device's latency or energy); None: none
    columns: Any = None

    def __post_init__(self):
        if isinstance(self.cost_kinds, str):
            self.cost_kinds = (self.cost_kinds,)
        self.cost_kinds = tuple(self.cost_kinds)
        self._memo: OrderedDict[str, dict] = OrderedDict()

    def info(self, genome, *, latency: bool = True) -> dict:
        """The genome's arch id, spec and costs. ``latency=False``: leave ``latency_ms``
        unset (None) when it is not known yet; predicting it from the latency table times
        every layer the table lacks, so whatever needs only the analytic costs (the MACs of
        a sample of the space) asks without it."""
        aid = self.space.arch_id(genome)
        got = self._memo.get(aid)
        if got is not None:
            self._memo.move_to_end(aid)
        else:
            spec = self.space.decode(genome)
            macs, params, acts = totals(spec)
            got = {"arch_id": aid, "spec": spec, "macs": macs, "params": params,
                   "activations": acts, "latency_ms": None}
            if self.columns is not None:
                got["columns"] = self.row(genome)
            self._memo[aid] = got
            if len(self._memo) > self.capacity:
                self._memo.popitem(last=False)
        if latency and self.latency_table is not None and got["latency_ms"] is None:
            got["latency_ms"] = float(self.latency_table.predict(got["spec"]))
        return got

    def row(self, genome) -> dict:
        """The cost table's row of ``genome``; ValueError naming it when the table lacks
        it."""
        row = self.columns.lookup(genome)
        if row is None:
            raise ValueError(f"genome {self.columns.key(genome)} is not in the cost table "
                             f"{self.columns.source} ({len(self.columns.frame):,} genomes); "
                             f"every network the {self.space.name} space may propose needs a "
                             f"row: measure it, or constrain the space to the table's "
                             f"networks")
        return row

    @property
    def cost_kind(self) -> str:
        """The first cost objective."""
        return self.cost_kinds[0]

    def value(self, info: dict, col: str) -> float:
        """Column ``col`` of a genome's ``info``: a spec cost or a cost table's column."""
        if col in info and col != "columns":
            return float(info[col])
        return float(info["columns"][col])

    def cost(self, genome) -> float:
        """The first cost objective of ``genome``."""
        return self.value(self.info(genome), cost_column(self.cost_kinds[0]))

    def costs(self, genome) -> tuple[float, ...]:
        """Every cost objective of ``genome``, in objective order."""
        i = self.info(genome)
        return tuple(self.value(i, cost_column(k)) for k in self.cost_kinds)


def limits_of(constraints: dict) -> dict[str, float]:
    """``{column: limit}`` of the ``constraints`` section: ``max_macs`` and the other keys
    of :data:`LIMITS`, and every ``max: {COL: limit}`` (a None limit is no limit)."""
    out = {LIMITS[k]: float(v) for k, v in constraints.items()
           if k in LIMITS and v is not None}
    for col, v in (constraints.get("max") or {}).items():
        if v is not None:
            out[COSTS.get(str(col), str(col))] = float(v)
    return out


def check_constraints(constraints: dict, columns: Any = None, *, later: bool = False) -> None:
    """ValueError naming the key and the fix for an unknown constraint key, a limit that is
    not a positive number, or a ``max.COL`` column that neither the spec costs nor the cost
    table (``columns``, a :class:`nas.table.Table`) has (``later``: a table will be
    loaded, its columns are checked then)."""
    for key, v in constraints.items():
        if key == "max":
            if v is not None and not isinstance(v, dict):
                raise ValueError(f"constraints.max={v!r} is invalid; give column limits, "
                                 f"e.g. +constraints.max.raspi4_latency_ms=20")
            known = set(COSTS) | set(LIMITS.values()) | set(
                columns.frame.columns if columns is not None else ())
            for col, lim in (v or {}).items():
                checks.number(f"constraints.max.{col}", lim, lo=0.0, lo_open=True,
                              none="no limit")
                if str(col) not in known and not (later and columns is None):
                    raise ValueError(
                        f"constraints.max.{col}: no column {col!r}; limits apply to "
                        f"{', '.join(sorted(set(COSTS) | set(LIMITS.values())))}"
                        + (f" and the cost table's {', '.join(map(str, columns.frame.columns))}"
                           if columns is not None else
                           " (pass costs.table=PATH for a device's columns)"))
            continue
        if key not in LIMITS:
            raise ValueError(f"constraints.{key} is not a constraint; use "
                             f"{', '.join(LIMITS)} or max.COL")
        checks.number(f"constraints.{key}", v, lo=0.0, lo_open=True, none="no limit")



def make_feasible(coster: Coster, constraints: dict):
    """``(feasible(genome) -> bool, constrained)`` for the ``constraints`` section (a None
    limit is no limit)."""
    limits = limits_of(constraints)

    def feasible(genome) -> bool:
        if not limits:
            return True
        i = coster.info(genome)
        return all(coster.value(i, col) <= v for col, v in limits.items())

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
    names = {col: key for key, col in LIMITS.items()}
    for col, limit in limits_of(constraints).items():
        smallest = min(coster.value(coster.info(g), col) for g in genomes)
        key = names.get(col) if constraints.get(names.get(col, "")) is not None else None
        lows.append(f"constraints.{key or 'max.' + col}={human(limit)} (the smallest of {n} "
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
    return {k: float(max(coster.value(i, cost_column(k)) for i in infos)) for k in kinds}


__all__ = ["COSTS", "Coster", "DEFAULT_OBJECTIVES", "LIMITS", "UNITS", "check_constraints",
           "check_objectives", "check_satisfiable", "column_label", "cost_column",
           "cost_references", "is_cost", "limits_of", "make_feasible", "metric_column",
           "objectives_of"]
