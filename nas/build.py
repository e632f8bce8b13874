"""Spec -> ``torch.nn.Module``.

Every block is lowered (see :mod:`nas.spec`) and each primitive becomes exactly one standard
PyTorch module, so parameters equal the cost model's count by construction. Initialisation
follows torchvision's ResNet/MobileNet convention: Kaiming-normal (fan-out) convolutions,
BN weight 1 / bias 0, the classifier N(0, 0.01) with zero bias.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from nas import spec as S


class ScaledTanh(nn.Module):
    """LeNet-5's squashing function ``A tanh(S x)``, A = 1.7159, S = 2/3 (LeCun et al. 1998,
    appendix A): f(1) = 1 and f(-1) = -1, gain near 1 around the origin."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


_ACTS = {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish, "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid, "hsigmoid": nn.Hardsigmoid, "gelu": nn.GELU, "tanh": nn.Tanh,
    "lrelu": nn.LeakyReLU, "elu": nn.ELU, "stanh": ScaledTanh,
}


class AddBranches(nn.Module):
    """Sum of branch outputs (residual connection)."""

    def __init__(self, branches: list[nn.Module]):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branches[0](x)
        for b in self.branches[1:]:
            out = out + b(x)
        return out


class ConcatBranches(AddBranches):
    """Channel concatenation of branch outputs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], dim=1)


class JoinBranches(AddBranches):
    """Mean of branch outputs with local drop-path while training (FractalNet); with global
    drop-path, the column the network drew for this pass (``column``, set by :class:`Net`)
    keeps one branch: the first when it is this join's ``col``, else the last."""

    def __init__(self, branches: list[nn.Module], drop: float, glob: float = 0.0,
                 col: int = 0):
        super().__init__(branches)
        self.drop = drop
        self.glob = glob
        self.col = col
        self.column: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.column is not None:
            return self.branches[0](x) if self.column == self.col else self.branches[-1](x)
        outs = [b(x) for b in self.branches]
        if not (self.training and self.drop > 0):
            return torch.stack(outs).mean(0)
        keep = torch.rand(len(outs)) >= self.drop
        if not keep.any():
            keep[torch.randint(len(outs), ())] = True
        kept = [o for o, k in zip(outs, keep.tolist()) if k]
        return torch.stack(kept).mean(0)


class Gate(nn.Module):
    """``x * branch(x)``: squeeze-and-excitation."""

    def __init__(self, branch: nn.Module):
        super().__init__()
        self.branch = branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.branch(x)


class Zero(nn.Module):
    """``x * 0`` (NAS-Bench-201's ``none`` operation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


class DagCell(nn.Module):
    """A :class:`nas.spec.Dag`: node ``j`` is the sum of its live incoming edges applied to
    their source nodes; zero edges are skipped; the output is the last node."""

    def __init__(self, edges: list[nn.Module | None], pairs: tuple[tuple[int, int], ...]):
        super().__init__()
        self.pairs = pairs
        self.live = [m is not None for m in edges]
        self.edges = nn.ModuleList([m if m is not None else nn.Identity() for m in edges])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x]
        total: torch.Tensor | None = None
        target = 1
        for (i, j), live, m in zip(self.pairs, self.live, self.edges):
            if j != target:
                nodes.append(total)
                total, target = None, j
            if live and nodes[i] is not None:
                y = m(nodes[i])
                total = y if total is None else total + y
        nodes.append(total)
        return nodes[-1] if nodes[-1] is not None else x.mul(0.0)


class Scale(nn.Module):
    """Multiply by a constant (residual scaling)."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.value


