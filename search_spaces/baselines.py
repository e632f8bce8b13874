"""Classic hand-designed networks written as ArchSpecs: the baselines on every front.

Every builder takes ``num_classes``, ``resolution`` and ``in_channels``. Nets with an
ImageNet form and a CIFAR form switch on the resolution: ``resolution < 96`` gives the CIFAR
form (3x3 stride-1 stem, no stem pooling), described per net below. Nets with only one
form (AlexNet, ZFNet at 224/227) accept any resolution their layers fit; too small a
resolution is reported by shape inference with the failing layer.

Sources are cited per builder; channel lists are the papers' (or torchvision's, where the
docstring says so).

NSGA-Net's micro-search networks and MUXNet are here as zoo specs (they are genomes of no
space). Not here: NSGANetV2's ImageNet networks (Lu et al. 2020): the paper and its code
give their parameters and MACs, but their block-level configurations (kernel, expansion and
depth per stage, resolution) are published only as downloadable ``net.config`` files, so no
spec can be checked against them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nas import checks
from nas.spec import (
    BN,
    GAP,
    LRN,
    RBF,
    Act,
    AdaptiveAvgPool,
    Add,
    ArchSpec,
    Aux,
    AvgPool,
    BasicBlock,
    Bneck,
    Bottleneck,
    Cell,
    Concat,
    Conv,
    ConvBNAct,
    DenseLayer,
    Dropout,
    DWSeparable,
    Flatten,
    FractalBlock,
    Gate,
    Head,
    Identity,
    Inception,
    Layer,
    Linear,
    MaxPool,
    MBConv,
    MuxBlock,
    Pick,
    PreActBlock,
    PreActBottleneck,
    Scale,
    Seq,
    ShuffleV1Unit,
    ShuffleV2Unit,
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


def lenet5(num_classes: int = 10, resolution: int = 32, in_channels: int = 1,
           act: str = "tanh") -> ArchSpec:
    """LeNet-5 (LeCun et al. 1998): conv5(6)-pool-conv5(16)-pool-fc120-fc84-fc, tanh,
    average-pool subsampling: the modern simplification (C3 fully connected to S2, fixed
    subsampling, an fc classifier); 61,706 parameters at 32x32 with 10 classes.
    ``act="stanh"`` uses the paper's scaled tanh 1.7159 tanh(2x/3) (its appendix A).
    :func:`lenet5_1998` is the network as published."""
    a = Act(act)
    layers: list[Layer] = [Conv(c=6, k=5, p=0, bias=True), a, AvgPool(k=2),
                           Conv(c=16, k=5, p=0, bias=True), a, AvgPool(k=2),
                           Flatten(), Linear(c=120), a, Linear(c=84), a,
                           Linear(c=num_classes)]
    return _spec("lenet5" if act == "tanh" else f"lenet5_{act}", in_channels, resolution,
                 layers)


#: LeNet-5's C3 connection table (LeCun et al. 1998, Table I): the S2 maps each C3 map
#: reads, grouped as the paper describes them (six maps take 3 contiguous S2 maps, six take
#: 4 contiguous, three 4 discontinuous, one all six)
LENET5_C3 = (((0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1)),
             ((0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1),
              (5, 0, 1, 2)),
             ((0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5)),
             ((0, 1, 2, 3, 4, 5),))


def _subsample(channels: int) -> list[Layer]:
    """LeNet-5's trainable subsampling (S2, S4): the 2x2 average (the paper sums the four
    inputs; the factor 4 goes into the coefficient), times a trainable coefficient plus a
    trainable bias per map: a depthwise 1x1 convolution with bias."""
    return [AvgPool(k=2), Conv(c=channels, k=1, g=channels, bias=True)]


def lenet5_1998(num_classes: int = 10, resolution: int = 32,
                in_channels: int = 1) -> ArchSpec:
    """LeNet-5 as published (LeCun et al. 1998, section II.B and Fig. 2): C1 (6 maps, 5x5),
    S2 (trainable subsampling), C3 (16 maps, 5x5, over the S2 maps of Table I), S4, C5 (120
    maps, 5x5), F6 (84), every one followed by the scaled tanh 1.7159 tanh(2x/3), and the
    Euclidean RBF output layer (``rbf``, fixed +-1 prototypes). C3's table is a concat of
    grouped convolutions over picked S2 maps (``pick``), each group of a convolution one C3
    map. 60,000 trainable parameters and 340,908 connections, as the paper counts them (328,096
    MACs); the picked copies add 10,584 activations that a sparse convolution would not
    store."""
    a = Act("stanh")
    c3: list[Layer] = []
    for group in LENET5_C3:
        if len(group[0]) == 6:  # the last map reads every S2 map
            c3.append(Conv(c=1, k=5, p=0, bias=True))
            continue
        picked = Pick("-".join(str(i) for maps in group for i in maps))
        c3.append(Seq((picked, Conv(c=len(group), k=5, p=0, g=len(group), bias=True))))
    layers: list[Layer] = [Conv(c=6, k=5, p=0, bias=True), a, *_subsample(6), a,
                           Concat(tuple(c3)), a, *_subsample(16), a,
                           Conv(c=120, k=5, p=0, bias=True), a, Flatten(), Linear(c=84), a,
                           RBF(c=num_classes)]
    return _spec("lenet5_1998", in_channels, resolution, layers)


def alexnet(num_classes: int = 1000, resolution: int = 227, in_channels: int = 3,
            head: str = "fc") -> ArchSpec:
    """AlexNet (Krizhevsky et al. 2012) as one tower (no 2-GPU grouping), 227x227 input,
    LRN after conv1/conv2, overlapping 3x3/2 max-pooling: 62.4M params, 1.14G MACs.
    ``head="conv"``: the classifier as convolutions (:func:`conv_classifier`), so larger
    inputs give a score map that is averaged."""
    _check_head(head)
    layers: list[Layer] = [
        Conv(c=96, k=11, s=4, p=0, bias=True), Act("relu"), LRN(n=5), MaxPool(k=3, s=2),
        Conv(c=256, k=5, p=2, bias=True), Act("relu"), LRN(n=5), MaxPool(k=3, s=2),
        Conv(c=384, k=3, bias=True), Act("relu"),
        Conv(c=384, k=3, bias=True), Act("relu"),
        Conv(c=256, k=3, bias=True), Act("relu"), MaxPool(k=3, s=2)]
    if head == "conv":
        layers += conv_classifier(6, [4096, 4096], num_classes, 0.5)
        return _spec("alexnet_convhead", in_channels, resolution, layers)
    layers += _fc_stack([4096, 4096], num_classes, 0.5)
    return _spec("alexnet", in_channels, resolution, layers)


def zfnet(num_classes: int = 1000, resolution: int = 224, in_channels: int = 3,
          head: str = "fc") -> ArchSpec:
    """ZFNet (Zeiler & Fergus 2014, Fig. 3): 7x7/2 conv1, 5x5/2 conv2, padding chosen to
    reproduce the figure's 110-55-26-13-6 feature sizes at 224. ``head`` as in
    :func:`alexnet`."""
    _check_head(head)
    layers: list[Layer] = [
        Conv(c=96, k=7, s=2, p=1, bias=True), Act("relu"), LRN(n=5), MaxPool(k=3, s=2, p=1),
        Conv(c=256, k=5, s=2, p=0, bias=True), Act("relu"), LRN(n=5), MaxPool(k=3, s=2, p=1),
        Conv(c=384, k=3, bias=True), Act("relu"),
        Conv(c=384, k=3, bias=True), Act("relu"),
        Conv(c=256, k=3, bias=True), Act("relu"), MaxPool(k=3, s=2)]
    if head == "conv":
        layers += conv_classifier(6, [4096, 4096], num_classes, 0.5)
        return _spec("zfnet_convhead", in_channels, resolution, layers)
    layers += _fc_stack([4096, 4096], num_classes, 0.5)
    return _spec("zfnet", in_channels, resolution, layers)


_VGG = {11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
        13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
        16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
             512, 512, 512, "M"],
        19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
             512, 512, 512, 512, "M"],
        # configuration A-LRN: A with local response normalisation after the first layer
        "11_lrn": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
        # configuration C: D with the third conv of stages 3-5 a 1x1 ((channels, kernel))
        "16_c": [64, 64, "M", 128, 128, "M", 256, 256, (256, 1), "M", 512, 512, (512, 1), "M",
                 512, 512, (512, 1), "M"]}


def vgg(depth: int | str, bn: bool = False, num_classes: int = 1000, resolution: int = 224,
        in_channels: int = 3, head: str = "fc") -> ArchSpec:
    """VGG-11/13/16/19 (Simonyan & Zisserman 2015, configurations A/B/D/E; ``"11_lrn"`` and
    ``"16_c"`` are A-LRN and C of its Table 1), convs with bias, optional BN after each conv
    (torchvision's vgg*_bn). ImageNet form: adaptive 7x7 pool and the 4096-4096 classifier
    with dropout (torchvision); ``head="conv"`` turns that classifier into convolutions
    (see :func:`conv_classifier`). CIFAR form: 512 -> classes."""
    layers: list[Layer] = []
    for v in _VGG[depth]:
        if v == "M":
            layers.append(MaxPool(k=2, s=2))
        elif v == "LRN":
            layers.append(LRN(n=5))
        else:
            c, k = v if isinstance(v, tuple) else (v, 3)
            layers += [Conv(c=c, k=k, bias=True)] + ([BN()] if bn else []) + [Act("relu")]
    name = f"vgg{depth}{'_bn' if bn else ''}"
    if resolution >= CIFAR_MAX_RESOLUTION:
        if head == "conv":
            layers += conv_classifier(7, [4096, 4096], num_classes, 0.5, dropout_after=True)
            name += "_convhead"
        else:
            _check_head(head)
            layers += [AdaptiveAvgPool(o=7), Flatten(), Linear(c=4096), Act("relu"),
                       Dropout(0.5), Linear(c=4096), Act("relu"), Dropout(0.5),
                       Linear(c=num_classes)]
    else:
        _check_head(head, allowed=("fc",))
        layers += [Flatten(), Linear(c=num_classes)]
    return _spec(name, in_channels, resolution, layers)


HEADS = ("fc", "conv")


def _check_head(head: str, allowed: tuple[str, ...] = HEADS) -> None:
    if head not in allowed:
        raise ValueError(f"head={head!r} is not available here; use one of {list(allowed)}")


def conv_classifier(kernel: int, widths: list[int], num_classes: int, drop: float, *,
                    dropout_after: bool = False) -> list[Layer]:
    """A fully connected classifier written as convolutions (Long et al. 2015, FCN section
    3.1): the first fc becomes a ``kernel x kernel`` conv over the last feature map, the
    others 1x1 convs, and the class-score map is averaged. Same parameters as the fc
    classifier it replaces; at the training resolution the same MACs, and on a larger input
    it slides over the image instead of needing a fixed-size feature map."""
    out: list[Layer] = []
    for i, w in enumerate(widths):
        conv = Conv(c=w, k=kernel if i == 0 else 1, p=0, bias=True)
        out += ([conv, Act("relu"), Dropout(drop)] if dropout_after
                else [Dropout(drop), conv, Act("relu")])
    k_last = 1 if widths else kernel
    return out + [Conv(c=num_classes, k=k_last, p=0, bias=True), GAP(), Flatten()]


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


def _googlenet_aux(num_classes: int) -> Aux:
    """GoogLeNet's auxiliary classifier (Szegedy et al. 2015, section 5): 5x5/3 average
    pool (4x4 at 224), 1x1 conv to 128 with ReLU, fc 1024 with ReLU, dropout 0.7, fc, as
    torchvision's InceptionAux with the trunk's conv-BN-ReLU unit."""
    return Aux(Seq((AvgPool(k=5, s=3), ConvBNAct(c=128, k=1), Flatten(), Linear(c=1024),
                    Act("relu"), Dropout(0.7), Linear(c=num_classes))))


def googlenet(num_classes: int = 1000, resolution: int = 224, in_channels: int = 3,
              k5: int = 5, aux: bool = False) -> ArchSpec:
    """GoogLeNet / Inception-v1 (Szegedy et al. 2015), conv-BN-ReLU units and ceil-mode
    pooling as torchvision; ``aux=True`` adds the two auxiliary classifiers on 4a and 4d
    (trained with weight ``train.aux_weight``, never run at inference: they add 6.38M
    parameters and no inference MACs; "about 13M" with them). ``k5=3`` reproduces
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
    side: list[Layer] = [_googlenet_aux(num_classes)] if aux else []
    layers: list[Layer] = [
        *stem, m["3a"], m["3b"], pool or MaxPool(k=3, s=2, ceil=True),
        m["4a"], *side, m["4b"], m["4c"], m["4d"], *side, m["4e"],
        pool or MaxPool(k=2, s=2, ceil=True),
        m["5a"], m["5b"], Head(c=num_classes, p=0.2 if pool is None else 0.0)]
    name = ("googlenet" if k5 == 5 else f"googlenet_k{k5}") + ("_aux" if aux else "")
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
                  first_stride: int = 1, sc: str = "B", s1: bool = False) -> list[Layer]:
    """Stages of basic, bottleneck, pre-activation (``preact``, ``prebottle``) or plain
    (``plain``: two conv-BN-ReLU, no shortcut) blocks; stride 2 at the first block of every
    stage but the first. Bottleneck middle width = widths[i] * base_width / 64 * groups
    (torchvision). ``sc`` and ``s1`` are the blocks' shortcut and stride-placement options."""
    layers: list[Layer] = []
    for i, (n, w) in enumerate(zip(depths, widths)):
        for j in range(n):
            s = (first_stride if i == 0 else 2) if j == 0 else 1
            mid = int(w * base_width / 64) * groups
            if block == "basic":
                layers.append(BasicBlock(c=w, s=s, se=se, sc=sc))
            elif block == "plain":
                layers += [ConvBNAct(c=w, k=3, s=s), ConvBNAct(c=w, k=3)]
            elif block == "preact":
                layers.append(PreActBlock(c=w, s=s))
            elif block == "prebottle":
                layers.append(PreActBottleneck(c=4 * w, m=mid, s=s))
            else:
                layers.append(Bottleneck(c=4 * w, m=mid, s=s, g=groups, se=se, sc=sc, s1=s1))
    return layers


