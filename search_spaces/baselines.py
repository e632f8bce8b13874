"""Classic hand-designed networks written as ArchSpecs: the baselines on every front.

Every builder takes ``num_classes``, ``resolution`` and ``in_channels``. Nets with an
ImageNet form and a CIFAR form switch on the resolution: ``resolution < 96`` gives the CIFAR
form (3x3 stride-1 stem, no stem pooling), described per net below. Nets with only one
form (AlexNet, ZFNet at 224/227) accept any resolution their layers fit; too small a
resolution is reported by shape inference with the failing layer.

Sources are cited per builder; channel lists are the papers' (or torchvision's, where the
docstring says so).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nas.spec import (
    BN,
    LRN,
    Act,
    AdaptiveAvgPool,
    ArchSpec,
    AvgPool,
    BasicBlock,
    Bottleneck,
    Conv,
    ConvBNAct,
    DenseLayer,
    Dropout,
    DWSeparable,
    Flatten,
    Head,
    Inception,
    Layer,
    Linear,
    MaxPool,
    MBConv,
    PreActBlock,
    Transition,
)

CIFAR_MAX_RESOLUTION = 96  # below this, nets with a CIFAR form use it


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor`` without going below 90% of ``v``
    (the rule of the TensorFlow MobileNet code, also in torchvision)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _spec(name: str, in_channels: int, resolution: int, layers: list[Layer]) -> ArchSpec:
    return ArchSpec(input=(in_channels, resolution, resolution), layers=tuple(layers),
                    name=name)


def _fc_stack(widths: list[int], num_classes: int, drop: float) -> list[Layer]:
    out: list[Layer] = [Flatten()]
    for w in widths:
        out += [Dropout(drop), Linear(c=w), Act("relu")] if drop else [Linear(c=w), Act("relu")]
    return out + [Linear(c=num_classes)]


# --------------------------------------------------------------------------------------------
# Early nets
# --------------------------------------------------------------------------------------------


def lenet5(num_classes: int = 10, resolution: int = 32, in_channels: int = 1) -> ArchSpec:
    """LeNet-5 (LeCun et al. 1998): conv5(6)-pool-conv5(16)-pool-fc120-fc84-fc, tanh,
    average-pool subsampling. C3 is fully connected to S2 (the paper's sparse connection
    table is the one simplification); 61,706 parameters at 32x32 with 10 classes."""
    layers: list[Layer] = [Conv(c=6, k=5, p=0, bias=True), Act("tanh"), AvgPool(k=2),
                           Conv(c=16, k=5, p=0, bias=True), Act("tanh"), AvgPool(k=2),
                           Flatten(), Linear(c=120), Act("tanh"), Linear(c=84), Act("tanh"),
                           Linear(c=num_classes)]
    return _spec("lenet5", in_channels, resolution, layers)


def alexnet(num_classes: int = 1000, resolution: int = 227, in_channels: int = 3) -> ArchSpec:
    """AlexNet (Krizhevsky et al. 2012) as one tower (no 2-GPU grouping), 227x227 input,
    LRN after conv1/conv2, overlapping 3x3/2 max-pooling: 62.4M params, 1.14G MACs."""
    layers: list[Layer] = [
        Conv(c=96, k=11, s=4, p=0, bias=True), Act("relu"), LRN(n=5), MaxPool(k=3, s=2),
        Conv(c=256, k=5, p=2, bias=True), Act("relu"), LRN(n=5), MaxPool(k=3, s=2),
        Conv(c=384, k=3, bias=True), Act("relu"),
        Conv(c=384, k=3, bias=True), Act("relu"),
        Conv(c=256, k=3, bias=True), Act("relu"), MaxPool(k=3, s=2),
        *_fc_stack([4096, 4096], num_classes, 0.5)]
    return _spec("alexnet", in_channels, resolution, layers)


def zfnet(num_classes: int = 1000, resolution: int = 224, in_channels: int = 3) -> ArchSpec:
    """ZFNet (Zeiler & Fergus 2014, Fig. 3): 7x7/2 conv1, 5x5/2 conv2, padding chosen to
    reproduce the figure's 110-55-26-13-6 feature sizes at 224."""
    layers: list[Layer] = [
        Conv(c=96, k=7, s=2, p=1, bias=True), Act("relu"), LRN(n=5), MaxPool(k=3, s=2, p=1),
        Conv(c=256, k=5, s=2, p=0, bias=True), Act("relu"), LRN(n=5), MaxPool(k=3, s=2, p=1),
        Conv(c=384, k=3, bias=True), Act("relu"),
        Conv(c=384, k=3, bias=True), Act("relu"),
        Conv(c=256, k=3, bias=True), Act("relu"), MaxPool(k=3, s=2),
        *_fc_stack([4096, 4096], num_classes, 0.5)]
    return _spec("zfnet", in_channels, resolution, layers)


