"""ArchSpec: the one description of a network that everything else reads.

A spec is an input shape plus an ordered tuple of typed, frozen layer specs. Layers come in
three kinds:

* **primitives** (conv, bn, activations, pooling, lrn, dropout, flatten, fc, channel
  shuffle / split / ``pick``, space-to-depth ``s2d`` and depth-to-space ``d2s``, scale, zero,
  the RBF output layer ``rbf``, ...), which ``nas.build`` turns into one ``nn.Module`` each
  and ``nas.cost`` prices with a formula;
* **combinators** (``seq``, ``add``, ``concat``, ``gate``, ``join``, ``aux``, ``dag``), which
  wire sub-layers together;
* **blocks** (MBConv ``ir``, residual ``basic`` / ``bottle`` / ``preact``, ``incep``,
  ``dense``, ``trans``, ``dws``, ``cba``, ``head``, those of the later classic nets:
  ``bneck``, ``shuf1``, ``shuf2``, ``prebottle``, ``fractal``, MUXNet's ``mux``, the
  NASNet-style ``cell`` of NSGA-Net, and NAS-Bench-201's ``nb201`` / ``nb201r``), which
  *lower* to primitives and
  combinators given their input shape. Blocks never build modules or compute costs
  themselves, so the builder and the cost model cannot drift apart.

Shapes are ``(C, H, W)`` for feature maps and ``(F,)`` for flat feature vectors (after
``flatten``); a layer given the wrong kind, or producing an empty output, raises
:class:`SpecError` naming the layer and the shapes.

String form (timm-style tokens, documented here where it is parsed)::

    3x224x224 cba_c32_k3_s2_arelu6 ir_c16_e1 ir_c24_e6_s2*2 ... head_c1000_p0.2

The first token is the input shape ``CxHxW``. Every other token is ``type`` followed by
``_<key><value>`` for each field that differs from its default (keys are field names, matched
longest first; booleans are ``0``/``1``). ``incep`` writes its six branch widths positionally,
dash-separated. ``*N`` repeats a token N times. Combinators print as ``type[a b | c d]`` with
``|`` between branches (``gate[...]``, ``aux[...]`` hold one); specs round-trip through
JSON and through the string form, combinators included. ``nb201`` (the NAS-Bench-201 cell)
carries the benchmark's arch string verbatim after its type:
``nb201_|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|...|``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields
from functools import lru_cache
from typing import Any, ClassVar

from nas import checks

Shape = tuple[int, ...]

ACTIVATIONS = ("relu", "relu6", "hswish", "silu", "sigmoid", "hsigmoid", "gelu", "tanh",
               "lrelu", "elu", "prelu", "stanh")
#: activations with learned parameters: ``prelu`` has one slope per channel (He et al. 2015)
LEARNED_ACTIVATIONS = ("prelu",)


class SpecError(ValueError):
    """An architecture description that is malformed or internally inconsistent."""


# --------------------------------------------------------------------------------------------
# Field declarations and validation
# --------------------------------------------------------------------------------------------


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
    def out_shape(self, shape: Shape) -> Shape:
        """Output shape for ``shape``; blocks lower first."""
        return out_shape(self, shape)

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


# --------------------------------------------------------------------------------------------
# Primitives
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Combinators
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Blocks (lowered to primitives + combinators)
# --------------------------------------------------------------------------------------------


def squeeze_excite(channels: int, squeeze: int) -> Gate:
    """SE gate: GAP -> 1x1 conv (bias) -> ReLU -> 1x1 conv (bias) -> sigmoid (Hu et al. 2018)."""
    return Gate(Seq((GAP(), Conv(c=squeeze, k=1, bias=True), Act("relu"),
                     Conv(c=channels, k=1, bias=True), Act("sigmoid"))))


def _cba(c: int, k: int = 1, s: int = 1, g: int = 1, act: str | None = "relu",
         eps: float = 1e-5) -> tuple[Layer, ...]:
    out: tuple[Layer, ...] = (Conv(c=c, k=k, s=s, g=g), BN(eps=eps))
    return out + ((Act(act),) if act else ())


class Block(Layer):
    kind: ClassVar[str] = "block"


@dataclass(frozen=True)
class ConvBNAct(Block):
    """Conv (no bias) -> BN -> activation (``a=''`` for none)."""

    type: ClassVar[str] = "cba"
    c: int = _f(kind=int, lo=1)
    k: int = _f(3, kind=int, lo=1)
    s: int = _f(1, kind=int, lo=1)
    g: int = _f(1, kind=int, lo=1)
    a: str = _f("relu", kind=str, choices=ACTIVATIONS + ("",))
    kw: int | None = _f(None, kind=int, lo=1)
    p: int | None = _f(None, kind=int, lo=0)
    eps: float = _f(1e-5, kind=float, lo=0.0)

    def lower(self, shape: Shape) -> Layer:
        if self.kw is None and self.p is None and self.eps == 1e-5:
            return Seq(_cba(self.c, self.k, self.s, self.g, self.a or None))
        conv = Conv(c=self.c, k=self.k, s=self.s, g=self.g, kw=self.kw, p=self.p)
        return Seq((conv, BN(eps=self.eps)) + ((Act(self.a),) if self.a else ()))


@dataclass(frozen=True)
class MBConv(Block):
    """Inverted residual (Sandler et al. 2018) with optional SE (Tan & Le 2019).

    ``e`` expands the input channels (hidden = round(C_in * e), as torchvision's
    MobileNetV2); ``se`` is the SE squeeze ratio relative to the block's input channels
    (EfficientNet / timm convention), 0 for none. Residual when stride 1 and C_in == c.
    """

    type: ClassVar[str] = "ir"
    c: int = _f(kind=int, lo=1)
    k: int = _f(3, kind=int, lo=1)
    e: float = _f(6.0, kind=float, lo=1.0)
    s: int = _f(1, kind=int, lo=1)
    se: float = _f(0.0, kind=float, lo=0.0)
    a: str = _f("relu6", kind=str, choices=ACTIVATIONS)

    def lower(self, shape: Shape) -> Layer:
        cin = _need_map(self, shape)[0]
        hidden = int(round(cin * self.e))
        body: list[Layer] = []
        if hidden != cin:
            body += _cba(hidden, 1, act=self.a)
        body += _cba(hidden, self.k, self.s, g=hidden, act=self.a)
        if self.se > 0:
            body.append(squeeze_excite(hidden, max(1, int(cin * self.se))))
        body += _cba(self.c, 1, act=None)
        main = Seq(tuple(body))
        if self.s == 1 and cin == self.c:
            return Add((main, Identity()))
        return main


@dataclass(frozen=True)
class DWSeparable(Block):
    """MobileNetV1 depthwise-separable conv: dw kxk -> BN -> act -> 1x1 -> BN -> act."""

    type: ClassVar[str] = "dws"
    c: int = _f(kind=int, lo=1)
    k: int = _f(3, kind=int, lo=1)
    s: int = _f(1, kind=int, lo=1)
    a: str = _f("relu", kind=str, choices=ACTIVATIONS)

    def lower(self, shape: Shape) -> Layer:
        cin = _need_map(self, shape)[0]
        return Seq(_cba(cin, self.k, self.s, g=cin, act=self.a) + _cba(self.c, 1, act=self.a))


def _shortcut(cin: int, c: int, s: int, sc: str) -> Layer:
    if s == 1 and cin == c:
        return Identity()
    if sc == "A":
        return PadShortcut(c=c, s=s)
    if sc == "D" and s > 1:
        # ResNet-D (He et al. 2019, "Bag of Tricks", Fig. 2c): average-pool, then 1x1 conv
        return Seq((AvgPool(k=s, s=s, ceil=True), Conv(c=c, k=1), BN()))
    return Seq((Conv(c=c, k=1, s=s), BN()))


@dataclass(frozen=True)
class BasicBlock(Block):
    """ResNet basic block (He et al. 2016): two 3x3 convs, post-activation.

    ``sc`` picks the shortcut when the shape changes: ``B`` a 1x1 conv + BN projection,
    ``A`` parameter-free subsampling with zero-padded channels (the paper's CIFAR nets),
    ``D`` a 2x2 average pool before a stride-1 projection (ResNet-D, He et al. 2019).
    ``se`` is the SE squeeze ratio relative to the output channels (SENet: 1/16).
    """

    type: ClassVar[str] = "basic"
    c: int = _f(kind=int, lo=1)
    s: int = _f(1, kind=int, lo=1)
    se: float = _f(0.0, kind=float, lo=0.0)
    sc: str = _f("B", kind=str, choices=("A", "B", "D"))

    def lower(self, shape: Shape) -> Layer:
        cin = _need_map(self, shape)[0]
        body = list(_cba(self.c, 3, self.s) + _cba(self.c, 3, act=None))
        if self.se > 0:
            body.append(squeeze_excite(self.c, max(1, int(self.c * self.se))))
        return Seq((Add((Seq(tuple(body)), _shortcut(cin, self.c, self.s, self.sc))),
                    Act("relu")))


@dataclass(frozen=True)
class Bottleneck(Block):
    """ResNet bottleneck (ResNet v1.5: stride on the 3x3), grouped for ResNeXt (Xie 2017).

    ``m`` is the width of the 1x1-3x3 middle, ``c`` the output width, ``g`` the groups of
    the 3x3; ``se`` and ``sc`` as in :class:`BasicBlock`. ``s1=1`` puts the stride on the
    first 1x1 instead (the original ResNet, "ResNet-A" in He et al. 2019).
    """

    type: ClassVar[str] = "bottle"
    c: int = _f(kind=int, lo=1)
    m: int = _f(kind=int, lo=1)
    s: int = _f(1, kind=int, lo=1)
    g: int = _f(1, kind=int, lo=1)
    se: float = _f(0.0, kind=float, lo=0.0)
    sc: str = _f("B", kind=str, choices=("A", "B", "D"))
    s1: bool = _f(False, kind=bool)

    def validate(self) -> None:
        if self.m % self.g:
            raise SpecError(f"{self.token()}: middle width m={self.m} is not divisible by "
                            f"groups g={self.g}")

    def lower(self, shape: Shape) -> Layer:
        cin = _need_map(self, shape)[0]
        s1, s3 = (self.s, 1) if self.s1 else (1, self.s)
        body = list(_cba(self.m, 1, s1) + _cba(self.m, 3, s3, g=self.g)
                    + _cba(self.c, 1, act=None))
        if self.se > 0:
            body.append(squeeze_excite(self.c, max(1, int(self.c * self.se))))
        return Seq((Add((Seq(tuple(body)), _shortcut(cin, self.c, self.s, self.sc))),
                    Act("relu")))


@dataclass(frozen=True)
class PreActBlock(Block):
    """Pre-activation basic block (He et al. 2016b) as in Wide ResNets (Zagoruyko 2016):
    BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3, plus identity or a 1x1 conv shortcut."""

    type: ClassVar[str] = "preact"
    c: int = _f(kind=int, lo=1)
    s: int = _f(1, kind=int, lo=1)
    drop: float = _f(0.0, kind=float, lo=0.0)

    def lower(self, shape: Shape) -> Layer:
        cin = _need_map(self, shape)[0]
        body: list[Layer] = [BN(), Act("relu"), Conv(c=self.c, k=3, s=self.s), BN(), Act("relu")]
        if self.drop > 0:
            body.append(Dropout(self.drop))
        body.append(Conv(c=self.c, k=3))
        short: Layer = (Identity() if self.s == 1 and cin == self.c
                        else Conv(c=self.c, k=1, s=self.s))
        return Add((Seq(tuple(body)), short))


@dataclass(frozen=True)
class Inception(Block):
    """GoogLeNet inception module (Szegedy et al. 2015), conv-BN-ReLU units as torchvision.

    Positional widths: ``b1`` (1x1 branch), ``r3``/``b3`` (1x1 reduction / 3x3),
    ``r5``/``b5`` (reduction / the "5x5" branch), ``pp`` (pool projection after a 3x3
    max-pool). A width of 0 drops a branch (``b1``, ``pp``) or its reduction (``r3``,
    ``r5``). ``k`` is the kernel of the 5x5 branch (torchvision's GoogLeNet uses 3, a known
    quirk kept for its weights); ``f=1`` factorises it into two 3x3 convs (Szegedy 2016).
    ``r=1`` adds a residual connection: a 1x1 conv + BN maps the concatenation back to the
    input width, added to the input, then ReLU (Inception-ResNet, Szegedy 2017).
    """

    type: ClassVar[str] = "incep"
    positional: ClassVar[tuple[str, ...]] = ("b1", "r3", "b3", "r5", "b5", "pp")
    b1: int = _f(kind=int, lo=0)
    r3: int = _f(kind=int, lo=0)
    b3: int = _f(kind=int, lo=1)
    r5: int = _f(kind=int, lo=0)
    b5: int = _f(kind=int, lo=1)
    pp: int = _f(kind=int, lo=0)
    k: int = _f(5, kind=int, lo=1)
    f: bool = _f(False, kind=bool)
    r: bool = _f(False, kind=bool)

    def lower(self, shape: Shape) -> Layer:
        cin = _need_map(self, shape)[0]
        eps = 1e-3
        branches: list[Layer] = []
        if self.b1:
            branches.append(Seq(_cba(self.b1, 1, eps=eps)))
        b3 = (_cba(self.r3, 1, eps=eps) if self.r3 else ()) + _cba(self.b3, 3, eps=eps)
        branches.append(Seq(b3))
        b5 = _cba(self.r5, 1, eps=eps) if self.r5 else ()
        if self.f:
            b5 += _cba(self.b5, 3, eps=eps) + _cba(self.b5, 3, eps=eps)
        else:
            b5 += _cba(self.b5, self.k, eps=eps)
        branches.append(Seq(b5))
        if self.pp:
            branches.append(Seq((MaxPool(k=3, s=1, p=1, ceil=True),)
                                + _cba(self.pp, 1, eps=eps)))
        cat = Concat(tuple(branches))
        if not self.r:
            return cat
        proj = Seq((cat, Conv(c=cin, k=1), BN(eps=eps)))
        return Seq((Add((proj, Identity())), Act("relu")))


# --------------------------------------------------------------------------------------------
# Blocks of the later classic nets (MobileNetV3, ShuffleNet V1/V2, pre-activation ResNets,
# FractalNet); their primitives and combinators are in the sections above
# --------------------------------------------------------------------------------------------


def _dw(c: int, k: int, s: int, act: str | None) -> tuple[Layer, ...]:
    return _cba(c, k, s, g=c, act=act)


@dataclass(frozen=True)
class Bneck(Block):
    """MobileNetV3 bottleneck (Howard et al. 2019, Table 1): 1x1 expansion to ``x`` channels
    (skipped when ``x`` equals the input width), depthwise kxk, optional SE with a
    hard-sigmoid gate squeezing to ``make_divisible(x / 4)``, linear 1x1 projection; residual
    when stride 1 and the widths match (torchvision's layout)."""

    type: ClassVar[str] = "bneck"
    c: int = _f(kind=int, lo=1)
    x: int = _f(kind=int, lo=1)
    k: int = _f(3, kind=int, lo=1)
    s: int = _f(1, kind=int, lo=1)
    se: bool = _f(False, kind=bool)
    a: str = _f("relu", kind=str, choices=ACTIVATIONS)

    def lower(self, shape: Shape) -> Layer:
        cin = _need_map(self, shape)[0]
        body: list[Layer] = []
        if self.x != cin:
            body += _cba(self.x, 1, act=self.a)
        body += _dw(self.x, self.k, self.s, self.a)
        if self.se:
            v = self.x // 4  # torchvision: _make_divisible(x // 4, 8)
            sq = max(8, (v + 4) // 8 * 8)
            if sq < 0.9 * v:
                sq += 8
            body.append(Gate(Seq((GAP(), Conv(c=sq, k=1, bias=True), Act("relu"),
                                  Conv(c=self.x, k=1, bias=True), Act("hsigmoid")))))
        body += _cba(self.c, 1, act=None)
        main = Seq(tuple(body))
        return Add((main, Identity())) if self.s == 1 and cin == self.c else main


@dataclass(frozen=True)
class ShuffleV2Unit(Block):
    """ShuffleNet V2 unit (Ma et al. 2018, Fig. 3c/d) with ``c`` output channels. Stride 1:
    channel split in halves, one half through 1x1-dw3x3-1x1, concat, shuffle (2 groups).
    Stride 2: no split; a dw3x3-1x1 branch and the 1x1-dw3x3-1x1 branch, concat, shuffle."""

    type: ClassVar[str] = "shuf2"
    c: int = _f(kind=int, lo=2)
    s: int = _f(1, kind=int, lo=1)

    def validate(self) -> None:
        if self.c % 2:
            raise SpecError(f"{self.token()}: output channels must be even, got {self.c}")

    def lower(self, shape: Shape) -> Layer:
        cin = _need_map(self, shape)[0]
        half = self.c // 2
        main = _cba(half, 1) + _dw(half, 3, self.s, None) + _cba(half, 1)
        if self.s == 1:
            if cin != self.c:
                raise SpecError(f"{self.token()}: a stride-1 unit keeps the width; input has "
                                f"{cin} channels (use s=2 to change it)")
            cat = Concat((ChannelSplit(n=2, i=0), Seq((ChannelSplit(n=2, i=1),) + main)))
        else:
            cat = Concat((Seq(_dw(cin, 3, self.s, None) + _cba(half, 1)), Seq(main)))
        return Seq((cat, ChannelShuffle(g=2)))


@dataclass(frozen=True)
class ShuffleV1Unit(Block):
    """ShuffleNet unit (Zhang et al. 2018, Fig. 2b/c): 1x1 group conv (``g`` groups; one
    group when ``g1=0``, the paper's first unit) to ``c / 4`` channels, BN-ReLU, channel
    shuffle, dw3x3 (stride ``s``), BN, 1x1 group conv, BN. Stride 1: add the input, ReLU.
    Stride 2: concat with a 3x3/2 average pool of the input (the branch gives ``c - C_in``
    channels), ReLU. Bottleneck width ``c / 4`` as the paper and its reference code."""

    type: ClassVar[str] = "shuf1"
    c: int = _f(kind=int, lo=1)
    g: int = _f(3, kind=int, lo=1)
    s: int = _f(1, kind=int, lo=1)
    g1: bool = _f(True, kind=bool)

    def lower(self, shape: Shape) -> Layer:
        cin = _need_map(self, shape)[0]
        mid = self.c // 4
        out = self.c - cin if self.s > 1 else self.c
        if out < 1 or mid < 1:
            raise SpecError(f"{self.token()}: output width {self.c} leaves no channels for the "
                            f"branch on a {cin}-channel input")
        main = (_cba(mid, 1, g=self.g if self.g1 else 1)
                + ((ChannelShuffle(g=self.g),) if self.g > 1 else ())
                + _dw(mid, 3, self.s, None) + _cba(out, 1, g=self.g, act=None))
        if self.s == 1:
            if cin != self.c:
                raise SpecError(f"{self.token()}: a stride-1 unit keeps the width; input has "
                                f"{cin} channels (use s=2 to change it)")
            return Seq((Add((Seq(main), Identity())), Act("relu")))
        return Seq((Concat((AvgPool(k=3, s=self.s, p=1), Seq(main))), Act("relu")))


@dataclass(frozen=True)
class PreActBottleneck(Block):
    """Pre-activation bottleneck (He et al. 2016, "Identity Mappings", Fig. 1b / 4e):
    BN-ReLU-1x1(m)-BN-ReLU-3x3(m, stride s)-BN-ReLU-1x1(c), plus the input (identity) or a
    1x1 projection of it when the shape changes; no activation after the addition."""

    type: ClassVar[str] = "prebottle"
    c: int = _f(kind=int, lo=1)
    m: int = _f(kind=int, lo=1)
    s: int = _f(1, kind=int, lo=1)

    def lower(self, shape: Shape) -> Layer:
        cin = _need_map(self, shape)[0]
        body = (BN(), Act("relu"), Conv(c=self.m, k=1), BN(), Act("relu"),
                Conv(c=self.m, k=3, s=self.s), BN(), Act("relu"), Conv(c=self.c, k=1))
        short: Layer = (Identity() if self.s == 1 and cin == self.c
                        else Conv(c=self.c, k=1, s=self.s))
        return Add((Seq(body), short))


@dataclass(frozen=True)
class FractalBlock(Block):
    """FractalNet block (Larsson et al. 2017, Fig. 1 and eq. 1) with ``cols`` columns and
    ``c`` output channels: f_1 = conv unit, f_{C+1}(z) = join(conv unit(z), f_C(f_C(z))),
    the conv unit being 3x3 conv-BN-ReLU (then dropout ``p`` when > 0). Joins are the binary
    joins of eq. 1, each with local drop-path ``drop`` and global drop-path ``glob`` (the
    share of training passes that keep one column of the whole network, section 3.1; the
    join of f_{C+1} names column C, counted from the deepest); the paper's figure merges the
    joins that meet at one depth into one mean over the columns (equal column weights
    instead of halving per nesting level), which has the same parameters and MACs."""

    type: ClassVar[str] = "fractal"
    c: int = _f(kind=int, lo=1)
    cols: int = _f(3, kind=int, lo=1)
    drop: float = _f(0.15, kind=float, lo=0.0)
    p: float = _f(0.0, kind=float, lo=0.0)
    glob: float = _f(0.0, kind=float, lo=0.0)

    def lower(self, shape: Shape) -> Layer:
        _need_map(self, shape)
        unit: Layer = Seq(_cba(self.c, 3) + ((Dropout(self.p),) if self.p > 0 else ()))
        f = unit
        for col in range(1, self.cols):
            f = Join((unit, Seq((f, f))), drop=self.drop, glob=self.glob, col=col)
        return f


# --------------------------------------------------------------------------------------------
# Blocks of the multi-objective NAS line: MUXNet (MUXConv) and the NASNet-style cell of
# NSGA-Net's micro search space
# --------------------------------------------------------------------------------------------

#: MUXConv's spatial multiplexing per channel group (Lu et al. 2020, section 3.1): ``d``
#: space-to-depth around the convolution (a coarser scale), ``n`` none, ``u`` depth-to-space
#: around it (a finer scale)
MUX_SCALES = ("d", "n", "u")


def split_channels(c: int, n: int) -> tuple[int, ...]:
    """``c`` channels in ``n`` groups, the first taking the remainder (the split of MixConv,
    Tan & Le 2019, and of MUXConv's code)."""
    base = c // n
    return (c - base * (n - 1),) + (base,) * (n - 1)


def _ranges(widths: Sequence[int]) -> list[str]:
    """``start:stop`` of consecutive channel groups of ``widths``."""
    out, start = [], 0
    for w in widths:
        out.append(f"{start}:{start + w}")
        start += w
    return out


@dataclass(frozen=True)
class MuxBlock(Block):
    """MUXNet block (Lu, Deb & Boddeti 2020, "MUXConv", Fig. 3 and the authors' code).

    Channel multiplexing (section 3.2): the first ``int(C_in * r)`` channels go through an
    inverted residual, the rest pass unchanged, the two are concatenated and shuffled in
    ``g`` groups; ``r=1`` is the plain inverted residual (no split, no shuffle), which may
    change width and stride. The inverted residual: 1x1 conv to ``int(C * e)`` -> BN ->
    ``a``, the spatial kxk convolution (stride ``s``) -> BN -> ``a``, SE (``se`` times the
    processed input channels, ``a`` inside, sigmoid gate) when ``se`` > 0, linear 1x1 conv
    -> BN; the input is added when width and resolution are kept.

    The spatial convolution: ``k`` is a kernel size, or dot-separated sizes ("3.5.7") for a
    mixed depthwise convolution over as many channel groups (MixConv); ``dg`` channels per
    group (1: depthwise, 2: the paper's group-wise convolution). ``sc`` turns it into
    MUXConv's spatial multiplexing (section 3.1): one letter per channel group (see
    :data:`MUX_SCALES`), each group depthwise at its scale (``k`` one size, or one per
    group), e.g. ``sc`` = "dnu". The rearrangements follow PixelUnshuffle's channel order;
    the authors' code orders the sub-pixel channels differently, which for the depthwise
    convolution between the two rearrangements only permutes its kernels.
    """

    type: ClassVar[str] = "mux"
    c: int = _f(kind=int, lo=1)
    k: str = _f("3", kind=str)
    e: float = _f(6.0, kind=float, lo=0.0)
    s: int = _f(1, kind=int, lo=1)
    se: float = _f(0.0, kind=float, lo=0.0)
    a: str = _f("silu", kind=str, choices=ACTIVATIONS)
    r: float = _f(1.0, kind=float, lo=0.0)
    g: int = _f(2, kind=int, lo=1)
    dg: int = _f(1, kind=int, lo=1)
    sc: str = _f("", kind=str)

    def __post_init__(self) -> None:
        if isinstance(self.k, int) and not isinstance(self.k, bool):
            object.__setattr__(self, "k", str(self.k))  # k=3 in JSON means "3"
        super().__post_init__()

    def validate(self) -> None:
        ks = self.kernels
        if not 0 < self.r <= 1:
            raise SpecError(f"mux.r={self.r:g} is invalid; pass the share of channels "
                            f"processed, in (0, 1]")
        if any(x not in MUX_SCALES for x in self.sc):
            raise SpecError(f"mux.sc={self.sc!r} is invalid; pass one letter per channel group "
                            f"from {'/'.join(MUX_SCALES)}, e.g. 'dnu'")
        if self.sc and len(ks) not in (1, len(self.sc)):
            raise SpecError(f"mux.k={self.k!r}: give one kernel size or one per scale of "
                            f"sc={self.sc!r}")

    @property
    def kernels(self) -> tuple[int, ...]:
        parts = self.k.split(".")
        if not all(p.isdigit() and int(p) > 0 for p in parts):
            raise SpecError(f"mux.k={self.k!r} is invalid; pass a kernel size such as '3' or "
                            f"dot-separated sizes such as '3.5.7'")
        return tuple(int(p) for p in parts)

    def _spatial(self, mid: int) -> Layer:
        ks = self.kernels
        if not self.sc and len(ks) == 1:
            if mid % self.dg:
                raise SpecError(f"{self.token()}: hidden width {mid} is not divisible by "
                                f"dg={self.dg} channels per group")
            return Conv(c=mid, k=ks[0], s=self.s, g=mid // self.dg)
        n = len(self.sc) if self.sc else len(ks)
        widths = split_channels(mid, n)
        if min(widths) < 1:
            raise SpecError(f"{self.token()}: hidden width {mid} is too narrow for {n} groups")
        ks = ks * n if len(ks) == 1 else ks
        branches: list[Layer] = []
        for rng, ch, k, scale in zip(_ranges(widths), widths, ks, self.sc or "n" * n):
            if scale == "d":
                op: Layer = Seq((SpaceToDepth(2), Conv(c=4 * ch, k=k, s=self.s, g=4 * ch),
                                 DepthToSpace(2)))
            elif scale == "u":
                if ch % 4:
                    raise SpecError(f"{self.token()}: a depth-to-space group needs a multiple "
                                    f"of 4 channels, got {ch}")
                op = Seq((DepthToSpace(2), Conv(c=ch // 4, k=k, s=self.s, g=ch // 4),
                          SpaceToDepth(2)))
            else:
                op = Conv(c=ch, k=k, s=self.s, g=ch)
            branches.append(Seq((Pick(rng), op)))
        return Concat(tuple(branches))

    def lower(self, shape: Shape) -> Layer:
        cin = _need_map(self, shape)[0]
        if self.r < 1:
            p = int(cin * self.r)
            if self.s != 1 or self.c != cin:
                raise SpecError(f"{self.token()}: channel multiplexing (r < 1) keeps the width "
                                f"and the resolution; the input has {cin} channels (use r=1 to "
                                f"change them)")
            if not 0 < p < cin:
                raise SpecError(f"{self.token()}: r={self.r:g} of {cin} channels leaves no "
                                f"channels to process or to pass on")
            q = p
        else:
            p, q = cin, self.c
        mid = int(p * self.e)
        if mid < 1:
            raise SpecError(f"{self.token()}: expansion e={self.e:g} leaves no hidden channels")
        body = list(_cba(mid, 1, act=self.a)) + [self._spatial(mid), BN(), Act(self.a)]
        if self.se > 0:
            body.append(Gate(Seq((GAP(), Conv(c=max(1, int(p * self.se)), k=1, bias=True),
                                  Act(self.a), Conv(c=mid, k=1, bias=True), Act("sigmoid")))))
        body += _cba(q, 1, act=None)
        main: Layer = Seq(tuple(body))
        if self.s == 1 and p == q:
            main = Add((main, Identity()))
        if self.r >= 1:
            return main
        return Seq((Concat((Seq((Pick(f"0:{p}"), main)), Pick(f"{p}:{cin}"))),
                    ChannelShuffle(g=self.g)))


#: operations on the edges of a NASNet-style cell, by the short names of the ``cell`` token
#: (DARTS / NSGA-Net's micro space: skip_connect, max_pool_3x3, avg_pool_3x3, sep_conv_3x3,
#: sep_conv_5x5, sep_conv_7x7, dil_conv_3x3, dil_conv_5x5)
CELL_OPS = ("skip", "max3", "avg3", "sep3", "sep5", "sep7", "dil3", "dil5")


def parse_cell_ops(ops: str) -> tuple[tuple[str, int], ...]:
    """``skip~0-max3~0-dil5~1-...`` -> ``((op, state), ...)``, two per node; node ``j`` (2,
    3, ...) may take the states before it. SpecError naming the item otherwise."""
    items = ops.split("-")
    if len(items) % 2:
        raise SpecError(f"cell.ops={ops!r}: every node sums two operations; got {len(items)} "
                        f"items")
    out = []
    for n, item in enumerate(items):
        op, sep, src = item.partition("~")
        if op not in CELL_OPS:
            raise SpecError(f"cell.ops: unknown operation {op!r} in {item!r}; known: "
                            f"{', '.join(CELL_OPS)}")
        if not sep or not src.isdigit() or int(src) >= 2 + n // 2:
            raise SpecError(f"cell.ops: {item!r} must read op~state with a state before node "
                            f"{2 + n // 2} (0 and 1 are the inputs)")
        out.append((op, int(src)))
    return tuple(out)


def _factorized_reduce(width4: int, c: int) -> Layer:
    """DARTS' factorized reduction (Liu et al. 2019: ReLU, two stride-2 1x1 convs of c/2
    channels on x[::2, ::2] and x[1::2, 1::2], concat, BN) on its input already taken
    space-to-depth (``width4`` channels), where the two pixel phases are channels
    ``0::4`` and ``3::4``."""
    half = c // 2
    return Seq((Act("relu"), Concat((Seq((Pick(f"0:{width4}:4"), Conv(c=half, k=1))),
                                     Seq((Pick(f"3:{width4}:4"), Conv(c=half, k=1))))), BN()))


def _cell_op(op: str, c: int, s: int) -> Layer:
    """One edge operation on ``c`` channels with stride ``s`` (DARTS' operations)."""
    if op == "skip":
        return Identity()
    if op in ("max3", "avg3"):
        return (MaxPool(k=3, s=s, p=1) if op == "max3"
                else AvgPool(k=3, s=s, p=1, cip=False))
    k = int(op[3:])
    if op.startswith("dil"):
        return Seq((Act("relu"), Conv(c=c, k=k, s=s, d=2, g=c), Conv(c=c, k=1), BN()))
    return Seq((Act("relu"), Conv(c=c, k=k, s=s, g=c), Conv(c=c, k=1), BN(),
                Act("relu"), Conv(c=c, k=k, g=c), Conv(c=c, k=1), BN()))


@dataclass(frozen=True)
class Cell(Block):
    """NASNet-style cell (Zoph et al. 2018) as DARTS (Liu et al. 2019) and NSGA-Net's micro
    search space (Lu et al. 2019) build it: two input states, s0 (the output of the cell
    before the previous one) and s1 (the previous), each preprocessed to ``c`` channels
    (ReLU-1x1 conv-BN; after a reduction cell, ``rp``, s0 by the factorized reduction); node
    j = 2, 3, ... sums two operations of earlier states (``ops``: ``op~state`` pairs, two
    per node, see :data:`CELL_OPS`); the output concatenates the nodes ``out`` (SE on it
    when ``se``: reduction 16, no biases). A reduction cell (``red``) applies the
    operations on s0 and s1 with stride 2.

    A spec carries one tensor from layer to layer, so the two states travel as one: the
    input is ``concat(s0, s1)`` with ``p`` channels of s0, the output ``concat(s1, cell)``.
    After a reduction cell s1 travels space-to-depth (``s2d``, 4x channels at the halved
    resolution) and the next cell reads its factorized reduction from the pixel phases.
    Inside, the states grow as one concatenation [s0', s1', node 2, ...] from which ``pick``
    takes each operation's input; a reduction cell keeps s0' and s1' space-to-depth and
    restores them with ``d2s`` before their stride-2 operations. Parameters, MACs and the
    computed function are the cell's; the activations include these copies, which the
    original code does not make.
    """

    type: ClassVar[str] = "cell"
    c: int = _f(kind=int, lo=1)
    p: int = _f(kind=int, lo=1)
    ops: str = _f(kind=str)
    out: str = _f(kind=str)
    red: bool = _f(False, kind=bool)
    rp: bool = _f(False, kind=bool)
    se: bool = _f(False, kind=bool)

    def validate(self) -> None:
        ops = parse_cell_ops(self.ops)
        _ = self.outputs
        fr = self.rp or (self.red and any(op == "skip" and i < 2 for op, i in ops))
        if fr and self.c % 2:
            raise SpecError(f"cell.c={self.c} must be even: a factorized reduction makes two "
                            f"halves of it")

    @property
    def outputs(self) -> tuple[int, ...]:
        n = len(parse_cell_ops(self.ops)) // 2
        parts = self.out.split("-")
        if not all(x.isdigit() and 2 <= int(x) < 2 + n for x in parts) or \
                len(set(parts)) != len(parts):
            raise SpecError(f"cell.out={self.out!r} is invalid; pass distinct nodes from 2 to "
                            f"{1 + n}, dash-separated (e.g. '2-3-4')")
        return tuple(int(x) for x in parts)

    def lower(self, shape: Shape) -> Layer:
        cin = _need_map(self, shape)[0]
        p, c = self.p, self.c
        if cin - p < 1:
            raise SpecError(f"{self.token()}: p={p} leaves no channels of s1 in a {cin}-channel "
                            f"input")
        if self.rp and p % 4:
            raise SpecError(f"{self.token()}: after a reduction s0 travels space-to-depth, so "
                            f"p={p} must be a multiple of 4")
        pre0 = (Seq((Pick(f"0:{p}"), _factorized_reduce(p, c))) if self.rp
                else Seq((Pick(f"0:{p}"), Act("relu"), Conv(c=c, k=1), BN())))
        pre1 = Seq((Pick(f"{p}:{cin}"), Act("relu"), Conv(c=c, k=1), BN()))
        body: list[Layer] = [Concat((pre0, pre1))]
        scale = 4 if self.red else 1  # the inputs' channels once space-to-depth
        if self.red:
            body.append(SpaceToDepth(2))
        ops = parse_cell_ops(self.ops)

        def span(j: int) -> tuple[int, int]:
            start = j * scale * c if j < 2 else 2 * scale * c + (j - 2) * c
            return start, start + (scale * c if j < 2 else c)

        for n in range(len(ops) // 2):
            terms = []
            for op, j in ops[2 * n: 2 * n + 2]:
                a, b = span(j)
                x: tuple[Layer, ...] = (Pick(f"{a}:{b}"),)
                if self.red and j < 2:
                    x += ((_factorized_reduce(4 * c, c),) if op == "skip"
                          else (DepthToSpace(2), _cell_op(op, c, 2)))
                else:
                    x += (_cell_op(op, c, 1),)
                terms.append(Seq(x))
            body.append(Concat((Identity(), Add(tuple(terms)))))
        merged: list[list[int]] = []
        for a, b in (span(j) for j in self.outputs):
            if merged and merged[-1][1] == a:
                merged[-1][1] = b
            else:
                merged.append([a, b])
        body.append(Pick("-".join(f"{a}:{b}" for a, b in merged)))
        if self.se:
            w = len(self.outputs) * c
            body.append(Gate(Seq((GAP(), Conv(c=max(1, w // 16), k=1), Act("relu"),
                                  Conv(c=w, k=1), Act("sigmoid")))))
        s1: Layer = Pick(f"{p}:{cin}")
        if self.red:
            s1 = Seq((s1, SpaceToDepth(2)))
        return Concat((s1, Seq(tuple(body))))


ZOO_LAYERS: tuple[type[Layer], ...] = (ChannelShuffle, ChannelSplit, Scale, Aux, Join, Bneck,
                                       ShuffleV2Unit, ShuffleV1Unit, PreActBottleneck,
                                       FractalBlock, Pick, SpaceToDepth, DepthToSpace, RBF,
                                       MuxBlock, Cell)


# --------------------------------------------------------------------------------------------
# Blocks (continued): DenseNet, classifier head
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DenseLayer(Block):
    """DenseNet layer (Huang et al. 2017): concat(x, conv3x3(g) o BN-ReLU o conv1x1(b*g) o
    BN-ReLU (x)); growth ``g``, bottleneck factor ``b``."""

    type: ClassVar[str] = "dense"
    g: int = _f(kind=int, lo=1)
    b: int = _f(4, kind=int, lo=1)

    def lower(self, shape: Shape) -> Layer:
        body = (BN(), Act("relu"), Conv(c=self.b * self.g, k=1), BN(), Act("relu"),
                Conv(c=self.g, k=3))
        return Concat((Identity(), Seq(body)))


@dataclass(frozen=True)
class Transition(Block):
    """DenseNet transition: BN -> ReLU -> 1x1 conv -> 2x2 average pool."""

    type: ClassVar[str] = "trans"
    c: int = _f(kind=int, lo=1)

    def lower(self, shape: Shape) -> Layer:
        return Seq((BN(), Act("relu"), Conv(c=self.c, k=1), AvgPool(k=2, s=2)))


@dataclass(frozen=True)
class Head(Block):
    """Classifier head: global average pool -> flatten -> (dropout) -> fc(c)."""

    type: ClassVar[str] = "head"
    c: int = _f(kind=int, lo=1)
    p: float = _f(0.0, kind=float, lo=0.0)

    def lower(self, shape: Shape) -> Layer:
        mid: tuple[Layer, ...] = (Dropout(self.p),) if self.p > 0 else ()
        return Seq((GAP(), Flatten()) + mid + (Linear(c=self.c),))


# NAS-Bench-201 (Dong & Yang, ICLR 2020) ---------------------------------------------------------

#: NAS-Bench-201's edge operations, by the names its arch strings use.
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def parse_nb201_arch(arch: str) -> tuple[tuple[str, int, int], ...]:
    """``|nor_conv_3x3~0|+|skip_connect~0|none~1|+|...|`` -> ``((op, source, target), ...)``
    in :func:`dag_pairs` order; SpecError naming the problem for a malformed string."""
    where = f"nb201 arch {arch!r}"
    if not isinstance(arch, str) or not arch.startswith("|") or not arch.endswith("|"):
        raise SpecError(f"{where}: expected the NAS-Bench-201 form |op~0|+|op~0|op~1|+...")
    edges: dict[tuple[int, int], str] = {}
    nodes = arch.split("+")
    for j, node in enumerate(nodes, start=1):
        items = [x for x in node.strip("|").split("|")]
        if len(items) != j:
            raise SpecError(f"{where}: node {j} needs {j} incoming edges (from nodes 0..{j - 1}), "
                            f"got {len(items)}")
        for item in items:
            op, sep, src = item.partition("~")
            if not sep or not src.isdigit() or int(src) >= j:
                raise SpecError(f"{where}: edge {item!r} of node {j} must read op~i with i < {j}")
            if op not in NB201_OPS:
                raise SpecError(f"{where}: unknown operation {op!r}; known: {list(NB201_OPS)}")
            if (int(src), j) in edges:
                raise SpecError(f"{where}: node {j} takes node {src} twice")
            edges[(int(src), j)] = op
    return tuple((edges[p], p[0], p[1]) for p in dag_pairs(len(edges)))


def nb201_arch_string(ops: Sequence[str]) -> str:
    """The NAS-Bench-201 arch string of ``ops`` given in :func:`dag_pairs` order."""
    pairs = dag_pairs(len(ops))
    nodes: dict[int, list[str]] = {}
    for op, (i, j) in zip(ops, pairs):
        nodes.setdefault(j, []).append(f"{op}~{i}")
    return "+".join("|" + "|".join(nodes[j]) + "|" for j in sorted(nodes))


def dag_live_edges(ops: Sequence[str], pairs: Sequence[tuple[int, int]]) -> tuple[bool, ...]:
    """Which edges affect the output: not ``none``, fed by a node that receives something,
    and leading to a node that reaches the output (the last node)."""
    n = max(j for _, j in pairs)
    fed = [True] + [False] * n
    for op, (i, j) in zip(ops, pairs):  # pairs are ordered by target
        if op != "none" and fed[i]:
            fed[j] = True
    reaches = [False] * n + [True]
    for op, (i, j) in sorted(zip(ops, pairs), key=lambda e: -e[1][1]):
        if op != "none" and reaches[j]:
            reaches[i] = True
    return tuple(op != "none" and fed[i] and reaches[j] and fed[n]
                 for op, (i, j) in zip(ops, pairs))


def _nb201_edge(op: str, c: int) -> Layer:
    if op == "skip_connect":
        return Identity()
    if op == "nor_conv_1x1":
        return Seq((Act("relu"), Conv(c=c, k=1), BN()))
    if op == "nor_conv_3x3":
        return Seq((Act("relu"), Conv(c=c, k=3), BN()))
    if op == "avg_pool_3x3":
        return AvgPool(k=3, s=1, p=1, cip=False)
    return Zero()


@dataclass(frozen=True)
class NB201Cell(Block):
    """NAS-Bench-201 cell: a 4-node DAG whose 6 edges each hold one of :data:`NB201_OPS`
    (ReLU-conv-BN units, 3x3 average pooling without counting padding, identity, zero); the
    width is the input's. ``arch`` is the benchmark's own arch string, which the token
    carries verbatim: ``nb201_|nor_conv_3x3~0|+|...|``. Dead edges (see
    :func:`dag_live_edges`) lower to ``zero`` and so cost nothing; a cell whose output
    receives nothing lowers to ``zero``."""

    type: ClassVar[str] = "nb201"
    arch: str = _f(kind=str)

    def validate(self) -> None:
        parse_nb201_arch(self.arch)

    @property
    def ops(self) -> tuple[str, ...]:
        return tuple(op for op, _, _ in parse_nb201_arch(self.arch))

    def token(self) -> str:
        return f"{self.type}_{self.arch}"

    def lower(self, shape: Shape) -> Layer:
        c = _need_map(self, shape)[0]
        ops = self.ops
        pairs = dag_pairs(len(ops))
        live = dag_live_edges(ops, pairs)
        if not any(live):
            return Zero()
        return Dag(tuple(_nb201_edge(op if ok else "none", c) for op, ok in zip(ops, live)))


@dataclass(frozen=True)
class NB201Reduction(Block):
    """NAS-Bench-201's residual reduction block between stages: ReLU-conv3x3(stride s)-BN,
    ReLU-conv3x3-BN, plus a shortcut of 2x2 average pooling and a 1x1 conv (stride 2), a
    ReLU-conv1x1-BN (width change only) or identity; no activation after the sum."""

    type: ClassVar[str] = "nb201r"
    c: int = _f(kind=int, lo=1)
    s: int = _f(2, kind=int, lo=1, choices=(1, 2))

    def lower(self, shape: Shape) -> Layer:
        cin = _need_map(self, shape)[0]
        main = Seq((Act("relu"), Conv(c=self.c, k=3, s=self.s), BN(),
                    Act("relu"), Conv(c=self.c, k=3), BN()))
        short: Layer
        if self.s == 2:
            short = Seq((AvgPool(k=2, s=2), Conv(c=self.c, k=1)))
        elif cin != self.c:
            short = Seq((Act("relu"), Conv(c=self.c, k=1), BN()))
        else:
            short = Identity()
        return Add((main, short))


# --------------------------------------------------------------------------------------------
# Registry, shape inference
# --------------------------------------------------------------------------------------------

LAYER_TYPES: dict[str, type[Layer]] = {
    cls.type: cls
    for cls in (Conv, BN, Act, MaxPool, AvgPool, GAP, AdaptiveAvgPool, LRN, Dropout, Flatten,
                Linear, Identity, Zero, PadShortcut, Seq, Add, Concat, Gate, Dag, ConvBNAct,
                MBConv, DWSeparable, BasicBlock, Bottleneck, PreActBlock, Inception, DenseLayer,
                Transition, Head, NB201Cell, NB201Reduction)
}
for _cls in LAYER_TYPES.values():
    _cls.__hash__ = Layer.__hash__  # @dataclass(frozen=True) added an uncached one

# The layers of the later classic nets (defined in their own sections above).
for _cls in ZOO_LAYERS:
    LAYER_TYPES[_cls.type] = _cls
    _cls.__hash__ = Layer.__hash__


@lru_cache(maxsize=65536)
def lowered(layer: Layer, shape: Shape) -> Layer:
    """``layer.lower(shape)``, memoised (blocks are immutable)."""
    return layer.lower(shape)


def out_shape(layer: Layer, shape: Shape) -> Shape:
    """Output shape of ``layer`` on ``shape``; raises :class:`SpecError` when inconsistent."""
    return _out_shape(layer, tuple(shape))


@lru_cache(maxsize=65536)
def _out_shape(layer: Layer, shape: Shape) -> Shape:
    t = type(layer)
    if t is Conv:
        c, h, w = _need_map(layer, shape)
        if c % layer.g:
            raise SpecError(f"{layer.token()}: input channels {c} not divisible by groups "
                            f"{layer.g}")
        (kh, kw), (ph, pw) = layer.kernel, layer.padding_hw
        out = (layer.c, _spatial(layer, h, kh, layer.s, ph, layer.d),
               _spatial(layer, w, kw, layer.s, pw, layer.d))
        return _check_nonempty(layer, shape, out)
    if t is BN or t is Act or t is Dropout or t is Identity or t is LRN or t is Zero:
        if t is not Act and t is not Dropout and t is not Identity and t is not Zero:
            _need_map(layer, shape)
        return shape
    if t is MaxPool or t is AvgPool:
        c, h, w = _need_map(layer, shape)
        if layer.p * 2 > layer.k:
            raise SpecError(f"{layer.token()}: padding {layer.p} exceeds half the kernel "
                            f"{layer.k} (PyTorch rejects this)")
        out = (c, _spatial(layer, h, layer.k, layer.stride, layer.p, ceil=layer.ceil),
               _spatial(layer, w, layer.k, layer.stride, layer.p, ceil=layer.ceil))
        return _check_nonempty(layer, shape, out)
    if t is GAP:
        return (_need_map(layer, shape)[0], 1, 1)
    if t is Scale:
        return shape
    if t is ChannelShuffle or t is ChannelSplit:
        c = _need_map(layer, shape)[0]
        parts = layer.g if t is ChannelShuffle else layer.n
        if c % parts:
            raise SpecError(f"{layer.token()}: input channels {c} not divisible by {parts}")
        return shape if t is ChannelShuffle else (c // parts,) + tuple(shape[1:])
    if t is AdaptiveAvgPool:
        return (_need_map(layer, shape)[0], layer.o, layer.o)
    if t is Pick:
        c, h, w = _need_map(layer, shape)
        return (len(layer.indices(c)), h, w)
    if t is SpaceToDepth:
        c, h, w = _need_map(layer, shape)
        if h % layer.r or w % layer.r:
            raise SpecError(f"{layer.token()}: height and width {h}x{w} must be multiples of "
                            f"{layer.r}; use an input resolution divisible by the total "
                            f"downsampling")
        return (c * layer.r ** 2, h // layer.r, w // layer.r)
    if t is DepthToSpace:
        c, h, w = _need_map(layer, shape)
        if c % layer.r ** 2:
            raise SpecError(f"{layer.token()}: input channels {c} not divisible by "
                            f"{layer.r ** 2} (r^2)")
        return (c // layer.r ** 2, h * layer.r, w * layer.r)
    if t is RBF:
        if len(shape) != 1:
            raise SpecError(f"{layer.token()} needs a flat vector but gets a feature map "
                            f"{tuple(shape)}; put 'flatten' before it")
        return (layer.c,)
    if t is Flatten:
        return (math.prod(shape),)
    if t is Linear:
        if len(shape) != 1:
            raise SpecError(f"{layer.token()} needs a flat vector but gets a feature map "
                            f"{tuple(shape)}; put 'flatten' (or 'gap flatten') before it")
        return (layer.c,)
    if t is PadShortcut:
        c, h, w = _need_map(layer, shape)
        if layer.c < c:
            raise SpecError(f"{layer.token()}: cannot pad {c} channels down to {layer.c}")
        return (layer.c, -(-h // layer.s), -(-w // layer.s))
    if t is Seq:
        for i, sub in enumerate(layer.layers):
            try:
                shape = _out_shape(sub, shape)
            except SpecError as e:
                raise SpecError(f"[{i}] {e}") from None
        return shape
    if t is Add or t is Concat or t is Join:
        outs = []
        for i, b in enumerate(layer.branches):
            try:
                outs.append(_out_shape(b, shape))
            except SpecError as e:
                raise SpecError(f"{layer.type} branch {i}: {e}") from None
        if t is Add or t is Join:
            if any(o != outs[0] for o in outs):
                raise SpecError(f"add: branch output shapes differ {outs}; a residual "
                                f"connection needs equal shapes (use a projection shortcut)")
            return outs[0]
        if any(len(o) != 3 or o[1:] != outs[0][1:] for o in outs):
            raise SpecError(f"concat: branch spatial sizes differ {outs}")
        return (sum(o[0] for o in outs),) + outs[0][1:]
    if t is Dag:
        for e, (i, j) in zip(layer.edges, layer.pairs):
            if type(e) is Zero:
                continue
            try:
                o = _out_shape(e, shape)
            except SpecError as err:
                raise SpecError(f"dag edge {i}->{j}: {err}") from None
            if o != tuple(shape):
                raise SpecError(f"dag edge {i}->{j} maps {tuple(shape)} to {o}; every edge of a "
                                f"cell must keep its input's shape")
        return shape
    if t is Aux:
        try:
            _out_shape(layer.branch, shape)
        except SpecError as e:
            raise SpecError(f"aux branch: {e}") from None
        return shape
    if t is Gate:
        g = _out_shape(layer.branch, shape)
        if len(shape) != 3 or g != (shape[0], 1, 1):
            raise SpecError(f"gate: branch must give ({shape[0]}, 1, 1) on {shape}, gives {g}")
        return shape
    if isinstance(layer, Block):
        return _out_shape(lowered(layer, shape), shape)
    raise SpecError(f"unknown layer {layer!r}")


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


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


_VALUE_RE = re.compile(r"^-?\d+(\.\d*)?(e-?\d+)?$")


def _parse_value(cls: type[Layer], name: str, text: str, where: str) -> Any:
    f = {f.name: f for f in fields(cls)}[name]
    kind = f.metadata.get("kind")
    if kind is str:
        return text
    if not _VALUE_RE.match(text):
        raise SpecError(f"{where}: field {name!r} needs a number, got {text!r}")
    num = float(text)
    if kind is int or kind is bool:
        if not num.is_integer():
            raise SpecError(f"{where}: field {name!r} needs an integer, got {text!r}")
        return int(num)
    return num


def layer_from_token(token: str) -> Layer:
    """Parse one token of the string form (see the module docstring)."""
    where = f"token {token!r}"
    if token in ACTIVATIONS:
        return Act(token)
    if token.startswith("nb201_|"):  # the NAS-Bench-201 arch string is carried verbatim
        return layer_from_dict({"type": "nb201", "arch": token[len("nb201_"):]}, where=where)
    parts = token.split("_")
    cls = LAYER_TYPES.get(parts[0])
    if cls is None or cls.kind == "combinator":
        raise SpecError(f"{where}: unknown layer type {parts[0]!r}; known: "
                        f"{sorted(k for k, c in LAYER_TYPES.items() if c.kind != 'combinator')}"
                        f" and activations {list(ACTIVATIONS)}")
    rest = parts[1:]
    kwargs: dict[str, Any] = {}
    if cls.positional:
        if not rest:
            raise SpecError(f"{where}: expects {'-'.join(cls.positional)} after the type")
        vals = rest[0].split("-")
        if len(vals) != len(cls.positional):
            raise SpecError(f"{where}: expects {len(cls.positional)} dash-separated values "
                            f"({'-'.join(cls.positional)})")
        for n, v in zip(cls.positional, vals):
            kwargs[n] = _parse_value(cls, n, v, where)
        rest = rest[1:]
    keys = sorted((f.name for f in fields(cls) if f.name not in cls.positional),
                  key=len, reverse=True)
    for part in rest:
        for k in keys:
            if part.startswith(k) and len(part) > len(k):
                kwargs[k] = _parse_value(cls, k, part[len(k):], where)
                break
        else:
            raise SpecError(f"{where}: cannot read {part!r}; fields of {cls.type!r}: "
                            f"{sorted(keys)}")
    return layer_from_dict({"type": cls.type, **kwargs}, where=where)


_OPEN_RE = re.compile(r"^(seq|add|concat|gate|aux|dag|join(?:_[a-z]+[0-9.e-]+)*)\[")
_CLOSE_RE = re.compile(r"^(.*?)(\]*)(?:\*(\w*))?$")


def _combinator(kind: str, branches: list[list[Layer]], where: str) -> Layer:
    if kind == "seq":
        if len(branches) != 1:
            raise SpecError(f"{where}: 'seq[...]' takes no '|'")
        return Seq(tuple(branches[0]))
    for b in branches:
        if len(b) != 1:
            raise SpecError(f"{where}: every branch of {kind}[...] is one layer (wrap several "
                            f"in seq[...]), got {len(b)}")
    if kind in ("gate", "aux"):
        if len(branches) != 1:
            raise SpecError(f"{where}: {kind}[...] has exactly one branch")
        return (Gate if kind == "gate" else Aux)(branches[0][0])
    if kind == "dag":
        return Dag(tuple(b[0] for b in branches))
    if kind.startswith("join"):
        opts: dict[str, Any] = {}
        for part in kind.split("_")[1:]:
            key = next((k for k in ("drop", "glob", "col") if part.startswith(k)), None)
            if key is None:
                raise SpecError(f"{where}: cannot read {part!r}; join takes drop, glob, col")
            opts[key] = _parse_value(Join, key, part[len(key):], where)
        try:
            return Join(tuple(b[0] for b in branches), **opts)
        except SpecError as e:
            raise SpecError(f"{where}: {e}") from None
    return (Add if kind == "add" else Concat)(tuple(b[0] for b in branches))


def layers_from_words(words: Sequence[str]) -> list[Layer]:
    """Parse the whitespace-separated words of a spec string (after the input shape) into
    layers: plain tokens, ``tok*N`` repeats, and combinators ``type[a b | c]`` nested to any
    depth (the form :meth:`Layer.token` prints)."""
    # A stack of open combinators: (kind, branches); the bottom entry is the spec itself.
    stack: list[tuple[str, list[list[Layer]]]] = [("", [[]])]
    for word in words:
        where = f"word {word!r}"
        if word == "|":
            if len(stack) == 1:
                raise SpecError(f"{where}: '|' outside a combinator")
            stack[-1][1].append([])
            continue
        m = _OPEN_RE.match(word)
        while m:
            stack.append((m.group(1), [[]]))
            word = word[m.end():]
            m = _OPEN_RE.match(word)
        core, closes, rep = _CLOSE_RE.match(word).groups()
        if core:
            stack[-1][1][-1].append(layer_from_token(core))
        for _ in closes:
            if len(stack) == 1:
                raise SpecError(f"{where}: unbalanced ']'")
            kind, branches = stack.pop()
            stack[-1][1][-1].append(_combinator(kind, branches, where))
        if rep is not None:
            if not rep.isdigit() or int(rep) < 1:
                raise SpecError(f"token {word}: repeat count must be a positive integer")
            current = stack[-1][1][-1]
            if not current:
                raise SpecError(f"{where}: nothing to repeat")
            current += [current[-1]] * (int(rep) - 1)
    if len(stack) > 1:
        raise SpecError(f"spec string: {len(stack) - 1} unclosed '{stack[-1][0]}[' (missing "
                        f"']')")
    return stack[0][1][0]


# --------------------------------------------------------------------------------------------
# ArchSpec
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchSpec:
    """A whole network: input shape (C, H, W) and an ordered tuple of layers."""

    input: tuple[int, int, int]
    layers: tuple[Layer, ...]
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        inp = self.input
        if (not isinstance(inp, (tuple, list)) or len(inp) != 3
                or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0
                           for x in inp)):
            raise SpecError(f"input: expected [channels, height, width] of positive integers, "
                            f"got {inp!r}")
        object.__setattr__(self, "input", tuple(inp))
        object.__setattr__(self, "layers", _as_layers(self.layers, "layers"))
        if not self.layers:
            raise SpecError("layers: a spec needs at least one layer")
        # Shape-check now (an inconsistent spec never exists) and keep the result.
        object.__setattr__(self, "_shapes", _layer_shapes(self.input, self.layers))

    def shapes(self) -> list[Shape]:
        """Output shape of every top-level layer."""
        return list(self._shapes)

    @property
    def out_shapes(self) -> tuple[Shape, ...]:
        """The same as :meth:`shapes`, as the stored tuple (no copy)."""
        return self._shapes

    @property
    def out_shape(self) -> Shape:
        return self.shapes()[-1]

    @property
    def num_classes(self) -> int:
        out = self.out_shape
        return out[0] if len(out) == 1 else math.prod(out)

    @property
    def resolution(self) -> int:
        return self.input[1]

    # Serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"name": self.name, "input": list(self.input),
                "layers": [x.to_dict() for x in self.layers]}

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_dict(cls, d: Any) -> ArchSpec:
        if not isinstance(d, dict):
            raise SpecError(f"spec: expected a JSON object with 'input' and 'layers', got "
                            f"{type(d).__name__}")
        for key in ("input", "layers"):
            if key not in d:
                raise SpecError(f"spec: missing field {key!r}")
        extra = set(d) - {"name", "input", "layers"}
        if extra:
            raise SpecError(f"spec: unknown field(s) {sorted(extra)}; allowed: name, input, "
                            f"layers")
        layers = d["layers"]
        if not isinstance(layers, list):
            raise SpecError("spec.layers: expected a list of layer objects")
        parsed = tuple(layer_from_dict(x, where=f"layers[{i}]") for i, x in enumerate(layers))
        return cls(input=tuple(d["input"]) if isinstance(d["input"], list) else d["input"],
                   layers=parsed, name=str(d.get("name", "")))

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError(f"spec JSON is malformed: {e}") from None
        return cls.from_dict(d)

    def to_string(self) -> str:
        """Short readable form: ``CxHxW tok tok*N ...`` (see the module docstring)."""
        toks = [x.token() for x in self.layers]
        out = ["x".join(map(str, self.input))]
        i = 0
        while i < len(toks):
            j = i
            while j + 1 < len(toks) and toks[j + 1] == toks[i]:
                j += 1
            n = j - i + 1
            out.append(toks[i] if n == 1 else f"{toks[i]}*{n}")
            i = j + 1
        return " ".join(out)

    def __str__(self) -> str:
        return self.to_string()

    @classmethod
    def from_string(cls, text: str, *, name: str = "") -> ArchSpec:
        parts = text.split()
        if not parts:
            raise SpecError("spec string is empty")
        m = re.fullmatch(r"(\d+)x(\d+)x(\d+)", parts[0])
        if not m:
            raise SpecError(f"spec string must start with the input shape CxHxW (e.g. "
                            f"3x224x224), got {parts[0]!r}")
        layers = layers_from_words(parts[1:])
        return cls(input=tuple(int(g) for g in m.groups()), layers=tuple(layers), name=name)


def _layer_shapes(inp: Shape, layers: tuple[Layer, ...]) -> tuple[Shape, ...]:
    """Output shapes of ``layers`` in turn; errors name the layer index and token."""
    shapes = []
    shape = inp
    for i, layer in enumerate(layers):
        try:
            shape = _out_shape(layer, shape)
        except SpecError as e:
            raise SpecError(f"layers[{i}] {layer.token()}: {e}") from None
        shapes.append(shape)
    return tuple(shapes)