#: "Bag of Tricks" ResNet variants (He et al. 2019, section 4.1 and Fig. 2)
RESNET_VARIANTS = ("a", "b", "c", "d")


def resnet(depth: int, num_classes: int = 1000, resolution: int = 224, in_channels: int = 3,
           *, groups: int = 1, base_width: int = 64, se: float = 0.0, name: str = "",
           variant: str = "b") -> ArchSpec:
    """ResNet-18/34/50/101/152 (He et al. 2016; torchvision's v1.5 with stride on the 3x3).
    CIFAR form: 3x3/1 stem without max-pool, the same four stages (as common CIFAR code).

    ``variant`` (He et al. 2019, "Bag of Tricks", Fig. 2): ``"a"`` the original (stride on
    the bottleneck's first 1x1), ``"b"`` stride on the 3x3 (the default, torchvision's),
    ``"c"`` B with the 7x7 stem replaced by three 3x3 convs (32, 32, 64 channels), ``"d"`` C
    with 2x2 average pooling before the 1x1 projection shortcuts (timm's ``resnet50d``).
    The CIFAR form keeps its 3x3 stem for every variant."""
    if depth not in RESNET_DEPTHS:
        raise ValueError(f"ResNet depth must be one of {sorted(RESNET_DEPTHS)}, got {depth}")
    if variant not in RESNET_VARIANTS:
        raise ValueError(f"ResNet variant must be one of {list(RESNET_VARIANTS)}, got "
                         f"{variant!r}")
    block, depths = RESNET_DEPTHS[depth]
    if variant in ("c", "d") and resolution >= CIFAR_MAX_RESOLUTION:
        stem: list[Layer] = [ConvBNAct(c=32, k=3, s=2), ConvBNAct(c=32, k=3),
                             ConvBNAct(c=64, k=3), MaxPool(k=3, s=2, p=1)]
    else:
        stem = resnet_stem(resolution)
    layers = stem + resnet_stages(
        block, depths, (64, 128, 256, 512), groups=groups, base_width=base_width, se=se,
        sc="D" if variant == "d" else "B", s1=variant == "a")
    layers.append(Head(c=num_classes))
    return _spec(name or f"resnet{depth}{'' if variant == 'b' else variant}", in_channels,
                 resolution, layers)