_VGG = {11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
        13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
        16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
             512, 512, 512, "M"],
        19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
             512, 512, 512, 512, "M"]}


def vgg(depth: int, bn: bool = False, num_classes: int = 1000, resolution: int = 224,
        in_channels: int = 3) -> ArchSpec:
    """VGG-11/13/16/19 (Simonyan & Zisserman 2015, configurations A/B/D/E), convs with bias,
    optional BN after each conv (torchvision's vgg*_bn). ImageNet form: adaptive 7x7 pool and
    the 4096-4096 classifier with dropout (torchvision). CIFAR form: 512 -> classes."""
    layers: list[Layer] = []
    for v in _VGG[depth]:
        if v == "M":
            layers.append(MaxPool(k=2, s=2))
        else:
            layers += [Conv(c=v, k=3, bias=True)] + ([BN()] if bn else []) + [Act("relu")]
    if resolution >= CIFAR_MAX_RESOLUTION:
        layers += [AdaptiveAvgPool(o=7), Flatten(), Linear(c=4096), Act("relu"), Dropout(0.5),
                   Linear(c=4096), Act("relu"), Dropout(0.5), Linear(c=num_classes)]
    else:
        layers += [Flatten(), Linear(c=num_classes)]
    return _spec(f"vgg{depth}{'_bn' if bn else ''}", in_channels, resolution, layers)


# --------------------------------------------------------------------------------------------
# GoogLeNet
# --------------------------------------------------------------------------------------------

#: (b1, r3, b3, r5, b5, pp) of inception 3a..5b (Szegedy et al. 2015, Table 1)
GOOGLENET_MODULES = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}


def googlenet(num_classes: int = 1000, resolution: int = 224, in_channels: int = 3,
              k5: int = 5) -> ArchSpec:
    """GoogLeNet / Inception-v1 inference graph (Szegedy et al. 2015, no auxiliary heads),
    conv-BN-ReLU units and ceil-mode pooling as torchvision. ``k5=3`` reproduces
    torchvision's model exactly (its "5x5" branch is a 3x3, a quirk kept for its weights).
    CIFAR form: a 3x3 conv to 192 channels replaces the stem (as in common CIFAR code)."""
    m = {k: Inception(*v, k=k5) for k, v in GOOGLENET_MODULES.items()}
    if resolution >= CIFAR_MAX_RESOLUTION:
        stem: list[Layer] = [ConvBNAct(c=64, k=7, s=2), MaxPool(k=3, s=2, ceil=True),
                             ConvBNAct(c=64, k=1), ConvBNAct(c=192, k=3),
                             MaxPool(k=3, s=2, ceil=True)]
    else:
        stem = [ConvBNAct(c=192, k=3)]
    pool = MaxPool(k=3, s=2, p=1) if resolution < CIFAR_MAX_RESOLUTION else None
    layers: list[Layer] = [
        *stem, m["3a"], m["3b"], pool or MaxPool(k=3, s=2, ceil=True),
        m["4a"], m["4b"], m["4c"], m["4d"], m["4e"], pool or MaxPool(k=2, s=2, ceil=True),
        m["5a"], m["5b"], Head(c=num_classes, p=0.2 if pool is None else 0.0)]
    name = "googlenet" if k5 == 5 else f"googlenet_k{k5}"
    return _spec(name, in_channels, resolution, layers)


