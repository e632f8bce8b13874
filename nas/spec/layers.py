"""Layer specs: the field machinery, the base :class:`Layer`, the primitives, the
combinators, the base of blocks, and the registry of layer types (see :mod:`nas.spec`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

from nas import checks

Shape = tuple[int, ...]

ACTIVATIONS = ("relu", "relu6", "hswish", "silu", "sigmoid", "hsigmoid", "gelu", "tanh",
               "lrelu", "elu", "prelu", "stanh")


#: activations with learned parameters: ``prelu`` has one slope per channel (He et al. 2015)
LEARNED_ACTIVATIONS = ("prelu",)


class SpecError(ValueError):
    """An architecture description that is malformed or internally inconsistent."""


def _f(default: Any = MISSING, *, lo: float | None = None, choices: Sequence | None = None,
       kind: type | None = None) -> Any:
    """Dataclass field with validation metadata (minimum, allowed choices, python kind)."""
    meta = {"lo": lo, "choices": choices, "kind": kind}
    if default is MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


def _check_value(cls_name: str, name: str, value: Any, meta: dict) -> Any:
    kind, lo, key = meta.get("kind"), meta.get("lo"), f"{cls_name}.{name}"
    if kind is int:
        value = checks.integer(key, value, lo=None if lo is None else int(lo), error=SpecError)
    elif kind is float:
        value = checks.number(key, value, lo=lo, error=SpecError)
    elif kind is bool:
        value = checks.boolean(key, value, error=SpecError)
    elif kind is str:
        value = checks.text(key, value, error=SpecError)
    elif lo is not None and value is not None and value < lo:
        raise checks.invalid(key, value, f"a value >= {lo:g}", SpecError)
    choices = meta.get("choices")
    if choices is not None:
        checks.one_of(key, value, choices, error=SpecError)
    return value


_FIELD_TABLES: dict[type, list] = {}


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


class Layer:
    """Base of every layer spec. Subclasses are frozen dataclasses with a ``type`` token."""

    type: ClassVar[str] = ""
    #: fields written positionally (dash-joined) right after the type in the string form
    positional: ClassVar[tuple[str, ...]] = ()
    kind: ClassVar[str] = "primitive"  # primitive | combinator | block

    def __post_init__(self) -> None:
        table = _FIELD_TABLES.get(type(self))
        if table is None:
            table = _FIELD_TABLES[type(self)] = [
                (f.name, f.metadata, f.default, f.metadata.get("kind"),
                 f.metadata.get("lo"), f.metadata.get("choices") is None)
                for f in fields(self) if f.metadata]
        d = self.__dict__
        for name, meta, default, kind, lo, no_choices in table:
            value = d[name]
            # fast path: already the right python type, within bounds, no choice list
            if type(value) is kind and no_choices and (lo is None or value >= lo):
                continue
            if value is None and default is None:
                continue
            checked = _check_value(self.type, name, value, meta)
            if checked is not value:
                object.__setattr__(self, name, checked)
        self.validate()

    def _key(self) -> tuple:
        names = _FIELD_NAMES.get(type(self))
        if names is None:
            names = _FIELD_NAMES[type(self)] = tuple(f.name for f in fields(self))
        d = self.__dict__
        return tuple([d[n] for n in names])

    def __hash__(self) -> int:
        # Specs are immutable and hashed on every memo lookup: hash once, keep it.
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((type(self).__name__, self._key()))
            object.__setattr__(self, "_hash", h)
        return h

    def validate(self) -> None:
        """Cross-field checks (override)."""

    # Shape rules -----------------------------------------------------------------------------
    def lower(self, shape: Shape) -> Layer:  # pragma: no cover - blocks override
        raise NotImplementedError

    # Serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d: dict[str, Any] = {"type": self.type}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple) and v and isinstance(v[0], (Layer, tuple)):
                d[f.name] = _children_to_json(v)
            elif f.default is MISSING or v != f.default:
                d[f.name] = v
        return d

    def token(self) -> str:
        parts = [self.type]
        if self.positional:
            parts.append("-".join(_fmt(getattr(self, n)) for n in self.positional))
        for f in fields(self):
            if f.name in self.positional:
                continue
            v = getattr(self, f.name)
            if f.default is not MISSING and v == f.default:
                continue
            parts.append(f"{f.name}{_fmt(v)}")
        return "_".join(parts)

    def __str__(self) -> str:
        return self.token()


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return format(v, "g")
    return str(v)


def _spatial(layer: Layer, size: int, k: int, s: int, p: int, d: int = 1,
             ceil: bool = False) -> int:
    """PyTorch's output-size rule for conv / pooling (torch.nn.Conv2d, MaxPool2d docs)."""
    eff = d * (k - 1) + 1
    num = size + 2 * p - eff
    if num < 0:
        return 0
    if ceil:
        out = -(-num // s) + 1
        # PyTorch drops the last window if it would start inside the right padding.
        if (out - 1) * s >= size + p:
            out -= 1
        return out
    return num // s + 1


def _need_map(layer: Layer, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise SpecError(f"{layer.token()} needs a feature map (C, H, W) but gets a flat "
                        f"vector {tuple(shape)}; remove the flatten before it")
    return shape  # type: ignore[return-value]


def _check_nonempty(layer: Layer, shape: Shape, out: Shape) -> Shape:
    if any(x <= 0 for x in out):
        raise SpecError(f"{layer.token()} on input {tuple(shape)} would produce an empty output "
                        f"{tuple(out)}; use a larger input resolution or less downsampling")
    return out


@dataclass(frozen=True)
class Conv(Layer):
    """2-D convolution; ``p=None`` means 'same' padding ``d*(k-1)//2``. ``kw`` makes the
    kernel ``k`` high and ``kw`` wide (factorised 1x7 / 7x1 convolutions, Szegedy et al.
    2016); ``None`` is a square ``k x k`` kernel. Padding ``p`` applies to both sides."""

    type: ClassVar[str] = "conv"
    c: int = _f(kind=int, lo=1)
    k: int = _f(3, kind=int, lo=1)
    s: int = _f(1, kind=int, lo=1)
    p: int | None = _f(None, kind=int, lo=0)
    d: int = _f(1, kind=int, lo=1)
    g: int = _f(1, kind=int, lo=1)
    bias: bool = _f(False, kind=bool)
    kw: int | None = _f(None, kind=int, lo=1)

    @property
    def padding(self) -> int:
        return self.d * (self.k - 1) // 2 if self.p is None else self.p

    @property
    def kernel(self) -> tuple[int, int]:
        """(height, width) of the kernel."""
        return (self.k, self.k if self.kw is None else self.kw)

    @property
    def padding_hw(self) -> tuple[int, int]:
        """(height, width) padding: 'same' per dimension when ``p`` is None."""
        if self.p is not None:
            return (self.p, self.p)
        kh, kw = self.kernel
        return (self.d * (kh - 1) // 2, self.d * (kw - 1) // 2)

    def validate(self) -> None:
        if self.c % self.g:
            raise SpecError(f"{self.token()}: output channels {self.c} not divisible by "
                            f"groups {self.g}")


@dataclass(frozen=True)
class BN(Layer):
    type: ClassVar[str] = "bn"
    eps: float = _f(1e-5, kind=float, lo=0.0)


@dataclass(frozen=True)
class Act(Layer):
    """Activation; its token is the function name alone (``relu``, ``hswish``, ...)."""

    type: ClassVar[str] = "act"
    fn: str = _f("relu", kind=str, choices=ACTIVATIONS)

    def token(self) -> str:
        return self.fn

    def to_dict(self) -> dict:
        return {"type": "act", "fn": self.fn}


@dataclass(frozen=True)
class MaxPool(Layer):
    type: ClassVar[str] = "maxpool"
    k: int = _f(kind=int, lo=1)
    s: int | None = _f(None, kind=int, lo=1)
    p: int = _f(0, kind=int, lo=0)
    ceil: bool = _f(False, kind=bool)

    @property
    def stride(self) -> int:
        return self.k if self.s is None else self.s


@dataclass(frozen=True)
class AvgPool(MaxPool):
    """Average pooling; ``cip=0`` leaves padding out of the average (PyTorch's
    ``count_include_pad=False``, as NAS-Bench-201's 3x3 pooling edge)."""

    type: ClassVar[str] = "avgpool"
    cip: bool = _f(True, kind=bool)


@dataclass(frozen=True)
class GAP(Layer):
    """Global average pooling to (C, 1, 1)."""

    type: ClassVar[str] = "gap"


@dataclass(frozen=True)
class AdaptiveAvgPool(Layer):
    type: ClassVar[str] = "aap"
    o: int = _f(kind=int, lo=1)


@dataclass(frozen=True)
class LRN(Layer):
    """Local response normalisation (Krizhevsky et al. 2012, section 3.3)."""

    type: ClassVar[str] = "lrn"
    n: int = _f(5, kind=int, lo=1)
    alpha: float = _f(1e-4, kind=float, lo=0.0)
    beta: float = _f(0.75, kind=float, lo=0.0)
    kk: float = _f(2.0, kind=float, lo=0.0)


@dataclass(frozen=True)
class Dropout(Layer):
    type: ClassVar[str] = "dropout"
    p: float = _f(0.5, kind=float, lo=0.0)

    def validate(self) -> None:
        if self.p >= 1.0:
            raise SpecError(f"dropout.p must be < 1, got {self.p}")


@dataclass(frozen=True)
class Flatten(Layer):
    type: ClassVar[str] = "flatten"


@dataclass(frozen=True)
class Linear(Layer):
    type: ClassVar[str] = "fc"
    c: int = _f(kind=int, lo=1)
    bias: bool = _f(True, kind=bool)


@dataclass(frozen=True)
class Identity(Layer):
    type: ClassVar[str] = "id"


@dataclass(frozen=True)
class Zero(Layer):
    """The zero operation (``x * 0``): NAS-Bench-201's ``none`` edge. Inside a ``dag`` a zero
    edge is skipped altogether; on its own it outputs zeros of its input's shape."""

    type: ClassVar[str] = "zero"


@dataclass(frozen=True)
class PadShortcut(Layer):
    """He et al. (2016) option-A shortcut: subsample by ``s``, zero-pad channels to ``c``."""

    type: ClassVar[str] = "pad"
    c: int = _f(kind=int, lo=1)
    s: int = _f(1, kind=int, lo=1)


@dataclass(frozen=True)
class ChannelShuffle(Layer):
    """Channel shuffle with ``g`` groups (Zhang et al. 2018, ShuffleNet): view the channels
    as (g, C/g), transpose, flatten, so grouped convolutions exchange information."""

    type: ClassVar[str] = "shuffle"
    g: int = _f(kind=int, lo=1)


@dataclass(frozen=True)
class ChannelSplit(Layer):
    """Part ``i`` of ``n`` equal channel parts (a view, like ``torch.chunk``): ShuffleNetV2's
    channel split (Ma et al. 2018) when used as the branches of a ``concat``."""

    type: ClassVar[str] = "split"
    n: int = _f(2, kind=int, lo=1)
    i: int = _f(0, kind=int, lo=0)

    def validate(self) -> None:
        if self.i >= self.n:
            raise SpecError(f"{self.token()}: part index i={self.i} must be < n={self.n}")


@dataclass(frozen=True)
class Scale(Layer):
    """Multiply by a constant ``v``: residual scaling of Inception-ResNet (Szegedy et al.
    2017, section 3.3), LeNet-5-style fixed gains. No parameters, no MACs."""

    type: ClassVar[str] = "scale"
    v: float = _f(kind=float)


_PICK_ITEM = re.compile(r"^(\d+)(?::(\d+)(?::(\d+))?)?$")


@dataclass(frozen=True)
class Pick(Layer):
    """Channels ``i`` of the input, in that order: ``-``-separated items, each a channel
    index or a half-open range ``start:stop`` or ``start:stop:step`` (Python's slice), e.g.
    ``pick_i0-1-3-4`` or ``pick_i3:96:4``. One item is a view of the input (as ``split``);
    several gather a copy. It writes LeNet-5's C3 connection table (LeCun et al. 1998,
    Table I) and the channel bookkeeping of the ``cell`` and ``mux`` blocks."""

    type: ClassVar[str] = "pick"
    i: str = _f(kind=str)

    def __post_init__(self) -> None:
        if isinstance(self.i, int) and not isinstance(self.i, bool):
            object.__setattr__(self, "i", str(self.i))  # i=3 in JSON means channel 3
        super().__post_init__()

    def validate(self) -> None:
        _ = self.items  # parses, raising SpecError when malformed

    @property
    def items(self) -> tuple[int | tuple[int, int, int], ...]:
        """The parsed items: an index, or ``(start, stop, step)``."""
        out: list[int | tuple[int, int, int]] = []
        for part in self.i.split("-"):
            m = _PICK_ITEM.match(part)
            if not m:
                raise SpecError(f"pick.i={self.i!r} is invalid: {part!r} is not an index or a "
                                f"range start:stop[:step]; pass e.g. '0-1-3' or '0:16' or "
                                f"'3:64:4'")
            start, stop, step = m.groups()
            if stop is None:
                out.append(int(start))
                continue
            st = 1 if step is None else int(step)
            if int(stop) <= int(start) or st < 1:
                raise SpecError(f"pick.i={self.i!r} is invalid: range {part!r} is empty; pass "
                                f"start < stop and a step >= 1")
            out.append((int(start), int(stop), st))
        return tuple(out)

    @property
    def view(self) -> bool:
        """True when the output is a view of the input (a single index or range)."""
        return "-" not in self.i

    def indices(self, channels: int) -> tuple[int, ...]:
        """The picked channel indices on an input of ``channels`` channels."""
        out: list[int] = []
        for item in self.items:
            last = item if isinstance(item, int) else item[1] - 1
            if last >= channels:
                raise SpecError(f"{self.token()}: channel {last} does not exist in a "
                                f"{channels}-channel input")
            out += [item] if isinstance(item, int) else range(*item)
        return tuple(out)


@dataclass(frozen=True)
class SpaceToDepth(Layer):
    """Space-to-depth by ``r`` (PyTorch's ``PixelUnshuffle``): every ``r x r`` block of
    pixels becomes ``r * r`` channels, (C, H, W) -> (C r^2, H / r, W / r); channel
    ``c r^2 + i r + j`` holds pixel (i, j) of each block of channel c. No parameters, no
    MACs. MUXConv's spatial multiplexing (Lu et al. 2020, section 3.1)."""

    type: ClassVar[str] = "s2d"
    r: int = _f(2, kind=int, lo=1)


@dataclass(frozen=True)
class DepthToSpace(Layer):
    """Depth-to-space by ``r`` (PyTorch's ``PixelShuffle``, the sub-pixel rearrangement of
    Shi et al. 2016), the inverse of ``s2d``: (C r^2, H, W) -> (C, H r, W r)."""

    type: ClassVar[str] = "d2s"
    r: int = _f(2, kind=int, lo=1)


@dataclass(frozen=True)
class RBF(Layer):
    """Euclidean radial basis function output units (LeCun et al. 1998, section II.B,
    eq. 7): unit i outputs the penalty y_i = sum_j (x_j - w_ij)^2 of its ``c`` prototypes
    against the F inputs; the layer returns -y_i, so that the nearest prototype has the
    largest logit and cross-entropy on them is the paper's MAP criterion (eq. 9) without
    its constant rubbish-class term. The prototypes are +-1 codes "chosen by hand and kept
    fixed" (a buffer, no parameters; ``learn=1`` trains them: c x F parameters). MACs:
    c x F, one multiply-accumulate per connection (the paper's 84 x 10 = 840)."""

    type: ClassVar[str] = "rbf"
    c: int = _f(kind=int, lo=1)
    learn: bool = _f(False, kind=bool)


def _as_layers(value: Any, where: str) -> tuple[Layer, ...]:
    if not isinstance(value, (tuple, list)):
        raise SpecError(f"{where}: expected a list of layers, got {value!r}")
    out = []
    for i, v in enumerate(value):
        if isinstance(v, dict):
            v = layer_from_dict(v, where=f"{where}[{i}]")
        if not isinstance(v, Layer):
            raise SpecError(f"{where}[{i}]: expected a layer, got {v!r}")
        out.append(v)
    return tuple(out)


@dataclass(frozen=True)
class Seq(Layer):
    type: ClassVar[str] = "seq"
    kind: ClassVar[str] = "combinator"
    layers: tuple[Layer, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", _as_layers(self.layers, "seq.layers"))

    def token(self) -> str:
        return "seq[" + " ".join(x.token() for x in self.layers) + "]"


@dataclass(frozen=True)
class _Branches(Layer):
    kind: ClassVar[str] = "combinator"
    branches: tuple[Layer, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "branches",
                           _as_layers(self.branches, f"{self.type}.branches"))
        if not self.branches:
            raise SpecError(f"{self.type}: needs at least one branch")

    def token(self) -> str:
        return f"{self.type}[" + " | ".join(x.token() for x in self.branches) + "]"


@dataclass(frozen=True)
class Add(_Branches):
    """Element-wise sum of branches (residual connections)."""

    type: ClassVar[str] = "add"


@dataclass(frozen=True)
class Concat(_Branches):
    """Channel concatenation of branches (inception, dense connections)."""

    type: ClassVar[str] = "concat"


@dataclass(frozen=True)
class Gate(Layer):
    """``x * branch(x)`` with a (C, 1, 1) gate: squeeze-and-excitation (Hu et al. 2018)."""

    type: ClassVar[str] = "gate"
    kind: ClassVar[str] = "combinator"
    branch: Layer = field(default_factory=Identity)

    def __post_init__(self) -> None:
        b = self.branch
        if isinstance(b, dict):
            object.__setattr__(self, "branch", layer_from_dict(b, where="gate.branch"))
        elif not isinstance(b, Layer):
            raise SpecError(f"gate.branch: expected a layer, got {b!r}")

    def token(self) -> str:
        return f"gate[{self.branch.token()}]"

    def to_dict(self) -> dict:
        return {"type": "gate", "branch": self.branch.to_dict()}


def dag_pairs(n_edges: int) -> tuple[tuple[int, int], ...]:
    """``(source, target)`` of each edge of a :class:`Dag` with ``n_edges`` edges, in its
    order: per target node 1, 2, ..., every earlier node as source in increasing order."""
    pairs = []
    j = 1
    while len(pairs) < n_edges:
        pairs += [(i, j) for i in range(j)]
        j += 1
    if len(pairs) != n_edges:
        raise SpecError(f"dag: {n_edges} edges do not make a complete DAG (1, 3, 6, 10, ... "
                        f"edges for 1, 2, 3, 4, ... intermediate nodes)")
    return tuple(pairs)


@dataclass(frozen=True)
class Dag(Layer):
    """A cell as a directed acyclic graph (NAS-Bench-201, Dong & Yang 2020): node 0 is the
    input, node ``j`` sums ``edge(i -> j)(node i)`` over every earlier node ``i``, the output
    is the last node. ``edges`` lists one layer per pair in :func:`dag_pairs` order
    (``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2``, ...); a ``zero`` edge contributes nothing and a
    node that receives nothing is zero. Every live edge must keep the input's shape."""

    type: ClassVar[str] = "dag"
    kind: ClassVar[str] = "combinator"
    edges: tuple[Layer, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "edges", _as_layers(self.edges, "dag.edges"))
        if not self.edges:
            raise SpecError("dag: needs at least one edge")
        dag_pairs(len(self.edges))

    @property
    def pairs(self) -> tuple[tuple[int, int], ...]:
        return dag_pairs(len(self.edges))

    def token(self) -> str:
        return "dag[" + " | ".join(x.token() for x in self.edges) + "]"


@dataclass(frozen=True)
class Join(_Branches):
    """Element-wise mean of branches, FractalNet's join (Larsson et al. 2017, section 2).
    While training, each branch is dropped with probability ``drop`` and the mean taken
    over the rest, keeping at least one (local drop-path, section 3.1).

    Global drop-path (section 3.1): with probability ``glob`` a training pass instead keeps
    one column for the whole network, drawn once per pass by the built network among the
    columns its joins name. ``col`` is the column of this join's first branch (columns
    counted from the deepest, 0): a pass that drew column ``col`` keeps the first branch,
    any other column the last one (the deeper columns)."""

    type: ClassVar[str] = "join"
    drop: float = _f(0.0, kind=float, lo=0.0)
    glob: float = _f(0.0, kind=float, lo=0.0)
    col: int = _f(0, kind=int, lo=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        Layer.__post_init__(self)

    def validate(self) -> None:
        if self.drop >= 1.0:
            raise SpecError(f"join.drop must be < 1, got {self.drop}")
        if self.glob > 1.0:
            raise SpecError(f"join.glob is a probability, got {self.glob}; pass a value in "
                            f"[0, 1]")

    def token(self) -> str:
        head = "".join(f"_{k}{_fmt(v)}" for k, v, d in (
            ("drop", self.drop, 0.0), ("glob", self.glob, 0.0), ("col", self.col, 0))
            if v != d)
        return f"join{head}[" + " | ".join(x.token() for x in self.branches) + "]"


@dataclass(frozen=True)
class Aux(Layer):
    """Auxiliary classifier: passes its input through unchanged; while training, ``branch``
    (a classifier head) also runs on it and its logits join the loss (Szegedy et al. 2015,
    2016). Its parameters count; its MACs do not, since inference never runs it."""

    type: ClassVar[str] = "aux"
    kind: ClassVar[str] = "combinator"
    branch: Layer = field(default_factory=Identity)

    def __post_init__(self) -> None:
        b = self.branch
        if isinstance(b, dict):
            object.__setattr__(self, "branch", layer_from_dict(b, where="aux.branch"))
        elif not isinstance(b, Layer):
            raise SpecError(f"aux.branch: expected a layer, got {b!r}")

    def token(self) -> str:
        return f"aux[{self.branch.token()}]"

    def to_dict(self) -> dict:
        return {"type": "aux", "branch": self.branch.to_dict()}


def _children_to_json(v: tuple) -> list:
    return [x.to_dict() for x in v]


def layer_from_dict(d: Any, *, where: str = "layer") -> Layer:
    """Build a layer from its JSON form; errors name the offending field (e.g. layers[3].k)."""
    if not isinstance(d, dict):
        raise SpecError(f"{where}: expected an object with a 'type', got {d!r}")
    if "type" not in d:
        raise SpecError(f"{where}: missing field 'type' (one of {sorted(LAYER_TYPES)})")
    kind = d["type"]
    if kind in ACTIVATIONS:
        d = {"type": "act", "fn": kind, **{k: v for k, v in d.items() if k != "type"}}
        kind = "act"
    cls = LAYER_TYPES.get(kind)
    if cls is None:
        raise SpecError(f"{where}.type: unknown layer type {kind!r}; known: "
                        f"{sorted(LAYER_TYPES) + list(ACTIVATIONS)}")
    names = {f.name: f for f in fields(cls)}
    kwargs = {}
    for k, v in d.items():
        if k == "type":
            continue
        if k not in names:
            raise SpecError(f"{where}.{k}: unknown field for {kind!r}; fields: {sorted(names)}")
        if k in ("layers", "branches", "edges"):
            v = _as_layers(v, f"{where}.{k}")
        elif k == "branch":
            v = layer_from_dict(v, where=f"{where}.branch")
        kwargs[k] = v
    missing = [n for n, f in names.items()
               if f.default is MISSING and f.default_factory is MISSING and n not in kwargs]
    if missing:
        raise SpecError(f"{where}: {kind!r} is missing required field(s) {missing}")
    try:
        return cls(**kwargs)
    except SpecError as e:
        raise SpecError(f"{where}: {e}") from None


class Block(Layer):
    kind: ClassVar[str] = "block"


# --------------------------------------------------------------------------------------------
# Registry: token type -> layer class
# --------------------------------------------------------------------------------------------

#: every layer type, by its token (filled by :func:`register` in each module of the package)
LAYER_TYPES: dict[str, type[Layer]] = {}


def register(*classes: type[Layer]) -> None:
    """Make ``classes`` known by their token ``type`` (to parsing) and give them the cached
    hash of :class:`Layer` (``@dataclass(frozen=True)`` adds an uncached one)."""
    for cls in classes:
        LAYER_TYPES[cls.type] = cls
        cls.__hash__ = Layer.__hash__


register(Conv, BN, Act, MaxPool, AvgPool, GAP, AdaptiveAvgPool, LRN, Dropout, Flatten, Linear,
         Identity, Zero, PadShortcut, ChannelShuffle, ChannelSplit, Scale, Pick, SpaceToDepth,
         DepthToSpace, RBF, Seq, Add, Concat, Gate, Dag, Join, Aux)
