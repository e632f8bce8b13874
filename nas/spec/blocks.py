"""Blocks: layers that lower to primitives and combinators given their input shape (see
:mod:`nas.spec`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from nas.spec.layers import (
    ACTIVATIONS,
    BN,
    GAP,
    Act,
    Add,
    AvgPool,
    Block,
    ChannelShuffle,
    ChannelSplit,
    Concat,
    Conv,
    DepthToSpace,
    Dropout,
    Flatten,
    Gate,
    Identity,
    Join,
    Layer,
    Linear,
    MaxPool,
    PadShortcut,
    Pick,
    Seq,
    Shape,
    SpaceToDepth,
    SpecError,
    _f,
    _need_map,
    register,
)


def squeeze_excite(channels: int, squeeze: int) -> Gate:
    """SE gate: GAP -> 1x1 conv (bias) -> ReLU -> 1x1 conv (bias) -> sigmoid (Hu et al. 2018)."""
    return Gate(Seq((GAP(), Conv(c=squeeze, k=1, bias=True), Act("relu"),
                     Conv(c=channels, k=1, bias=True), Act("sigmoid"))))


def _cba(c: int, k: int = 1, s: int = 1, g: int = 1, act: str | None = "relu",
         eps: float = 1e-5) -> tuple[Layer, ...]:
    out: tuple[Layer, ...] = (Conv(c=c, k=k, s=s, g=g), BN(eps=eps))
    return out + ((Act(act),) if act else ())




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


register(ConvBNAct, MBConv, DWSeparable, BasicBlock, Bottleneck, PreActBlock, Inception, Bneck,
         ShuffleV2Unit, ShuffleV1Unit, PreActBottleneck, FractalBlock, MuxBlock, Cell,
         DenseLayer, Transition, Head)