def plain(depth: int, num_classes: int = 1000, resolution: int = 224,
          in_channels: int = 3) -> ArchSpec:
    """Plain-18/34 (He et al. 2016, Table 1 and Fig. 3 middle): ResNet-18/34 without the
    shortcut connections, two conv-BN-ReLU per former block, the first of a stage with
    stride 2. Same stem and head as :func:`resnet`, CIFAR form likewise."""
    if depth not in (18, 34):
        raise ValueError(f"plain net depth must be 18 or 34, got {depth}")
    layers = resnet_stem(resolution) + resnet_stages("plain", RESNET_DEPTHS[depth][1],
                                                     (64, 128, 256, 512))
    return _spec(f"plain{depth}", in_channels, resolution, layers + [Head(c=num_classes)])


#: stage depths of the pre-activation ResNets (He et al. 2016b; ResNet-200 as the paper's
#: Torch code, fb.resnet.torch: 3, 24, 36, 3 bottlenecks)
PREACT_DEPTHS = {18: ("preact", (2, 2, 2, 2)), 34: ("preact", (3, 4, 6, 3)),
                 50: ("prebottle", (3, 4, 6, 3)), 200: ("prebottle", (3, 24, 36, 3))}


def preact_resnet(depth: int, num_classes: int = 1000, resolution: int = 224,
                  in_channels: int = 3) -> ArchSpec:
    """Pre-activation ResNet-18/34/50/200 (He et al. 2016, "Identity Mappings"; ResNet-200
    in its Table 5), ImageNet layout of the paper's Torch code: 7x7/2 conv-BN-ReLU stem and
    max-pool, pre-activation basic (18, 34) or bottleneck (50, 200) blocks, a final BN-ReLU
    before pooling, fc. CIFAR form: 3x3 conv stem. ResNet-200 has 64.67M parameters and
    15.01 GMACs at 224 (the paper prints neither)."""
    if depth not in PREACT_DEPTHS:
        raise ValueError(f"pre-activation ResNet depth must be one of {sorted(PREACT_DEPTHS)}, "
                         f"got {depth}")
    kind, depths = PREACT_DEPTHS[depth]
    layers = resnet_stem(resolution) + resnet_stages(kind, depths, (64, 128, 256, 512))
    layers += [BN(), Act("relu"), Head(c=num_classes)]
    return _spec(f"preact_resnet{depth}", in_channels, resolution, layers)


def cifar_preact_resnet(depth: int, num_classes: int = 10, resolution: int = 32,
                        in_channels: int = 3) -> ArchSpec:
    """CIFAR pre-activation ResNet-110 (basic blocks, depth 6n+2, 16/32/64 channels) and
    ResNet-164 (bottlenecks, depth 9n+2, 64/128/256 output channels) of He et al. 2016,
    "Identity Mappings", Table 2/3: 3x3 conv(16), three stages, BN-ReLU, GAP, fc; 1x1
    projection shortcuts where the shape changes."""
    if depth == 164 or (depth - 2) % 9 == 0 and (depth - 2) % 6:
        n, kind, widths = (depth - 2) // 9, "prebottle", (16, 32, 64)
    elif (depth - 2) % 6 == 0:
        n, kind, widths = (depth - 2) // 6, "preact", (16, 32, 64)
    else:
        raise ValueError(f"CIFAR pre-activation ResNet depth must be 6n+2 or 9n+2, got {depth}")
    layers: list[Layer] = [Conv(c=16, k=3)]
    layers += resnet_stages(kind, (n, n, n), widths)
    layers += [BN(), Act("relu"), Head(c=num_classes)]
    return _spec(f"preact_resnet{depth}", in_channels, resolution, layers)


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