# --------------------------------------------------------------------------------------------
# ResNets
# --------------------------------------------------------------------------------------------

RESNET_DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
                 50: ("bottle", (3, 4, 6, 3)), 101: ("bottle", (3, 4, 23, 3)),
                 152: ("bottle", (3, 8, 36, 3))}


def resnet_stem(resolution: int, width: int = 64) -> list[Layer]:
    """ImageNet stem (7x7/2 conv, 3x3/2 max-pool) or the CIFAR stem (3x3/1 conv)."""
    if resolution >= CIFAR_MAX_RESOLUTION:
        return [ConvBNAct(c=width, k=7, s=2), MaxPool(k=3, s=2, p=1)]
    return [ConvBNAct(c=width, k=3)]


def resnet_stages(block: str, depths: tuple[int, ...], widths: tuple[int, ...], *,
                  groups: int = 1, base_width: int = 64, se: float = 0.0,
                  first_stride: int = 1) -> list[Layer]:
    """Stages of basic or bottleneck blocks; stride 2 at the first block of every stage but
    the first. Bottleneck middle width = widths[i] * base_width / 64 * groups (torchvision)."""
    layers: list[Layer] = []
    for i, (n, w) in enumerate(zip(depths, widths)):
        for j in range(n):
            s = (first_stride if i == 0 else 2) if j == 0 else 1
            if block == "basic":
                layers.append(BasicBlock(c=w, s=s, se=se))
            else:
                mid = int(w * base_width / 64) * groups
                layers.append(Bottleneck(c=4 * w, m=mid, s=s, g=groups, se=se))
    return layers


def resnet(depth: int, num_classes: int = 1000, resolution: int = 224, in_channels: int = 3,
           *, groups: int = 1, base_width: int = 64, se: float = 0.0, name: str = "") -> ArchSpec:
    """ResNet-18/34/50/101/152 (He et al. 2016; torchvision's v1.5 with stride on the 3x3).
    CIFAR form: 3x3/1 stem without max-pool, the same four stages (as common CIFAR code)."""
    if depth not in RESNET_DEPTHS:
        raise ValueError(f"ResNet depth must be one of {sorted(RESNET_DEPTHS)}, got {depth}")
    block, depths = RESNET_DEPTHS[depth]
    layers = resnet_stem(resolution) + resnet_stages(
        block, depths, (64, 128, 256, 512), groups=groups, base_width=base_width, se=se)
    layers.append(Head(c=num_classes))
    return _spec(name or f"resnet{depth}", in_channels, resolution, layers)


def cifar_resnet(depth: int, num_classes: int = 10, resolution: int = 32, in_channels: int = 3,
                 shortcut: str = "A") -> ArchSpec:
    """CIFAR ResNet-20/32/44/56/110 (He et al. 2016, section 4.2): 3x3 conv(16), three stages
    of n = (depth - 2) / 6 basic blocks with 16/32/64 channels, GAP, fc. ``shortcut='A'``
    (the paper's choice for CIFAR: identity shortcuts, zero-padded channels, no extra
    parameters) or ``'B'`` (1x1 projection when the shape changes)."""
    if (depth - 2) % 6 or depth < 8:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
    if shortcut not in ("A", "B"):
        raise ValueError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
    n = (depth - 2) // 6
    layers: list[Layer] = [ConvBNAct(c=16, k=3)]
    for i, w in enumerate((16, 32, 64)):
        for j in range(n):
            layers.append(BasicBlock(c=w, s=2 if (j == 0 and i > 0) else 1, sc=shortcut))
    layers.append(Head(c=num_classes))
    suffix = "" if shortcut == "A" else "_b"
    return _spec(f"resnet{depth}{suffix}", in_channels, resolution, layers)