class ChannelShuffle(nn.Module):
    """Channel shuffle (ShuffleNet) as view -> transpose -> flatten. ``nn.ChannelShuffle``
    computes the same but its ``aten::channel_shuffle`` has no ONNX export."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        x = x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2)
        return x.reshape(n, c, h, w)


class ChannelSplit(nn.Module):
    """Part ``index`` of ``parts`` equal channel chunks (a view)."""

    def __init__(self, parts: int, index: int):
        super().__init__()
        self.parts = parts
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.chunk(self.parts, dim=1)[self.index]


class AuxHead(nn.Module):
    """Identity on the main path; in training mode also runs ``branch`` and keeps its
    output in ``self.out`` for :meth:`Net.aux_outputs` (auxiliary classifiers)."""

    def __init__(self, branch: nn.Module):
        super().__init__()
        self.branch = branch
        self.out: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.out = self.branch(x) if self.training else None
        return x


class Pick(nn.Module):
    """Channels by index: a slice (a view) or a gather (:class:`nas.spec.Pick`)."""

    def __init__(self, layer: S.Pick, channels: int):
        super().__init__()
        items = layer.items
        self.slice: slice | None = None
        if layer.view:
            item = items[0]
            self.slice = slice(item, item + 1) if isinstance(item, int) else slice(*item)
        else:
            self.register_buffer("index", torch.tensor(layer.indices(channels)),
                                 persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.slice is not None:
            return x[:, self.slice]
        return x.index_select(1, self.index)


class RBFOutput(nn.Module):
    """LeNet-5's Euclidean RBF units (:class:`nas.spec.RBF`), returning the negated
    penalties -sum_j (x_j - w_ij)^2 = 2 x.w_i - |x|^2 - |w_i|^2, with the dot products as
    one matrix product (the layer's MACs). The +-1 prototypes are set by
    :func:`init_weights`; fixed ones are a buffer."""

    def __init__(self, features: int, units: int, learn: bool):
        super().__init__()
        w = torch.ones(units, features)
        if learn:
            self.prototypes = nn.Parameter(w)
        else:
            self.register_buffer("prototypes", w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.prototypes
        return 2 * F.linear(x, w) - (x * x).sum(1, keepdim=True) - (w * w).sum(1)


class PadShortcut(nn.Module):
    """Option-A shortcut (He et al. 2016): stride-subsample and zero-pad channels."""

    def __init__(self, extra_channels: int, stride: int):
        super().__init__()
        self.extra = extra_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra:
            # Pad half of the new channels before and half after, as the paper's CIFAR code.
            before = self.extra // 2
            x = F.pad(x, (0, 0, 0, 0, before, self.extra - before))
        return x


class Net(nn.Module):
    """A built spec; ``layers[i]`` is the module of ``spec.layers[i]``.

    With global drop-path joins (FractalNet), each training pass draws, with the largest
    ``glob`` of its joins, one column among those the joins name and tells every join."""

    def __init__(self, spec: S.ArchSpec, layers: list[nn.Module]):
        super().__init__()
        self.spec = spec
        self.layers = nn.Sequential(*layers)
        self._joins = [m for m in self.layers.modules()
                       if isinstance(m, JoinBranches) and m.glob > 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._joins:
            self._draw_columns()
        return self.layers(x)

    def _draw_columns(self) -> None:
        column = None
        if self.training and torch.rand(()) < max(j.glob for j in self._joins):
            column = int(torch.randint(max(j.col for j in self._joins) + 1, ()))
        for j in self._joins:
            j.column = column

    def aux_outputs(self) -> list[torch.Tensor]:
        """Outputs of the auxiliary heads from the last training-mode forward pass (empty in
        eval mode or for nets without ``aux`` layers)."""
        return [m.out for m in self.modules() if isinstance(m, AuxHead) and m.out is not None]


def module(layer: S.Layer, shape: S.Shape) -> nn.Module:
    """The module for one layer spec given its input shape."""
    t = type(layer)
    if t is S.Conv:
        return nn.Conv2d(shape[0], layer.c, layer.kernel, stride=layer.s,
                         padding=layer.padding_hw, dilation=layer.d, groups=layer.g, bias=layer.bias)
    if t is S.BN:
        return nn.BatchNorm2d(shape[0], eps=layer.eps)
    if t is S.Act:
        if layer.fn == "prelu":
            return nn.PReLU(shape[0])  # channel-wise slopes (He et al. 2015)
        return _ACTS[layer.fn]()
    if t is S.ChannelShuffle:
        return ChannelShuffle(layer.g)
    if t is S.ChannelSplit:
        return ChannelSplit(layer.n, layer.i)
    if t is S.Pick:
        return Pick(layer, shape[0])
    if t is S.SpaceToDepth:
        return nn.PixelUnshuffle(layer.r)
    if t is S.DepthToSpace:
        return nn.PixelShuffle(layer.r)
    if t is S.RBF:
        return RBFOutput(shape[0], layer.c, layer.learn)
    if t is S.Scale:
        return Scale(layer.v)
    if t is S.Aux:
        return AuxHead(module(layer.branch, shape))
    if t is S.MaxPool:
        return nn.MaxPool2d(layer.k, layer.stride, layer.p, ceil_mode=layer.ceil)
    if t is S.AvgPool:
        return nn.AvgPool2d(layer.k, layer.stride, layer.p, ceil_mode=layer.ceil,
                            count_include_pad=layer.cip)
    if t is S.GAP:
        return nn.AdaptiveAvgPool2d(1)
    if t is S.AdaptiveAvgPool:
        return nn.AdaptiveAvgPool2d(layer.o)
    if t is S.LRN:
        return nn.LocalResponseNorm(layer.n, alpha=layer.alpha, beta=layer.beta, k=layer.kk)
    if t is S.Dropout:
        return nn.Dropout(layer.p)
    if t is S.Flatten:
        return nn.Flatten(1)
    if t is S.Linear:
        return nn.Linear(shape[0], layer.c, bias=layer.bias)
    if t is S.Identity:
        return nn.Identity()
    if t is S.Zero:
        return Zero()
    if t is S.PadShortcut:
        return PadShortcut(layer.c - shape[0], layer.s)
    if t is S.Seq:
        mods = []
        for sub in layer.layers:
            mods.append(module(sub, shape))
            shape = S.out_shape(sub, shape)
        return nn.Sequential(*mods)
    if t is S.Add:
        return AddBranches([module(b, shape) for b in layer.branches])
    if t is S.Concat:
        return ConcatBranches([module(b, shape) for b in layer.branches])
    if t is S.Gate:
        return Gate(module(layer.branch, shape))
    if t is S.Dag:
        return DagCell([None if type(e) is S.Zero else module(e, shape) for e in layer.edges],
                       layer.pairs)
    if t is S.Join:
        return JoinBranches([module(b, shape) for b in layer.branches], layer.drop,
                            layer.glob, layer.col)
    if isinstance(layer, S.Block):
        return module(S.lowered(layer, shape), shape)
    raise S.SpecError(f"no module for layer {layer!r}")


def init_weights(net: nn.Module) -> None:
    """torchvision-style initialisation (see the module docstring). Only the final
    classifier gets N(0, 0.01): hidden fully connected layers (LeNet, AlexNet, VGG) keep
    PyTorch's fan-in default, since three stacked N(0, 0.01) layers start with a vanishing
    signal and barely train in a short proxy run. RBF output units are the classifier where
    present: their prototypes get random +-1 codes (LeCun et al. 1998, section II.B)."""
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    rbfs = [m for m in net.modules() if isinstance(m, RBFOutput)]
    classifier = None if rbfs or not linears else linears[-1]
    for m in rbfs:
        with torch.no_grad():
            m.prototypes.copy_(torch.randint(0, 2, m.prototypes.shape) * 2.0 - 1.0)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if m is not classifier:
                m.reset_parameters()
                continue
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build(spec: S.ArchSpec, *, seed: int | None = None) -> Net:
    """Build ``spec`` into a :class:`Net`; ``seed`` makes the initial weights reproducible."""
    if not isinstance(spec, S.ArchSpec):
        raise TypeError(f"build() takes an ArchSpec, got {type(spec).__name__}; parse JSON "
                        f"with ArchSpec.from_json or look a name up with "
                        f"search_spaces.baselines.get")
    shapes = [spec.input] + spec.shapes()
    layers = [module(layer, shapes[i]) for i, layer in enumerate(spec.layers)]
    net = Net(spec, layers)
    if seed is None:
        init_weights(net)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            init_weights(net)
    return net


_INPLACE_ACTS = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Hardswish, nn.SiLU, nn.LeakyReLU, nn.ELU)


@contextmanager
def bn_folded(net: nn.Module) -> Iterator[nn.Module]:
    """``net`` for inference, with each BatchNorm that directly follows a convolution in a
    ``Sequential`` folded into it (PyTorch's ``fuse_conv_bn_eval``, with the BN's running
    statistics; the BN replaced by an identity) and each activation that directly follows
    such a convolution running in place; everything is put back on exit. Inside, ``net``
    is in eval mode and its outputs equal the unfolded net's to float rounding (~1e-6);
    it is for evaluation only (the folded layers are copies: nothing learned or
    recalibrated inside survives)."""
    undo: list[tuple[nn.Module, str, nn.Module]] = []  # (container, name, original)
    acts: list[nn.Module] = []  # activations switched to in place
    training = net.training
    net.eval()
    try:
        for seq in list(net.modules()):
            if not isinstance(seq, nn.Sequential):
                continue
            names = list(seq._modules)
            prev_conv = False
            for i, name in enumerate(names):
                m = seq._modules[name]
                if isinstance(m, nn.BatchNorm2d) and prev_conv and m.track_running_stats:
                    conv_name = names[i - 1]
                    conv = seq._modules[conv_name]
                    undo += [(seq, conv_name, conv), (seq, name, m)]
                    seq._modules[conv_name] = fuse_conv_bn_eval(conv, m)
                    seq._modules[name] = nn.Identity()
                    continue  # the convolution's output still feeds the next module alone
                if isinstance(m, _INPLACE_ACTS) and prev_conv and not m.inplace:
                    acts.append(m)
                    m.inplace = True
                prev_conv = isinstance(m, nn.Conv2d)
        yield net
    finally:
        for seq, name, original in reversed(undo):
            seq._modules[name] = original
        for m in acts:
            m.inplace = False
        net.train(training)