#: (kernel, expanded width, output width, SE, activation, stride) of MobileNetV3 (Howard et al.
#: 2019, Tables 1 and 2)
MOBILENET_V3 = {
    "large": ((3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2),
              (3, 72, 24, False, "relu", 1), (5, 72, 40, True, "relu", 2),
              (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
              (3, 240, 80, False, "hswish", 2), (3, 200, 80, False, "hswish", 1),
              (3, 184, 80, False, "hswish", 1), (3, 184, 80, False, "hswish", 1),
              (3, 480, 112, True, "hswish", 1), (3, 672, 112, True, "hswish", 1),
              (5, 672, 160, True, "hswish", 2), (5, 960, 160, True, "hswish", 1),
              (5, 960, 160, True, "hswish", 1)),
    "small": ((3, 16, 16, True, "relu", 2), (3, 72, 24, False, "relu", 2),
              (3, 88, 24, False, "relu", 1), (5, 96, 40, True, "hswish", 2),
              (5, 240, 40, True, "hswish", 1), (5, 240, 40, True, "hswish", 1),
              (5, 120, 48, True, "hswish", 1), (5, 144, 48, True, "hswish", 1),
              (5, 288, 96, True, "hswish", 2), (5, 576, 96, True, "hswish", 1),
              (5, 576, 96, True, "hswish", 1)),
}


def mobilenet_v3(size: str = "large", num_classes: int = 1000, resolution: int = 224,
                 in_channels: int = 3) -> ArchSpec:
    """MobileNetV3-Large / -Small (Howard et al. 2019) as torchvision: 3x3/2 hard-swish stem
    (16), the bneck table, a 1x1 conv to 6x the last width, GAP, fc 1280 (1024 for Small),
    hard-swish, dropout 0.2, fc. CIFAR form: stride 1 in the stem and the first stride-2
    bneck (8x total downsampling, as the MobileNetV2 CIFAR form)."""
    if size not in MOBILENET_V3:
        raise ValueError(f"MobileNetV3 size must be 'large' or 'small', got {size!r}")
    cifar = resolution < CIFAR_MAX_RESOLUTION
    layers: list[Layer] = [ConvBNAct(c=16, k=3, s=1 if cifar else 2, a="hswish")]
    first_stride2 = True
    for k, x, c, se, a, st in MOBILENET_V3[size]:
        if st == 2 and first_stride2:
            first_stride2 = False
            st = 1 if cifar else 2
        layers.append(Bneck(c=c, x=x, k=k, s=st, se=se, a=a))
    last = 1280 if size == "large" else 1024
    layers += [ConvBNAct(c=6 * MOBILENET_V3[size][-1][2], k=1, a="hswish"), GAP(), Flatten(),
               Linear(c=last), Act("hswish"), Dropout(0.2), Linear(c=num_classes)]
    return _spec(f"mobilenet_v3_{size}", in_channels, resolution, layers)


#: stage output widths and the final 1x1 conv width of ShuffleNet V2 (Ma et al. 2018, Table 5)
SHUFFLENET_V2 = {"x0_5": (48, 96, 192, 1024), "x1_0": (116, 232, 464, 1024),
                 "x1_5": (176, 352, 704, 1024), "x2_0": (244, 488, 976, 2048)}


def _shufflenet_stem(resolution: int) -> list[Layer]:
    if resolution >= CIFAR_MAX_RESOLUTION:
        return [ConvBNAct(c=24, k=3, s=2), MaxPool(k=3, s=2, p=1)]
    return [ConvBNAct(c=24, k=3)]


def shufflenet_v2(width: str = "x1_0", num_classes: int = 1000, resolution: int = 224,
                  in_channels: int = 3) -> ArchSpec:
    """ShuffleNet V2 (Ma et al. 2018, Table 5) as torchvision: 3x3/2 conv (24) and 3x3/2
    max-pool, stages of 4/8/4 units (the first with stride 2), 1x1 conv, GAP, fc. CIFAR
    form: 3x3/1 stem conv, no max-pool."""
    if width not in SHUFFLENET_V2:
        raise ValueError(f"ShuffleNet V2 width must be one of {list(SHUFFLENET_V2)}, got "
                         f"{width!r}")
    *stages, last = SHUFFLENET_V2[width]
    layers = _shufflenet_stem(resolution)
    for c, n in zip(stages, (4, 8, 4)):
        layers += [ShuffleV2Unit(c=c, s=2)] + [ShuffleV2Unit(c=c)] * (n - 1)
    layers += [ConvBNAct(c=last, k=1), Head(c=num_classes)]
    return _spec(f"shufflenet_v2_{width}", in_channels, resolution, layers)


#: stage output widths of ShuffleNet 1x per group count (Zhang et al. 2018, Table 1)
SHUFFLENET_V1_WIDTHS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960),
                        4: (272, 544, 1088), 8: (384, 768, 1536)}


def shufflenet_v1(groups: int = 3, num_classes: int = 1000, resolution: int = 224,
                  in_channels: int = 3) -> ArchSpec:
    """ShuffleNet 1x (Zhang et al. 2018, Table 1) with ``groups`` groups: 3x3/2 conv (24)
    and 3x3/2 max-pool, stages of 4/8/4 units (the first with stride 2; the very first
    unit's 1x1 is not grouped, as the paper says), GAP, fc without bias (the authors'
    reference code). CIFAR form: 3x3/1 stem conv, no max-pool."""
    if groups not in SHUFFLENET_V1_WIDTHS:
        raise ValueError(f"ShuffleNet groups must be one of {list(SHUFFLENET_V1_WIDTHS)}, got "
                         f"{groups}")
    layers = _shufflenet_stem(resolution)
    for i, (c, n) in enumerate(zip(SHUFFLENET_V1_WIDTHS[groups], (4, 8, 4))):
        layers += [ShuffleV1Unit(c=c, g=groups, s=2, g1=i > 0)]
        layers += [ShuffleV1Unit(c=c, g=groups)] * (n - 1)
    layers += [GAP(), Flatten(), Linear(c=num_classes, bias=False)]
    return _spec(f"shufflenet_v1_g{groups}", in_channels, resolution, layers)