def wide_resnet(depth: int = 28, widen: int = 10, num_classes: int = 10, resolution: int = 32,
                in_channels: int = 3, drop: float = 0.0) -> ArchSpec:
    """Wide ResNet WRN-d-k (Zagoruyko & Komodakis 2016): 3x3 conv(16), three stages of
    (d-4)/6 pre-activation blocks with 16k/32k/64k channels, BN-ReLU, GAP, fc."""
    if (depth - 4) % 6:
        raise ValueError(f"WRN depth must be 6n+4 (e.g. 16, 28, 40), got {depth}")
    n = (depth - 4) // 6
    layers: list[Layer] = [Conv(c=16, k=3)]
    for i, w in enumerate((16 * widen, 32 * widen, 64 * widen)):
        for j in range(n):
            layers.append(PreActBlock(c=w, s=2 if (j == 0 and i > 0) else 1, drop=drop))
    layers += [BN(), Act("relu"), Head(c=num_classes)]
    return _spec(f"wrn{depth}_{widen}", in_channels, resolution, layers)


def densenet(blocks: tuple[int, ...] = (6, 12, 24, 16), growth: int = 32,
             num_classes: int = 1000, resolution: int = 224, in_channels: int = 3,
             name: str = "densenet121") -> ArchSpec:
    """DenseNet-BC (Huang et al. 2017; torchvision's densenet121): stem of 2*growth
    channels, dense blocks with bottleneck factor 4, transitions halving the channels, final
    BN-ReLU, GAP, fc. CIFAR form: 3x3/1 stem conv without BN or pooling."""
    c = 2 * growth
    if resolution >= CIFAR_MAX_RESOLUTION:
        layers: list[Layer] = [ConvBNAct(c=c, k=7, s=2), MaxPool(k=3, s=2, p=1)]
    else:
        layers = [Conv(c=c, k=3)]
    for i, n in enumerate(blocks):
        layers += [DenseLayer(g=growth)] * n
        c += n * growth
        if i < len(blocks) - 1:
            c //= 2
            layers.append(Transition(c=c))
    layers += [BN(), Act("relu"), Head(c=num_classes)]
    return _spec(name, in_channels, resolution, layers)


# --------------------------------------------------------------------------------------------
# Mobile nets
# --------------------------------------------------------------------------------------------


def mobilenet_v1(num_classes: int = 1000, resolution: int = 224, in_channels: int = 3,
                 width: float = 1.0) -> ArchSpec:
    """MobileNetV1 (Howard et al. 2017, Table 1): 569M MACs, 4.2M params at 224.
    CIFAR form: stride 1 in the stem (32 -> 2x2 before pooling)."""
    cfg = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + \
          [(1024, 2), (1024, 1)]
    s0 = 2 if resolution >= CIFAR_MAX_RESOLUTION else 1
    layers: list[Layer] = [ConvBNAct(c=make_divisible(32 * width), k=3, s=s0)]
    layers += [DWSeparable(c=make_divisible(c * width), s=s) for c, s in cfg]
    layers.append(Head(c=num_classes))
    return _spec("mobilenet_v1", in_channels, resolution, layers)


#: (expansion t, channels c, repeats n, stride s) of MobileNetV2 (Sandler et al. 2018, Table 2)
MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def mobilenet_v2(num_classes: int = 1000, resolution: int = 224, in_channels: int = 3,
                 width: float = 1.0) -> ArchSpec:
    """MobileNetV2 (Sandler et al. 2018) as torchvision: 300.8M MACs, 3,504,872 params at
    224 / 1000 classes. CIFAR form: stride 1 in the stem and the 24-channel stage."""
    cifar = resolution < CIFAR_MAX_RESOLUTION
    layers: list[Layer] = [ConvBNAct(c=make_divisible(32 * width), k=3, s=1 if cifar else 2,
                                     a="relu6")]
    for i, (t, c, n, s) in enumerate(MOBILENET_V2_STAGES):
        if cifar and i in (1,):
            s = 1
        for j in range(n):
            layers.append(MBConv(c=make_divisible(c * width), k=3, e=t, s=s if j == 0 else 1))
    last = make_divisible(1280 * max(1.0, width))
    layers += [ConvBNAct(c=last, k=1, a="relu6"), Head(c=num_classes, p=0.2)]
    return _spec("mobilenet_v2", in_channels, resolution, layers)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaselineInfo:
    """A registered baseline: its builder, the resolutions it is defined for (first is the
    default), default classes and channels, and a one-line description."""

    fn: Callable[..., ArchSpec]
    resolutions: tuple[int, ...]
    description: str
    num_classes: int = 1000
    in_channels: int = 3


