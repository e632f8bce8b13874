"""SearchSpace: one object owns a space's genome layout (bounds, meaning, canonical form).

A genome is a tuple of non-negative integers; gene ``i`` is an index into
``genes[i].choices`` (so ``xl`` is all zeros and ``xu[i] = len(choices) - 1``, both
inclusive, as pymoo's integer variables). A subclass declares its genes once, in order, with
:meth:`SearchSpace._add_gene`, and implements :meth:`SearchSpace._build` (decoded gene values
-> layers) and, where it can, :meth:`SearchSpace._encode`. Everything else lives here:
validation with errors that name the gene, canonical form, ids, sampling, features for the
surrogate, exact size, parsing of dash-separated genomes.

**Canonical form.** A gene may matter only when a *controller* gene takes some values (the
kernel of a stage's 4th block matters only when the stage's depth is 4). Inactive genes are
set to 0, so genomes that decode to the same network share one canonical form and one
:meth:`SearchSpace.arch_id`. Spaces keep choices free of duplicates (a width rounding to the
same channels twice is one choice), so distinct canonical genomes are distinct networks and
:meth:`SearchSpace.size` counts architectures exactly.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from nas.spec import ArchSpec, Layer
from search_spaces import baselines

Genome = tuple[int, ...]


def _label(v: Any) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, float):
        return format(v, "g")
    if isinstance(v, tuple):
        return "x".join(_label(x) for x in v)
    return str(v)


@dataclass(frozen=True)
class Gene:
    """One position of the genome.

    Attributes:
        name: dotted name, e.g. ``stage2.block1.kernel``.
        position: index in the genome.
        choices: the decoded value of each gene value (gene value ``i`` means ``choices[i]``).
        meaning: what the gene encodes, e.g. ``kernel size``.
        active_if: ``(controller position, controller values)``: the gene matters only when
            the controller gene holds one of those values; ``None`` when it always matters.
    """

    name: str
    position: int
    choices: tuple
    meaning: str
    active_if: tuple[int, tuple[int, ...]] | None = None

    @property
    def lo(self) -> int:
        return 0

    @property
    def hi(self) -> int:
        return len(self.choices) - 1

    @property
    def numeric(self) -> bool:
        """Choices are plain numbers (ordered), as opposed to labels or tuples."""
        return all(isinstance(c, (int, float)) and not isinstance(c, bool)
                   for c in self.choices)

    def describe(self) -> str:
        """``kernel size, choices 3/5/7``."""
        return f"{self.meaning}, choices {'/'.join(_label(c) for c in self.choices)}"


def config_error(space: str, key: str, value: Any, why: str) -> ValueError:
    return ValueError(f"{space} space config {key}={value!r}: {why}")


class SearchSpace:
    """Base class of every search space; see the module docstring.

    Subclasses set ``name``, validate their layout config in ``__init__`` (keyword-only),
    call ``super().__init__(num_classes=..., in_channels=...)`` first, declare genes with
    :meth:`_add_gene`, and implement :meth:`_build`, :meth:`_config` and, optionally,
    :meth:`_encode`. ``ANCESTORS`` lists baseline names (``search_spaces.baselines``) the
    space may contain; :meth:`ancestor_genome` finds their genomes by encoding them.
    """

    name: ClassVar[str] = ""
    ANCESTORS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, num_classes: int = 10, in_channels: int = 3) -> None:
        for key, v in (("num_classes", num_classes), ("in_channels", in_channels)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise config_error(self.name, key, v, "must be a positive integer")
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self._genes: list[Gene] = []
        self._by_name: dict[str, Gene] = {}

    # Layout declaration ------------------------------------------------------------------------
    def _add_gene(self, name: str, choices: Sequence, meaning: str, *,
                  active_if: tuple[str, Iterable[int]] | None = None) -> Gene:
        """Append a gene; ``active_if=(controller name, controller gene values)``."""
        if name in self._by_name:
            raise RuntimeError(f"{self.name}: gene {name!r} declared twice")
        choices = tuple(choices)
        if not choices or len(set(choices)) != len(choices):
            raise RuntimeError(f"{self.name}: gene {name!r} needs distinct choices, got "
                               f"{choices}")
        dep = None
        if active_if is not None:
            ctrl = self._by_name[active_if[0]]
            if ctrl.active_if is not None:
                raise RuntimeError(f"{self.name}: controller {ctrl.name!r} of {name!r} must "
                                   f"itself always be active")
            allowed = tuple(sorted(set(active_if[1])))
            # Active for every controller value: no condition at all.
            if allowed != tuple(range(len(ctrl.choices))):
                dep = (ctrl.position, allowed)
        gene = Gene(name, len(self._genes), choices, meaning, dep)
        self._genes.append(gene)
        self._by_name[name] = gene
        return gene

    # Layout --------------------------------------------------------------------------------------
    @property
    def genes(self) -> list[Gene]:
        """Gene descriptors in genome order."""
        return list(self._genes)

    def gene(self, name: str) -> Gene:
        """The gene called ``name``."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.name} space has no gene {name!r}; genes: "
                           f"{', '.join(self._by_name)}") from None

    @property
    def n_var(self) -> int:
        return len(self._genes)

    @property
    def xl(self) -> np.ndarray:
        """Inclusive lower bounds (all zero)."""
        return np.zeros(self.n_var, dtype=np.int64)

    @property
    def xu(self) -> np.ndarray:
        """Inclusive upper bounds: ``len(choices) - 1`` per gene."""
        return np.array([g.hi for g in self._genes], dtype=np.int64)

    @property
    def resolutions(self) -> tuple[int, ...]:
        """Input resolution choices (every space has a ``resolution`` gene)."""
        return self.gene("resolution").choices

    @property
    def default_resolution(self) -> int:
        """The largest resolution choice: the data set's native size."""
        return max(self.resolutions)

    # Validation and canonical form ---------------------------------------------------------------
    def validate(self, genome: Any) -> Genome:
        """``genome`` as a tuple of ints; raises ValueError naming the first bad gene."""
        if isinstance(genome, str):
            raise ValueError(f"{self.name} genome must be a sequence of integers, got the "
                             f"string {genome!r}; use parse_genome() for dash-separated text")
        if isinstance(genome, np.ndarray) and genome.ndim != 1:
            raise ValueError(f"{self.name} genome must be 1-D, got shape {genome.shape}")
        try:
            values = genome.tolist() if isinstance(genome, np.ndarray) else list(genome)
        except TypeError:
            raise ValueError(f"{self.name} genome must be a sequence of {self.n_var} integers, "
                             f"got {genome!r}") from None
        if len(values) != self.n_var:
            raise ValueError(f"{self.name} genome has {len(values)} genes, expected "
                             f"{self.n_var} (see `python -m nas.space {self.name}` for the "
                             f"layout)")
        # Fast path: plain ints (as from tolist()) within bounds.
        if all(type(v) is int for v in values) and \
                all(0 <= v <= g.hi for v, g in zip(values, self._genes)):
            return tuple(values)
        out = []
        for g, v in zip(self._genes, values):
            ok = isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))
            if not ok and isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)):
                ok = float(v).is_integer()
            if not ok:
                raise ValueError(f"gene {g.position} {g.name!r} = {v!r} is not an integer "
                                 f"({g.describe()})")
            iv = int(v)
            if not g.lo <= iv <= g.hi:
                raise ValueError(f"gene {g.position} {g.name!r} = {iv} is out of bounds "
                                 f"[{g.lo}, {g.hi}] ({g.describe()})")
            out.append(iv)
        return tuple(out)

    def is_active(self, genome: Genome, gene: Gene) -> bool:
        """Whether ``gene`` affects the network encoded by (validated) ``genome``."""
        return gene.active_if is None or genome[gene.active_if[0]] in gene.active_if[1]

    def canonical(self, genome: Any) -> Genome:
        """Validated genome with every inactive gene set to 0."""
        g = self.validate(genome)
        return tuple(v if self.is_active(g, gene) else 0 for v, gene in zip(g, self._genes))

    def _active_mask(self, genomes: np.ndarray) -> np.ndarray:
        mask = np.ones(genomes.shape, dtype=bool)
        for gene in self._genes:
            if gene.active_if is not None:
                ctrl, allowed = gene.active_if
                mask[:, gene.position] = np.isin(genomes[:, ctrl], allowed)
        return mask

    def _as_batch(self, genomes: Any) -> np.ndarray:
        arr = np.asarray(genomes)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.n_var:
            raise ValueError(f"{self.name}: expected genomes of shape (n, {self.n_var}), got "
                             f"{arr.shape}")
        if arr.dtype.kind not in "iu":
            if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)) or \
                    not np.all(arr == np.round(arr)):
                bad = next(i for i in range(arr.shape[0])
                           if not _is_int_row(arr[i]))
                self.validate(arr[bad].tolist())  # raises, naming the gene
            arr = arr.astype(np.int64)
        if np.any(arr < self.xl) or np.any(arr > self.xu):
            bad = int(np.argmax(np.any((arr < self.xl) | (arr > self.xu), axis=1)))
            self.validate(arr[bad].tolist())
        return arr.astype(np.int64, copy=False)

    def canonical_batch(self, genomes: Any) -> np.ndarray:
        """:meth:`canonical` of every row of a 2-D array (vectorised)."""
        arr = self._as_batch(genomes).copy()
        arr[~self._active_mask(arr)] = 0
        return arr

    def arch_id(self, genome: Any) -> str:
        """``<space>-<10 hex digits>``: sha1 of the space config and the canonical genome, so
        equal networks share an id and equal genomes of different configs do not.

        Memoised per genome of plain ints (a search's duplicate checks ask for the same
        genomes tens of thousands of times); anything else is validated as usual."""
        if isinstance(genome, np.ndarray) and genome.ndim == 1 and genome.dtype.kind in "iu":
            key = tuple(genome.tolist())
        elif type(genome) is tuple and all(type(v) is int for v in genome):
            key = genome
        else:
            return self._id(self.canonical(genome))
        memo = self._id_memo
        aid = memo.get(key)
        if aid is None:
            aid = self._id(self.canonical(key))
            if len(memo) >= 200_000:
                memo.clear()
            memo[key] = aid
        return aid

    @functools.cached_property
    def _id_memo(self) -> dict[Genome, str]:
        return {}  # genome -> arch id; a cache, not part of the space: never pickled

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_id_memo", None)
        return state

    def _id(self, canonical: Genome) -> str:
        h = hashlib.sha1(self._config_key.encode())
        h.update(format_genome(canonical).encode())
        return f"{self.name}-{h.hexdigest()[:10]}"

    @functools.cached_property
    def _config_key(self) -> str:
        # A space is immutable once built, so its config text is computed once.
        return json.dumps({"space": self.name, "config": self.config()}, sort_keys=True) + "\n"

    # Decoding ----------------------------------------------------------------------------------
    def values(self, genome: Any) -> dict[str, Any]:
        """Gene name -> decoded choice, for the canonical form of ``genome``."""
        g = self.canonical(genome)
        return {gene.name: gene.choices[v] for gene, v in zip(self._genes, g)}

    def decode(self, genome: Any) -> ArchSpec:
        """The network a genome encodes; ``spec.name`` is its :meth:`arch_id`."""
        g = self.canonical(genome)
        vals = {gene.name: gene.choices[v] for gene, v in zip(self._genes, g)}
        res = vals["resolution"]
        return ArchSpec(input=(self.in_channels, res, res), layers=tuple(self._build(vals)),
                        name=self._id(g))

    def _build(self, values: dict[str, Any]) -> list[Layer]:  # pragma: no cover
        raise NotImplementedError

    def encode(self, spec: ArchSpec) -> Genome:
        """The canonical genome of ``spec``; ValueError when the space cannot express it."""
        if not isinstance(spec, ArchSpec):
            raise TypeError(f"encode() takes an ArchSpec, got {type(spec).__name__}")
        if spec.input[0] != self.in_channels or spec.num_classes != self.num_classes:
            raise ValueError(f"{self.name} space is configured for {self.in_channels} input "
                             f"channels and {self.num_classes} classes, the spec has "
                             f"{spec.input[0]} and {spec.num_classes}")
        try:
            genome = self._encode(spec)
        except (ValueError, KeyError, IndexError, AttributeError, StopIteration) as e:
            raise ValueError(f"spec {spec.name or spec.to_string()!r} is not in the "
                             f"{self.name} space with this config: {e}") from None
        genome = self.canonical(genome)
        if self.decode(genome) != spec:
            raise ValueError(f"spec {spec.name or spec.to_string()!r} is not in the "
                             f"{self.name} space with this config (closest genome "
                             f"{format_genome(genome)} decodes to "
                             f"{self.decode(genome).to_string()!r})")
        return genome

    def _encode(self, spec: ArchSpec) -> Sequence[int]:
        raise NotImplementedError(f"the {self.name} space cannot encode specs")

    def index_of(self, name: str, value: Any) -> int:
        """Gene value of decoded ``value`` for gene ``name`` (for ``_encode``)."""
        gene = self.gene(name)
        if value not in gene.choices:
            raise ValueError(f"{name} = {_label(value)} is not a choice "
                             f"({gene.describe()})")
        return gene.choices.index(value)

    def ancestor_genome(self, name: str) -> Genome:
        """Genome of baseline ``name`` (at :attr:`default_resolution`, with this space's
        classes and input channels); ValueError when this config cannot express it."""
        if name not in self.ANCESTORS:
            raise ValueError(f"{name!r} is not an ancestor of the {self.name} space; "
                             f"ancestors: {', '.join(self.ANCESTORS)}")
        spec = baselines.get(name, num_classes=self.num_classes,
                             resolution=self.default_resolution, in_channels=self.in_channels)
        return self.encode(spec)

    def ancestors(self) -> dict[str, Genome]:
        """Every ancestor this config can express, name -> genome."""
        out = {}
        for name in self.ANCESTORS:
            try:
                out[name] = self.ancestor_genome(name)
            except ValueError:
                continue
        return out

    # Sampling and features ---------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` canonical genomes, shape ``(n, n_var)``: every gene uniform over its
        choices, then inactive genes zeroed."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"sample: n must be a non-negative integer, got {n!r}")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"sample: rng must be a numpy Generator (np.random."
                            f"default_rng(seed)), got {type(rng).__name__}")
        raw = rng.integers(self.xl, self.xu + 1, size=(int(n), self.n_var), dtype=np.int64)
        return self.canonical_batch(raw)

    def feature_names(self) -> list[str]:
        """Column names of :meth:`features`."""
        names = []
        for g in self._genes:
            if len(g.choices) > 1:
                names += [f"{g.name}={_label(c)}" for c in g.choices]
        names += [f"{g.name}~" for g in self._scalar_genes()]
        return names

    def _scalar_genes(self) -> list[Gene]:
        return [g for g in self._genes if g.numeric and len(g.choices) > 2]

    def features(self, genomes: Any) -> np.ndarray:
        """Surrogate input, float64 ``(n, n_features)`` for a 2-D array of genomes (a 1-D
        genome gives a 1-D vector): one-hot of every gene with more than one choice (all zero
        where the gene is inactive), then every numeric gene with three or more choices as
        its value scaled to [0, 1] (0 where inactive). Columns: :meth:`feature_names`."""
        if np.ndim(genomes) == 1:
            return self.features(np.asarray(genomes)[None, :])[0]
        arr = self.canonical_batch(genomes)
        active = self._active_mask(arr)
        cols = []
        for g in self._genes:
            k = len(g.choices)
            if k > 1:
                col = arr[:, g.position]
                cols.append((col[:, None] == np.arange(k)) & active[:, g.position, None])
        for g in self._scalar_genes():
            vals = np.asarray(g.choices, dtype=np.float64)
            lo, hi = vals.min(), vals.max()
            scaled = (vals[arr[:, g.position]] - lo) / (hi - lo)
            cols.append((scaled * active[:, g.position])[:, None])
        if not cols:
            return np.zeros((arr.shape[0], 0))
        return np.concatenate([c.astype(np.float64) for c in cols], axis=1)

    # Counting ----------------------------------------------------------------------------------
    def size(self) -> int:
        """Number of distinct architectures (distinct canonical genomes), exact."""
        dependents: dict[int, list[Gene]] = {}
        for g in self._genes:
            if g.active_if is not None:
                dependents.setdefault(g.active_if[0], []).append(g)
        total = 1
        for g in self._genes:
            if g.active_if is not None:
                continue
            deps = dependents.get(g.position, [])
            total *= sum(math.prod(len(d.choices) for d in deps if v in d.active_if[1])
                         for v in range(len(g.choices)))
        return total

    # Enumeration -------------------------------------------------------------------------------
    def n_genomes(self) -> int:
        """Number of genomes (every gene value combination, equivalent ones included)."""
        return math.prod(len(g.choices) for g in self._genes)

    def enumerate_genomes(self, limit: int = 1_000_000) -> np.ndarray:
        """Every genome, ``(n_genomes, n_var)`` in lexicographic order; ValueError naming the
        space's size when it has more than ``limit``."""
        n = self.n_genomes()
        if n > limit:
            raise ValueError(f"the {self.name} space has {n:.3g} genomes ({self.size():.3g} "
                             f"distinct architectures), more than the {limit:,} that can be "
                             f"listed; sample it instead (--sample N, --stats N)")
        grids = np.meshgrid(*[np.arange(len(g.choices)) for g in self._genes], indexing="ij")
        return np.stack([x.reshape(-1) for x in grids], axis=1).astype(np.int64)

    def all_canonical(self, limit: int = 20_000) -> np.ndarray | None:
        """Every distinct architecture as its canonical genome, when the space has at most
        ``limit`` genomes; None otherwise (too many to score one by one)."""
        if self.n_genomes() > limit:
            return None
        cached = self.__dict__.get("_all_canonical")
        if cached is None:
            cached = np.unique(self.canonical_batch(self.enumerate_genomes(limit)), axis=0)
            self.__dict__["_all_canonical"] = cached
        return cached

    # Text and config ---------------------------------------------------------------------------
    def parse_genome(self, text: str) -> Genome:
        """``"1-0-2-..."`` -> validated genome."""
        if not isinstance(text, str):
            raise TypeError(f"parse_genome takes a string, got {type(text).__name__}")
        parts = text.strip().split("-")
        values = []
        for i, p in enumerate(parts):
            if not p.strip().isdigit():
                raise ValueError(f"genome text {text!r}: item {i} ({p!r}) is not a "
                                 f"non-negative integer; expected {self.n_var} dash-separated "
                                 f"integers such as {format_genome(self.xl)}")
            values.append(int(p))
        return self.validate(values)

    def config(self) -> dict[str, Any]:
        """Constructor kwargs (JSON-ready): ``SPACES.build(space.name, **space.config())``
        rebuilds the space."""
        return {"num_classes": self.num_classes, "in_channels": self.in_channels,
                **self._config()}

    def _config(self) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> str:
        """Multi-line summary: config, size, gene table."""
        lines = [f"{self.name} space: {self.n_var} genes, {self.size():,} architectures",
                 f"config: {json.dumps(self.config())}",
                 "genes (position name [bounds] meaning, choices):"]
        for g in self._genes:
            cond = ""
            if g.active_if is not None:
                ctrl = self._genes[g.active_if[0]]
                vals = "/".join(_label(ctrl.choices[v]) for v in g.active_if[1])
                cond = f"; only when {ctrl.name} is {vals}"
            lines.append(f"  {g.position:3d} {g.name} [0, {g.hi}] {g.describe()}{cond}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def _is_int_row(row: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(row)) and np.all(row == np.round(row)))


def format_genome(genome: Iterable[int]) -> str:
    """Dash-separated text form of a genome (what :meth:`SearchSpace.parse_genome` reads)."""
    return "-".join(str(int(v)) for v in genome)


# --------------------------------------------------------------------------------------------
# Config validation helpers shared by the spaces
# --------------------------------------------------------------------------------------------


def int_choices(space: str, key: str, value: Any, *, lo: int = 1) -> tuple[int, ...]:
    """A non-empty list of distinct integers >= ``lo``."""
    items = as_list(space, key, value)
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
            raise config_error(space, key, list(items), f"every choice must be an integer "
                                f">= {lo}, got {v!r}")
        out.append(int(v))
    return _distinct(space, key, out)


def float_choices(space: str, key: str, value: Any, *, lo: float = 0.0,
                  lo_open: bool = False) -> tuple[float, ...]:
    """A non-empty list of distinct numbers >= ``lo`` (> ``lo`` when ``lo_open``)."""
    items = as_list(space, key, value)
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or v < lo or \
                (lo_open and v == lo) or not math.isfinite(v):
            rel = ">" if lo_open else ">="
            raise config_error(space, key, list(items), f"every choice must be a number "
                                f"{rel} {lo:g}, got {v!r}")
        out.append(float(v))
    return _distinct(space, key, out)


def as_list(space: str, key: str, value: Any) -> list:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise config_error(space, key, value, "expected a list")
    items = list(value)
    if not items:
        raise config_error(space, key, items, "needs at least one choice")
    return items


def _distinct(space: str, key: str, out: list) -> tuple:
    if len(set(out)) != len(out):
        raise config_error(space, key, out, "choices must be distinct")
    return tuple(out)


def per_stage(space: str, key: str, value: Any, n_stages: int, parse: Any) -> tuple[tuple, ...]:
    """One choice list shared by every stage, or one list per stage."""
    items = as_list(space, key, value)
    if all(isinstance(v, Iterable) and not isinstance(v, (str, bytes)) for v in items):
        if len(items) != n_stages:
            raise config_error(space, key, [list(v) for v in items],
                                f"gives {len(items)} per-stage lists for {n_stages} stages")
        return tuple(parse(space, f"{key}[{i}]", v) for i, v in enumerate(items))
    shared = parse(space, key, items)
    return (shared,) * n_stages


def check_resolutions(space: str, resolutions: tuple[int, ...]) -> None:
    """All choices must use the same stem form (``baselines`` switch at
    ``CIFAR_MAX_RESOLUTION``), or a larger input could give a smaller network."""
    small = [r < baselines.CIFAR_MAX_RESOLUTION for r in resolutions]
    if any(small) and not all(small):
        raise config_error(space, "resolutions", list(resolutions),
                            f"mixes CIFAR-size (< {baselines.CIFAR_MAX_RESOLUTION}) and "
                            f"ImageNet-size choices, which use different stems; use one kind")


def int_list(space: str, key: str, value: Any, *, lo: int = 1) -> tuple[int, ...]:
    """A non-empty list of integers >= ``lo`` (a layout, so repeats are allowed)."""
    items = as_list(space, key, value)
    for v in items:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
            raise config_error(space, key, list(items), f"every item must be an integer "
                                f">= {lo}, got {v!r}")
    return tuple(int(v) for v in items)


def one_of(space: str, key: str, value: Any, allowed: Sequence[str]) -> str:
    """A string from ``allowed``."""
    if value not in allowed:
        raise config_error(space, key, value, f"must be one of {', '.join(map(repr, allowed))}")
    return str(value)