def fractalnet(num_classes: int = 10, resolution: int = 32, in_channels: int = 3,
               cols: int = 3, drop_path: float = 0.15, global_path: float = 0.5,
               widths: tuple[int, ...] = (64, 128, 256, 512, 512),
               dropout: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4)) -> ArchSpec:
    """FractalNet for CIFAR (Larsson et al. 2017, section 4): B = 5 fractal blocks of
    ``cols`` = 3 columns (20 conv layers deep) with 64/128/256/512/512 channels, each followed
    by 2x2 max-pooling, dropout 0/0.1/0.2/0.3/0.4 per block, drop-path as the paper trains
    it (section 3.1): half the training passes (``global_path``) keep one column of the
    whole network, the others drop each join input with probability 0.15 (``drop_path``),
    fc. Counted this way the net has 33.7M parameters; the paper's Table 1 lists 38.6M for
    its 20-layer FractalNet without the layer-by-layer breakdown to reconcile."""
    if len(dropout) != len(widths):
        raise ValueError(f"dropout needs one rate per block ({len(widths)}), got {dropout}")
    layers: list[Layer] = []
    for c, p in zip(widths, dropout):
        layers += [FractalBlock(c=c, cols=cols, drop=drop_path, p=p, glob=global_path),
                   MaxPool(k=2, s=2)]
    layers += [Flatten(), Linear(c=num_classes)]
    return _spec("fractalnet", in_channels, resolution, layers)


# --------------------------------------------------------------------------------------------
# Inception v3 / v4 / Inception-ResNet-v2 (modules written with concat / add combinators)
# --------------------------------------------------------------------------------------------


def _u(c: int, k: int = 1, kw: int | None = None, s: int = 1, p: int | None = None) -> Layer:
    """The Inception nets' conv-BN(eps 1e-3)-ReLU unit; ``p=None`` pads to 'same'."""
    return ConvBNAct(c=c, k=k, kw=kw, s=s, p=p, eps=1e-3)


def _branch(*layers: Layer) -> Layer:
    return layers[0] if len(layers) == 1 else Seq(layers)


def _pool_proj(c: int) -> Layer:
    return Seq((AvgPool(k=3, s=1, p=1), _u(c)))


def _cat(*branches: Layer) -> Concat:
    return Concat(tuple(branches))


def _v3_a(pool: int) -> Layer:
    return _cat(_u(64), _branch(_u(48), _u(64, 5)), _branch(_u(64), _u(96, 3), _u(96, 3)),
                _pool_proj(pool))


def _v3_c(c7: int) -> Layer:
    return _cat(_u(192), _branch(_u(c7), _u(c7, 1, 7), _u(192, 7, 1)),
                _branch(_u(c7), _u(c7, 7, 1), _u(c7, 1, 7), _u(c7, 7, 1), _u(192, 1, 7)),
                _pool_proj(192))


def _v3_e() -> Layer:
    split = _cat(_u(384, 1, 3), _u(384, 3, 1))
    return _cat(_u(320), _branch(_u(384), split), _branch(_u(448), _u(384, 3), split),
                _pool_proj(192))


def inception_v3(num_classes: int = 1000, resolution: int = 299, in_channels: int = 3,
                 aux: bool = True) -> ArchSpec:
    """Inception-v3 (Szegedy et al. 2016, Table 1 and Figs. 5-7) as torchvision: the stem,
    3 x module A (5b-5d), reduction B, 4 x module C with factorised 1x7 / 7x1 convs (6b-6e),
    reduction D, 2 x module E with the split 1x3 / 3x1 outputs, GAP, dropout 0.5, fc.
    ``aux=True`` adds the auxiliary classifier on the 17x17 grid (5x5/3 average pool, 1x1
    conv 128, 5x5 conv 768, fc): trained with weight 0.4, never run at inference, so it adds
    parameters (torchvision's 27,161,264 include it) but no inference MACs."""
    layers: list[Layer] = [
        _u(32, 3, s=2, p=0), _u(32, 3, p=0), _u(64, 3), MaxPool(k=3, s=2),
        _u(80), _u(192, 3, p=0), MaxPool(k=3, s=2),
        _v3_a(32), _v3_a(64), _v3_a(64),
        _cat(_u(384, 3, s=2, p=0), _branch(_u(64), _u(96, 3), _u(96, 3, s=2, p=0)),
             MaxPool(k=3, s=2)),
        _v3_c(128), _v3_c(160), _v3_c(160), _v3_c(192)]
    if aux:
        layers.append(Aux(Seq((AvgPool(k=5, s=3), _u(128), _u(768, 5, p=0),
                               Head(c=num_classes)))))
    layers += [
        _cat(_branch(_u(192), _u(320, 3, s=2, p=0)),
             _branch(_u(192), _u(192, 1, 7), _u(192, 7, 1), _u(192, 3, s=2, p=0)),
             MaxPool(k=3, s=2)),
        _v3_e(), _v3_e(), Head(c=num_classes, p=0.5)]
    return _spec("inception_v3" if aux else "inception_v3_noaux", in_channels, resolution,
                 layers)


def _v4_stem() -> list[Layer]:
    """The stem of Inception-v4 and Inception-ResNet-v2's v4 variant (Szegedy et al. 2017,
    Fig. 3): 299 -> 35x35x384."""
    return [_u(32, 3, s=2, p=0), _u(32, 3, p=0), _u(64, 3),
            _cat(MaxPool(k=3, s=2), _u(96, 3, s=2, p=0)),
            _cat(_branch(_u(64), _u(96, 3, p=0)),
                 _branch(_u(64), _u(64, 1, 7), _u(64, 7, 1), _u(96, 3, p=0))),
            _cat(_u(192, 3, s=2, p=0), MaxPool(k=3, s=2))]


def inception_v4(num_classes: int = 1000, resolution: int = 299,
                 in_channels: int = 3) -> ArchSpec:
    """Inception-v4 (Szegedy et al. 2017, Figs. 3-9) with timm's layout: the stem, 4 x
    Inception-A, Reduction-A (k, l, m, n = 192, 224, 256, 384), 7 x Inception-B, Reduction-B,
    3 x Inception-C, GAP, dropout 0.2, fc. The pooling branches average over the padding too
    (PyTorch's default; the TensorFlow original excludes it), which changes no cost."""
    inc_a = _cat(_u(96), _branch(_u(64), _u(96, 3)), _branch(_u(64), _u(96, 3), _u(96, 3)),
                 _pool_proj(96))
    inc_b = _cat(_u(384), _branch(_u(192), _u(224, 1, 7), _u(256, 7, 1)),
                 _branch(_u(192), _u(192, 7, 1), _u(224, 1, 7), _u(224, 7, 1), _u(256, 1, 7)),
                 _pool_proj(128))
    inc_c = _cat(_u(256), _branch(_u(384), _cat(_u(256, 1, 3), _u(256, 3, 1))),
                 _branch(_u(384), _u(448, 3, 1), _u(512, 1, 3),
                         _cat(_u(256, 1, 3), _u(256, 3, 1))),
                 _pool_proj(256))
    layers = _v4_stem() + [inc_a] * 4 + [
        _cat(_u(384, 3, s=2, p=0), _branch(_u(192), _u(224, 3), _u(256, 3, s=2, p=0)),
             MaxPool(k=3, s=2))] + [inc_b] * 7 + [
        _cat(_branch(_u(192), _u(192, 3, s=2, p=0)),
             _branch(_u(256), _u(256, 1, 7), _u(320, 7, 1), _u(320, 3, s=2, p=0)),
             MaxPool(k=3, s=2))] + [inc_c] * 3 + [Head(c=num_classes, p=0.2)]
    return _spec("inception_v4", in_channels, resolution, layers)