def _reg() -> dict[str, BaselineInfo]:
    r: dict[str, BaselineInfo] = {
        "lenet5": BaselineInfo(lenet5, (32,), "LeNet-5 (LeCun 1998), 1x32x32", 10, 1),
        "alexnet": BaselineInfo(alexnet, (227,), "AlexNet (Krizhevsky 2012), one tower"),
        "zfnet": BaselineInfo(zfnet, (224,), "ZFNet (Zeiler & Fergus 2014)"),
    }
    for d in (11, 13, 16, 19):
        for bn in (False, True):
            r[f"vgg{d}{'_bn' if bn else ''}"] = BaselineInfo(
                lambda d=d, bn=bn, **kw: vgg(d, bn, **kw), (224, 32),
                f"VGG-{d}{' with BN' if bn else ''} (Simonyan & Zisserman 2015)")
    r["googlenet"] = BaselineInfo(googlenet, (224, 32), "GoogLeNet / Inception-v1 "
                                  "(Szegedy 2015), no aux heads")
    r["googlenet_k3"] = BaselineInfo(lambda **kw: googlenet(k5=3, **kw), (224, 32),
                                     "GoogLeNet exactly as torchvision (3x3 in the 5x5 branch)")
    for d in RESNET_DEPTHS:
        r[f"resnet{d}"] = BaselineInfo(lambda d=d, **kw: resnet(d, **kw), (224, 32),
                                       f"ResNet-{d} (He 2016, torchvision v1.5)")
    for d in (20, 32, 44, 56, 110):
        r[f"resnet{d}"] = BaselineInfo(lambda d=d, **kw: cifar_resnet(d, **kw), (32,),
                                       f"CIFAR ResNet-{d} (He 2016), option-A shortcuts", 10)
        r[f"resnet{d}_b"] = BaselineInfo(lambda d=d, **kw: cifar_resnet(d, shortcut="B", **kw),
                                         (32,), f"CIFAR ResNet-{d}, option-B projections", 10)
    r["resnext50_32x4d"] = BaselineInfo(
        lambda **kw: resnet(50, groups=32, base_width=4, name="resnext50_32x4d", **kw),
        (224, 32), "ResNeXt-50 32x4d (Xie 2017)")
    r["se_resnet50"] = BaselineInfo(
        lambda **kw: resnet(50, se=1 / 16, name="se_resnet50", **kw), (224, 32),
        "SE-ResNet-50 (Hu 2018), reduction 16")
    r["wrn28_10"] = BaselineInfo(wide_resnet, (32,), "Wide ResNet-28-10 (Zagoruyko 2016)", 10)
    r["densenet121"] = BaselineInfo(densenet, (224, 32), "DenseNet-121 (Huang 2017)")
    r["mobilenet_v1"] = BaselineInfo(mobilenet_v1, (224, 32), "MobileNetV1 (Howard 2017)")
    r["mobilenet_v2"] = BaselineInfo(mobilenet_v2, (224, 32), "MobileNetV2 (Sandler 2018)")
    return r


BASELINES: dict[str, BaselineInfo] = _reg()


def get(name: str, *, num_classes: int | None = None, resolution: int | None = None,
        in_channels: int | None = None) -> ArchSpec:
    """The spec of baseline ``name``; ``None`` arguments take the baseline's defaults."""
    info = BASELINES.get(name)
    if info is None:
        import difflib

        close = difflib.get_close_matches(name, BASELINES, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown baseline {name!r}.{hint} Known baselines: "
                         f"{', '.join(BASELINES)}")
    for arg, v in (("num_classes", num_classes), ("resolution", resolution),
                   ("in_channels", in_channels)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{arg} must be a positive integer, got {v!r}")
    return info.fn(num_classes=num_classes or info.num_classes,
                   resolution=resolution or info.resolutions[0],
                   in_channels=in_channels or info.in_channels)


__all__ = ["BASELINES", "BaselineInfo", "get", "make_divisible"]