def _residual(branches: Layer, width: int, scale: float, relu: bool = True) -> Layer:
    """Inception-ResNet unit: concat of branches -> 1x1 conv (with bias) back to ``width``
    -> scaled by ``scale`` (Szegedy et al. 2017, section 3.3) -> + input (-> ReLU)."""
    res = Add((Seq((branches, Conv(c=width, k=1, bias=True), Scale(v=scale))), Identity()))
    return Seq((res, Act("relu"))) if relu else res


def inception_resnet_v2(num_classes: int = 1000, resolution: int = 299,
                        in_channels: int = 3) -> ArchSpec:
    """Inception-ResNet-v2 (Szegedy et al. 2017, Figs. 15-19) with timm's layout: a 3x3 conv
    stem with max-pools to 35x35x192 and a mixed 5b block (320), 10 x Inception-ResNet-A
    (scale 0.17), Reduction-A (1088), 20 x Inception-ResNet-B (scale 0.10), Reduction-B
    (2080), 9 x Inception-ResNet-C (scale 0.20) and one without ReLU (scale 1), 1x1 conv
    1536, GAP, fc."""
    a = _residual(_cat(_u(32), _branch(_u(32), _u(32, 3)),
                       _branch(_u(32), _u(48, 3), _u(64, 3))), 320, 0.17)
    b = _residual(_cat(_u(192), _branch(_u(128), _u(160, 1, 7), _u(192, 7, 1))), 1088, 0.10)
    c_branches = _cat(_u(192), _branch(_u(192), _u(224, 1, 3), _u(256, 3, 1)))
    layers: list[Layer] = [
        _u(32, 3, s=2, p=0), _u(32, 3, p=0), _u(64, 3), MaxPool(k=3, s=2),
        _u(80), _u(192, 3, p=0), MaxPool(k=3, s=2),
        _cat(_u(96), _branch(_u(48), _u(64, 5)), _branch(_u(64), _u(96, 3), _u(96, 3)),
             _pool_proj(64)),
        *[a] * 10,
        _cat(_u(384, 3, s=2, p=0), _branch(_u(256), _u(256, 3), _u(384, 3, s=2, p=0)),
             MaxPool(k=3, s=2)),
        *[b] * 20,
        _cat(_branch(_u(256), _u(384, 3, s=2, p=0)), _branch(_u(256), _u(288, 3, s=2, p=0)),
             _branch(_u(256), _u(288, 3), _u(320, 3, s=2, p=0)), MaxPool(k=3, s=2)),
        *[_residual(c_branches, 2080, 0.20)] * 9,
        _residual(c_branches, 2080, 1.0, relu=False),
        _u(1536), Head(c=num_classes)]
    return _spec("inception_resnet_v2", in_channels, resolution, layers)


# --------------------------------------------------------------------------------------------
# The multi-objective NAS line: MUXNet, NSGA-Net
# --------------------------------------------------------------------------------------------

#: MUXNet-m and -l (Lu, Deb & Boddeti 2020, the authors' code human-analysis/MUXConv): per
#: block (kind, kernel(s), stride, expansion, channels, SE ratio, activation); ``ds`` is the
#: depthwise-separable first block, ``ir`` an inverted residual (mixed kernels where several
#: are given), ``mux`` the MUXConv block (half the channels processed with group-wise 2
#: channel convolutions, shuffled in 2 groups). Final 1x1 conv width last.
MUXNET = {
    "m": ((("ds", "3", 1, 1, 24, 0.25, "relu"), ("ir", "3", 2, 4, 24, 0.75, "relu"),
           *[("mux", "3", 1, 4, 24, 0.75, "relu")] * 2,
           ("ir", "3.5.7", 2, 4, 40, 0.75, "silu"), *[("mux", "3", 1, 6, 40, 0.75, "silu")] * 2,
           ("ir", "3.5.7.9", 2, 4, 80, 0.75, "silu"),
           *[("mux", "5", 1, 6, 80, 0.75, "silu")] * 2,
           ("ir", "5", 1, 6, 112, 0.75, "silu"), *[("mux", "5", 1, 6, 112, 0.75, "silu")] * 2,
           ("ir", "3.5.7.9.11", 2, 4, 160, 0.75, "silu"),
           *[("mux", "5", 1, 6, 160, 0.75, "silu")] * 3,
           ("ir", "3", 1, 6, 200, 0.75, "silu")), 1280),
    "l": ((("ds", "3", 1, 1, 24, 0.25, "relu"), ("ir", "3", 2, 6, 24, 0.75, "relu"),
           *[("mux", "5", 1, 6, 24, 0.75, "relu")] * 2,
           ("ir", "3.5.7", 2, 6, 40, 0.75, "silu"), *[("mux", "5", 1, 6, 40, 0.75, "silu")] * 3,
           ("ir", "3.5.7.9", 2, 6, 80, 0.75, "silu"),
           *[("mux", "5", 1, 6, 80, 0.75, "silu")] * 3,
           ("ir", "5", 1, 6, 120, 0.75, "silu"), *[("mux", "5", 1, 6, 120, 0.75, "silu")] * 3,
           ("ir", "3.5.7.9.11", 2, 6, 160, 0.75, "silu"),
           *[("mux", "5", 1, 6, 160, 0.75, "silu")] * 3,
           ("ir", "3", 1, 6, 200, 0.75, "silu")), 1536),
}


def muxnet(size: str = "m", num_classes: int = 1000, resolution: int = 224,
           in_channels: int = 3) -> ArchSpec:
    """MUXNet-m / -l (Lu, Deb & Boddeti 2020, "MUXConv", and the authors' code):
    3x3/2 conv (24) with swish, the blocks of :data:`MUXNET`, 1x1 conv to 1280 / 1536 with
    swish, GAP, dropout 0.2, fc. The published -m and -l use MUXConv's channel
    multiplexing (``mux`` with r=0.5) and mixed kernels, not its spatial multiplexing.
    Against the paper's ImageNet table: -m 3.35M parameters (3.4M) and 216.8M MACs (218M),
    -l 4.04M (4.0M) and 316.5M (318M); the paper's counter also counts element-wise
    multiplications such as the SE gates (1.66M / 2.25M), which MACs here leave out."""
    if size not in MUXNET:
        raise ValueError(f"MUXNet size must be one of {list(MUXNET)}, got {size!r}")
    blocks, features = MUXNET[size]
    layers: list[Layer] = [ConvBNAct(c=24, k=3, s=2, a="silu")]
    cin = 24
    for kind, k, st, e, c, se, a in blocks:
        if kind == "ds":  # dw conv-BN-act, SE, 1x1 conv-BN, + input
            squeeze = Gate(Seq((GAP(), Conv(c=int(cin * se), k=1, bias=True), Act(a),
                                Conv(c=cin, k=1, bias=True), Act("sigmoid"))))
            body = Seq((Conv(c=cin, k=int(k), s=st, g=cin), BN(), Act(a), squeeze,
                        Conv(c=c, k=1), BN()))
            layers.append(Add((body, Identity())) if st == 1 and c == cin else body)
        else:
            mux = kind == "mux"
            layers.append(MuxBlock(c=c, k=k, e=e, s=st, se=se, a=a, r=0.5 if mux else 1.0,
                                   dg=2 if mux else 1))
        cin = c
    layers += [ConvBNAct(c=features, k=1, a="silu"), Head(c=num_classes, p=0.2)]
    return _spec(f"muxnet_{size}", in_channels, resolution, layers)


#: NSGA-Net's micro-search cells (Lu et al. 2019; the authors' code ianwhale/nsga-net,
#: genotype "NSGANet"): ``cell`` operations and output nodes of the normal and the
#: reduction cell
NSGANET_NORMAL = ("skip~0-max3~0-dil5~0-max3~0-dil5~1-sep3~3-max3~1-sep5~3-sep3~1-sep3~0",
                  "2-4-5-6")
NSGANET_REDUCE = ("avg3~0-sep3~1-dil3~1-max3~0-skip~2-dil5~1-skip~2-avg3~1-dil5~1-dil3~1",
                  "3-4-5-6")


def nsganet(c: int = 34, increment: int = 4, se: bool = False, cells: int = 20,
            num_classes: int = 10, resolution: int = 32, in_channels: int = 3,
            name: str = "") -> ArchSpec:
    """NSGA-Net's CIFAR-10 network from the micro search space (Lu et al. 2019, the
    authors' published models): a 3x3 conv-BN stem of 3c channels, ``cells`` NASNet-style
    cells (``cell``) with reductions at 1/3 and 2/3 of the depth, the cell width starting at
    ``c`` and growing by ``increment`` after every cell (their "pyramid" network), SE on
    every cell output when ``se``, the CIFAR auxiliary head on the second reduction (ReLU,
    5x5/3 average pool, 1x1 conv 128, 2x2 conv 768, each with BN-ReLU, fc), GAP, fc.
    Drop-path (their training recipe) is not modelled. Against the authors' published
    models (C, increment, SE = 26, 4, yes / 34, 4, no / 36, 6, yes): 1.97M / 2.20M / 4.05M
    parameters without the auxiliary head, as they count, and 417.7M / 548.5M / 816.6M
    multiply-adds counted as their counter does (it adds BN, ReLU and pooling elements to
    the 398.6M / 527.8M / 789.4M conv and fc MACs here) against their 417M / 550M / 817M."""
    layers: list[Layer] = [Conv(c=3 * c, k=3), BN(), Concat((Identity(), Identity()))]
    p = q = 3 * c  # channels of s0 and s1 in the travelling pair
    width, after_reduction = c, False
    for i in range(cells):
        red = i in (cells // 3, 2 * cells // 3)
        ops, out = NSGANET_REDUCE if red else NSGANET_NORMAL
        layers.append(Cell(c=width, p=p, ops=ops, out=out, red=red, rp=after_reduction, se=se))
        p, q = (4 * q if red else q), len(out.split("-")) * width
        if i == 2 * cells // 3:
            layers.append(Aux(Seq((Pick(f"{p}:{p + q}"), Act("relu"),
                                   AvgPool(k=5, s=3, cip=False), Conv(c=128, k=1), BN(),
                                   Act("relu"), Conv(c=768, k=2, p=0), BN(), Act("relu"),
                                   Flatten(), Linear(c=num_classes)))))
        after_reduction = red
        width += increment
    layers += [Pick(f"{p}:{p + q}"), Head(c=num_classes)]
    return _spec(name or f"nsganet_c{c}{'_se' if se else ''}", in_channels, resolution, layers)


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
    #: classifier forms the builder accepts through ``get(..., head=)`` (empty: none)
    heads: tuple[str, ...] = ()


def _reg() -> dict[str, BaselineInfo]:
    r: dict[str, BaselineInfo] = {
        "lenet5": BaselineInfo(lenet5, (32,), "LeNet-5 (LeCun 1998), 1x32x32", 10, 1),
        "alexnet": BaselineInfo(alexnet, (227,), "AlexNet (Krizhevsky 2012), one tower",
                                heads=HEADS),
        "zfnet": BaselineInfo(zfnet, (224,), "ZFNet (Zeiler & Fergus 2014)", heads=HEADS),
    }
    for d in (11, 13, 16, 19):
        for bn in (False, True):
            r[f"vgg{d}{'_bn' if bn else ''}"] = BaselineInfo(
                lambda d=d, bn=bn, **kw: vgg(d, bn, **kw), (224, 32),
                f"VGG-{d}{' with BN' if bn else ''} (Simonyan & Zisserman 2015)", heads=HEADS)
    r["googlenet"] = BaselineInfo(googlenet, (224, 32), "GoogLeNet / Inception-v1 "
                                  "(Szegedy 2015), no aux heads")
    r["googlenet_k3"] = BaselineInfo(lambda **kw: googlenet(k5=3, **kw), (224, 32),
                                     "GoogLeNet exactly as torchvision (3x3 in the 5x5 branch)")
    r["googlenet_aux"] = BaselineInfo(lambda **kw: googlenet(aux=True, **kw), (224, 32),
                                      "GoogLeNet with its two auxiliary classifiers "
                                      "(Szegedy 2015)")
    r["googlenet_k3_aux"] = BaselineInfo(lambda **kw: googlenet(k5=3, aux=True, **kw),
                                         (224, 32), "GoogLeNet as torchvision with "
                                         "aux_logits=True")
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
    r.update(_reg_later())
    return r


def _reg_later() -> dict[str, BaselineInfo]:
    """The nets added after MobileNetV2 in the teaching order (LeNet-5 options, VGG A-LRN
    and C, ResNet variants, MobileNetV3, ShuffleNets, Inception v3/v4, Inception-ResNet)."""
    r: dict[str, BaselineInfo] = {
        "lenet5_stanh": BaselineInfo(lambda **kw: lenet5(act="stanh", **kw), (32,),
                                     "LeNet-5 with its scaled tanh 1.7159 tanh(2x/3)", 10, 1),
        "vgg11_lrn": BaselineInfo(lambda **kw: vgg("11_lrn", **kw), (224, 32),
                                  "VGG configuration A-LRN (Simonyan & Zisserman 2015)",
                                  heads=HEADS),
        "vgg16_c": BaselineInfo(lambda **kw: vgg("16_c", **kw), (224, 32),
                                "VGG configuration C, 1x1 convs (Simonyan & Zisserman 2015)",
                                heads=HEADS),
        "wide_resnet50_2": BaselineInfo(
            lambda **kw: resnet(50, base_width=128, name="wide_resnet50_2", **kw), (224, 32),
            "Wide ResNet-50-2 (Zagoruyko 2016; torchvision)"),
        "resnet50d": BaselineInfo(lambda **kw: resnet(50, variant="d", **kw), (224, 32),
                                  "ResNet-50-D (He 2019, Bag of Tricks; timm)"),
    }
    for d in (18, 34):
        r[f"plain{d}"] = BaselineInfo(lambda d=d, **kw: plain(d, **kw), (224, 32),
                                      f"plain-{d}: ResNet-{d} without shortcuts (He 2016)")
    for d in PREACT_DEPTHS:
        r[f"preact_resnet{d}"] = BaselineInfo(
            lambda d=d, **kw: preact_resnet(d, **kw), (224, 32),
            f"pre-activation ResNet-{d} (He 2016, Identity Mappings)")
    for d in (110, 164):
        r[f"preact_resnet{d}"] = BaselineInfo(
            lambda d=d, **kw: cifar_preact_resnet(d, **kw), (32,),
            f"CIFAR pre-activation ResNet-{d} (He 2016, Identity Mappings)", 10)
    for size in ("large", "small"):
        r[f"mobilenet_v3_{size}"] = BaselineInfo(
            lambda size=size, **kw: mobilenet_v3(size, **kw), (224, 32),
            f"MobileNetV3-{size.title()} (Howard 2019)")
    for w in SHUFFLENET_V2:
        r[f"shufflenet_v2_{w}"] = BaselineInfo(
            lambda w=w, **kw: shufflenet_v2(w, **kw), (224, 32),
            f"ShuffleNet V2 {w.replace('_', '.')[1:]}x (Ma 2018)")
    r["shufflenet_v1_g3"] = BaselineInfo(lambda **kw: shufflenet_v1(3, **kw), (224, 32),
                                         "ShuffleNet 1x, 3 groups (Zhang 2018)")
    r["fractalnet"] = BaselineInfo(fractalnet, (32,), "FractalNet, 20 layers, local and "
                                   "global drop-path (Larsson 2017)", 10)
    r["inception_v3"] = BaselineInfo(inception_v3, (299,),
                                     "Inception-v3 (Szegedy 2016) with the auxiliary head")
    r["inception_v3_noaux"] = BaselineInfo(lambda **kw: inception_v3(aux=False, **kw), (299,),
                                           "Inception-v3 (Szegedy 2016), no auxiliary head")
    r["inception_v4"] = BaselineInfo(inception_v4, (299,), "Inception-v4 (Szegedy 2017)")
    r["inception_resnet_v2"] = BaselineInfo(inception_resnet_v2, (299,),
                                            "Inception-ResNet-v2 (Szegedy 2017)")
    r["lenet5_1998"] = BaselineInfo(lenet5_1998, (32,), "LeNet-5 as published (LeCun 1998): "
                                    "C3 table, trainable subsampling, RBF output", 10, 1)
    r.update(_reg_moea())
    return r


def _reg_moea() -> dict[str, BaselineInfo]:
    """The multi-objective NAS line: MUXNet and NSGA-Net's published networks."""
    r = {f"muxnet_{s}": BaselineInfo(lambda s=s, **kw: muxnet(s, **kw), (224,),
                                     f"MUXNet-{s} (Lu, Deb & Boddeti 2020, MUXConv)")
         for s in MUXNET}
    for c, inc, se, fig in ((26, 4, True, "1.97M / 417M"), (34, 4, False, "2.20M / 550M"),
                            (36, 6, True, "4.05M / 817M")):
        name = f"nsganet_c{c}{'_se' if se else ''}"
        r[name] = BaselineInfo(
            lambda c=c, inc=inc, se=se, name=name, **kw: nsganet(c, inc, se, name=name, **kw),
            (32,), f"NSGA-Net micro, C={c}+{inc}{', SE' if se else ''} (Lu 2019; authors' "
            f"{fig})", 10)
    return r


BASELINES: dict[str, BaselineInfo] = _reg()


def get_info(name: str) -> BaselineInfo:
    """The zoo's entry for ``name``; ValueError (with close matches and the known names)
    when there is none."""
    if name not in BASELINES:
        raise checks.unknown("baseline", name, BASELINES, "python -m nas.cost --list")
    return BASELINES[name]


def get(name: str, *, num_classes: int | None = None, resolution: int | None = None,
        in_channels: int | None = None, head: str | None = None) -> ArchSpec:
    """The spec of baseline ``name``; ``None`` arguments take the baseline's defaults.
    ``head="conv"`` gives the convolutionalised classifier of the nets that have one
    (AlexNet, ZFNet, VGG: :func:`conv_classifier`)."""
    info = get_info(name)
    for arg, v in (("num_classes", num_classes), ("resolution", resolution),
                   ("in_channels", in_channels)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{arg} must be a positive integer, got {v!r}")
    kw = {}
    if head is not None:
        if not info.heads:
            having = [n for n, i in BASELINES.items() if i.heads]
            raise ValueError(f"baseline {name!r} has no 'head' option; nets with one: "
                             f"{', '.join(having)}")
        _check_head(head, info.heads)
        kw["head"] = head
    return info.fn(num_classes=num_classes or info.num_classes,
                   resolution=resolution or info.resolutions[0],
                   in_channels=in_channels or info.in_channels, **kw)


__all__ = ["BASELINES", "BaselineInfo", "get", "get_info", "make_divisible"]
