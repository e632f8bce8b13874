"""Weight-sharing supernets: train once, score any subnet with inherited weights.

A supernet holds the weights of the largest network of a space; every other network of the
space is a part of it (Cai et al., "Once-for-All", ICLR 2020; Lu et al., NSGANetV2, ECCV
2020). It is derived from the space object itself: the supernet asks the space to decode
genomes (``parts`` of the mobile and residual spaces) and reads the blocks it gets, so no
layout is written twice.

``mobile`` (:class:`MobileSupernet`), per block slot of each stage:

* **depth**: a stage of depth ``d`` runs its first ``d`` slots;
* **kernel**: one depthwise kernel of the largest size; a smaller kernel is the centre of
  the next larger one times a learned ``k^2 x k^2`` matrix per block and size step
  (Once-for-All's kernel transformation, identity at initialisation);
* **expansion**: the first ``round(C_in * e)`` hidden channels (expand conv outputs,
  depthwise channels, SE and project inputs). :meth:`MobileSupernet.sort_channels`
  reorders the hidden channels by the L1 norm of their project weights (Once-for-All's
  importance), so the channels that small subnets share are the important ones; training
  calls it at the start of every epoch after the first, and it leaves every subnet with
  the largest expansion unchanged;
* **SE**: on or off per stage (the squeeze width, ``max(1, int(C_in * se))``, is the first
  channels of the largest);
* **resolution**: the weights do not depend on the input size; training feeds each sampled
  subnet its own resolution.

``residual`` (:class:`ResidualSupernet`), one supernet per block type (basic or the
ungrouped bottleneck): elastic depth (the first blocks of a stage) and width per stage (the
first channels of every conv, BN, SE and of the classifier's input), SE on or off, the
resolution; option-A (zero-pad) and option-B (projection) shortcuts as the subnet has them.

The **mobile width multiplier is fixed per supernet** (``width``, default the largest choice of
the space config): it changes every stage's output channels, residual shapes and the trunk,
so Once-for-All too trains one supernet per width. A supernet's space is the space config
with ``width_mults=[width]`` (a residual one's, ``blocks=[block]``); a search scored by it
uses that config.

:meth:`Supernet.extract` returns a subnet's ``(ArchSpec, state_dict)``: ``nas.build``
of that spec loaded with that state_dict computes what the supernet computes for the subnet
(tested to 1e-5 on random genomes, in eval mode after the same BN calibration). The
training app (``python -m nas.supernet +space=mobile``) and the evaluator
(``evaluator=supernet``) live further down.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from nas import build as B
from nas import checks
from nas import spec as S
from nas.safe_load import read_checkpoint

# --------------------------------------------------------------------------------------------
# Elastic building blocks
# --------------------------------------------------------------------------------------------


class ElasticBN(nn.BatchNorm2d):
    """BatchNorm over the first ``x.shape[1]`` of its channels (running statistics updated
    in place on that slice, with :class:`torch.nn.BatchNorm2d`'s own momentum rules)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                      else self.momentum)
        use_batch = self.training or self.running_mean is None
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c],
                            self.bias[:c], use_batch, factor, self.eps)


def _bn_tensors(bn: nn.BatchNorm2d, idx: slice | torch.Tensor) -> dict[str, torch.Tensor]:
    return {"weight": bn.weight[idx], "bias": bn.bias[idx], "running_mean": bn.running_mean[idx],
            "running_var": bn.running_var[idx], "num_batches_tracked": bn.num_batches_tracked}


class Elastic(nn.Module):
    """A supernet part that runs any layer of a family: ``forward(x, layer)``, and
    ``subnet_tensors(layer, cin)`` lists the tensors of every Conv2d / BatchNorm2d / Linear
    of ``nas.build`` of ``layer`` on ``cin`` input channels, in ``module.modules()`` order."""


class ElasticMBConv(Elastic):
    """One block slot of a stage: the largest MBConv the slot can hold, run as any
    :class:`nas.spec.MBConv` of the same input/output channels and stride (see the module
    docstring). ``forward(x, block)`` computes what ``nas.build`` of ``block`` computes."""

    def __init__(self, cin: int, block: S.MBConv, *, kernels: Iterable[int], hidden: int,
                 squeeze: int) -> None:
        super().__init__()
        self.cin, self.c, self.s, self.a = cin, block.c, block.s, block.a
        self.kernels = tuple(sorted(set(int(k) for k in kernels)))
        kmax = self.kernels[-1]
        self.hidden, self.squeeze = hidden, squeeze
        self.expand = nn.Conv2d(cin, hidden, 1, bias=False)
        self.expand_bn = ElasticBN(hidden)
        self.dw = nn.Conv2d(hidden, hidden, kmax, block.s, kmax // 2, groups=hidden, bias=False)
        self.dw_bn = ElasticBN(hidden)
        self.se_reduce = nn.Conv2d(hidden, squeeze, 1) if squeeze else None
        self.se_expand = nn.Conv2d(squeeze, hidden, 1) if squeeze else None
        self.project = nn.Conv2d(hidden, block.c, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(block.c)
        self.act = B.module(S.Act(block.a), (hidden, 1, 1))
        # Once-for-All's kernel transformation: one k^2 x k^2 matrix per size step.
        self.kernel_maps = nn.ParameterDict({
            f"{big}to{small}": nn.Parameter(torch.eye(small * small))
            for big, small in zip(self.kernels[::-1], self.kernels[-2::-1])})

    # Sizes of a subnet block ------------------------------------------------------------------
    def check(self, block: S.MBConv) -> tuple[int, int]:
        """(hidden, squeeze) of ``block`` in this slot; ValueError if it does not fit."""
        hidden = int(round(self.cin * block.e))
        squeeze = max(1, int(self.cin * block.se)) if block.se > 0 else 0
        if (block.c, block.s, block.a) != (self.c, self.s, self.a) or block.k not in \
                self.kernels or hidden > self.hidden or squeeze > self.squeeze:
            raise ValueError(f"block {block.token()} does not fit the supernet slot "
                             f"(input {self.cin}, output {self.c}, stride {self.s}, kernels "
                             f"{list(self.kernels)}, up to {self.hidden} hidden and "
                             f"{self.squeeze} SE channels)")
        return hidden, squeeze

    def dw_weight(self, k: int, hidden: int) -> torch.Tensor:
        """Depthwise kernel of size ``k`` for the first ``hidden`` channels."""
        w = self.dw.weight[:hidden]
        size = self.kernels[-1]
        for small in reversed([k2 for k2 in self.kernels if k <= k2 < size]):
            start = (size - small) // 2
            w = w[:, :, start:start + small, start:start + small]
            w = F.linear(w.reshape(hidden, small * small),
                         self.kernel_maps[f"{size}to{small}"]).reshape(hidden, 1, small, small)
            size = small
        return w

    def forward(self, x: torch.Tensor, block: S.MBConv) -> torch.Tensor:
        hidden, squeeze = self.check(block)
        out = x
        if hidden != self.cin:  # MBConv.lower: no expand conv when e maps C_in to itself
            out = self.act(self.expand_bn(F.conv2d(x, self.expand.weight[:hidden])))
        out = F.conv2d(out, self.dw_weight(block.k, hidden), None, self.s, block.k // 2, 1,
                       hidden)
        out = self.act(self.dw_bn(out))
        if squeeze:
            g = F.adaptive_avg_pool2d(out, 1)
            g = F.relu(F.conv2d(g, self.se_reduce.weight[:squeeze, :hidden],
                                self.se_reduce.bias[:squeeze]))
            g = torch.sigmoid(F.conv2d(g, self.se_expand.weight[:hidden, :squeeze],
                                       self.se_expand.bias[:hidden]))
            out = out * g
        out = self.project_bn(F.conv2d(out, self.project.weight[:, :hidden]))
        if self.s == 1 and self.cin == self.c:
            out = out + x
        return out

    def subnet_tensors(self, block: S.MBConv,
                       cin: int | None = None) -> list[tuple[type, dict[str, torch.Tensor]]]:
        """The tensors of every Conv2d / BatchNorm2d of ``nas.build`` of ``block``, in the
        order ``module.modules()`` visits them (the order ``MBConv.lower`` lays them out)."""
        hidden, squeeze = self.check(block)
        h = slice(0, hidden)
        out: list[tuple[type, dict[str, torch.Tensor]]] = []
        if hidden != self.cin:
            out += [(nn.Conv2d, {"weight": self.expand.weight[h]}),
                    (nn.BatchNorm2d, _bn_tensors(self.expand_bn, h))]
        out += [(nn.Conv2d, {"weight": self.dw_weight(block.k, hidden)}),
                (nn.BatchNorm2d, _bn_tensors(self.dw_bn, h))]
        if squeeze:
            out += [(nn.Conv2d, {"weight": self.se_reduce.weight[:squeeze, h],
                                 "bias": self.se_reduce.bias[:squeeze]}),
                    (nn.Conv2d, {"weight": self.se_expand.weight[h, :squeeze],
                                 "bias": self.se_expand.bias[h]})]
        out += [(nn.Conv2d, {"weight": self.project.weight[:, h]}),
                (nn.BatchNorm2d, _bn_tensors(self.project_bn, slice(None)))]
        return out

    def sortable(self, expansions: Iterable[float]) -> bool:
        # A subnet without the expand conv feeds the block input straight to the depthwise
        # conv, in the input's channel order, which a permutation would break.
        return all(int(round(self.cin * e)) != self.cin for e in expansions)

    @torch.no_grad()
    def sort_channels(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Reorder the hidden channels by importance (L1 norm of their project weights,
        descending); the largest subnet computes the same function afterwards. Optimiser
        state of the permuted parameters (momentum, Adam moments) is permuted alike."""
        order = torch.argsort(self.project.weight.abs().sum(dim=(0, 2, 3)), descending=True)
        moves = [(self.expand.weight, 0), (self.dw.weight, 0), (self.project.weight, 1)]
        for bn in (self.expand_bn, self.dw_bn):
            moves += [(bn.weight, 0), (bn.bias, 0), (bn.running_mean, 0), (bn.running_var, 0)]
        if self.squeeze:
            moves += [(self.se_reduce.weight, 1), (self.se_expand.weight, 0),
                      (self.se_expand.bias, 0)]
        for t, dim in moves:
            t.copy_(t.index_select(dim, order))
            if optimizer is not None and isinstance(t, nn.Parameter):
                for v in optimizer.state.get(t, {}).values():
                    if isinstance(v, torch.Tensor) and v.shape == t.shape:
                        v.copy_(v.index_select(dim, order))


def _modules_with_tensors(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]


# --------------------------------------------------------------------------------------------
# The mobile supernet
# --------------------------------------------------------------------------------------------


def extreme_genome(space: Any, largest: bool) -> tuple[int, ...]:
    """The canonical genome taking every gene's largest (or smallest) choice."""
    pick = max if largest else min
    return space.canonical([g.choices.index(pick(g.choices)) for g in space.genes])


class Supernet(nn.Module):
    """What every supernet shares: the space restricted to what the supernet holds
    (``self.space``), the fixed front and back layers and one slot per block of each stage
    of the largest network; running and extracting subnets. Subclasses build the slots
    (:meth:`_slot`) and, where the back is elastic, the back (:meth:`_back_module`)."""

    space_name: ClassVar[str] = ""

    def _setup(self, space: Any, restrict: Mapping[str, Any]) -> None:
        from search_spaces import get_space

        if getattr(space, "name", None) != self.space_name:
            raise ValueError(f"{type(self).__name__} needs a {self.space_name} space, got "
                             f"{getattr(space, 'name', type(space).__name__)!r}")
        self.restrict = dict(restrict)
        self.space = get_space(space.name, **{**space.config(), **restrict})
        sp = self.space
        big = sp.values(extreme_genome(sp, largest=True))
        front, stages, back = sp.parts(big)
        # The weights must not depend on the resolution: every resolution choice must give
        # the same trunk and stage layout (the space config keeps all choices one stem kind).
        for r in sp.resolutions:
            if sp.parts({**big, "resolution": r}) != (front, stages, back):
                raise ValueError(f"{sp.name} space config: resolution {r} changes the trunk "
                                 f"or the stages; a supernet needs one layout for every "
                                 f"resolution choice")
        self.front_layers, self.back_layers = tuple(front), tuple(back)
        res = max(sp.resolutions)
        shape: S.Shape = (sp.in_channels, res, res)
        self.front = nn.ModuleList()
        for layer in front:
            self.front.append(B.module(layer, shape))
            shape = S.out_shape(layer, shape)
        self.stages = nn.ModuleList()
        for i, blocks in enumerate(stages):
            slots = nn.ModuleList()
            for j, b in enumerate(blocks):
                slots.append(self._slot(shape[0], b, i, j))
                shape = S.out_shape(b, shape)
            self.stages.append(slots)
        self.back = nn.ModuleList()
        for layer in back:
            self.back.append(self._back_module(layer, shape))
            shape = S.out_shape(layer, shape)
        B.init_weights(self)

    def _slot(self, cin: int, block: S.Layer, stage: int, index: int) -> Elastic:
        raise NotImplementedError

    def _back_module(self, layer: S.Layer, shape: S.Shape) -> nn.Module:
        return B.module(layer, shape)

    # Subnets ----------------------------------------------------------------------------------
    def blocks(self, genome: Any) -> list[list[S.Layer]]:
        """The blocks of each stage of a genome of :attr:`space`."""
        values = self.space.values(self._check_genome(genome))
        front, stages, back = self.space.parts(values)
        if (tuple(front), tuple(back)) != (self.front_layers, self.back_layers):
            raise ValueError("genome decodes to another trunk than this supernet's")
        return stages

    def _check_genome(self, genome: Any) -> tuple[int, ...]:
        return self.space.canonical(genome)

    def largest(self) -> tuple[int, ...]:
        return extreme_genome(self.space, largest=True)

    def smallest(self) -> tuple[int, ...]:
        return extreme_genome(self.space, largest=False)

    def _parts(self, genome: Any) -> list[tuple[nn.Module, S.Layer]]:
        stages = self.blocks(genome)
        out = list(zip(self.front, self.front_layers))
        for slots, blocks in zip(self.stages, stages):
            out += list(zip(slots, blocks))
        return out + list(zip(self.back, self.back_layers))

    def forward(self, x: torch.Tensor, genome: Any) -> torch.Tensor:
        for m, layer in self._parts(genome):
            x = m(x, layer) if isinstance(m, Elastic) else m(x)
        return x

    @torch.no_grad()
    def extract(self, genome: Any) -> tuple[S.ArchSpec, dict[str, torch.Tensor]]:
        """``(spec, state_dict)`` of a subnet: ``nas.build(spec)`` loaded with the state
        dict computes what ``self(x, genome)`` computes (in eval mode)."""
        genome = self._check_genome(genome)
        spec = self.space.decode(genome)
        net = B.build(spec)
        parts = self._parts(genome)
        mods = list(net.layers)
        if len(parts) != len(mods):
            raise RuntimeError("the subnet's layers do not match the supernet's parts")
        shapes = [spec.input] + spec.shapes()
        for i, ((src, layer), dst) in enumerate(zip(parts, mods)):
            if not isinstance(src, Elastic):
                dst.load_state_dict(src.state_dict())
                continue
            targets = _modules_with_tensors(dst)
            tensors = src.subnet_tensors(layer, shapes[i][0])
            if [type(m) for m in targets] != [t for t, _ in tensors]:
                raise RuntimeError(f"nas.build of {layer.token()} no longer has the layers "
                                   f"{type(src).__name__}.subnet_tensors lists; update both")
            for m, (_, named) in zip(targets, tensors):
                for name, t in named.items():
                    getattr(m, name).copy_(t)
        return spec, {k: v.clone() for k, v in net.state_dict().items()}

    def sort_channels(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Reorder shared channels by importance where the supernet supports it."""


class MobileSupernet(Supernet):
    """Supernet of a :class:`search_spaces.mobile.MobileSpace` at one width multiplier.

    Args:
        space: the space (its config: stages, kernel/expansion/SE/resolution choices).
        width: the width multiplier, one of ``space.width_mults``; None: the largest.

    ``self.space`` is the space restricted to that width (``width_mults=[width]``): its
    genomes are the subnets. ``forward(x, genome)`` runs one subnet.
    """

    space_name = "mobile"

    def __init__(self, space: Any, width: float | None = None) -> None:
        super().__init__()
        widths = tuple(getattr(space, "width_mults", ()))
        if width is None and widths:
            width = max(widths)
        if widths and width not in widths:
            raise ValueError(f"supernet width={width!r} is not a width multiplier choice of "
                             f"the space ({', '.join(f'{w:g}' for w in widths)}); pass one "
                             f"of them")
        self.width = None if width is None else float(width)
        self._setup(space, {"width_mults": [self.width]})

    def _slot(self, cin: int, block: S.Layer, stage: int, index: int) -> Elastic:
        sp = self.space
        return ElasticMBConv(cin, block, kernels=sp.kernels,
                             hidden=max(int(round(cin * e)) for e in sp.expansions),
                             squeeze=max([max(1, int(cin * r)) for r in sp.se if r > 0],
                                         default=0))

    def _check_genome(self, genome: Any) -> tuple[int, ...]:
        try:
            return self.space.canonical(genome)
        except ValueError as e:
            if "'width'" in str(e):
                raise ValueError(f"{e}: this supernet has width multiplier {self.width:g} "
                                 f"only (one supernet per width)") from None
            raise

    def sort_channels(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """:meth:`ElasticMBConv.sort_channels` on every slot that allows it."""
        for slots in self.stages:
            for slot in slots:
                if slot.sortable(self.space.expansions):
                    slot.sort_channels(optimizer)


class ElasticResBlock(Elastic):
    """One block slot of a residual stage: the widest basic or bottleneck block the slot
    holds, run as any block of that type with at most as many input, middle and output
    channels (the first channels of every weight). ``forward(x, block)`` computes what
    ``nas.build`` of ``block`` computes on ``x``'s channels."""

    def __init__(self, cin: int, block: S.Layer, *, squeeze: int, project: bool) -> None:
        super().__init__()
        self.basic = isinstance(block, S.BasicBlock)
        if not self.basic and block.g != 1:
            raise ValueError(f"grouped bottlenecks ({block.token()}) have no supernet; use "
                             f"the groups choice [1, 64]")
        c, m = block.c, (block.c if self.basic else block.m)
        self.cin, self.c, self.m, self.s, self.sc = cin, c, m, block.s, block.sc
        self.squeeze = squeeze
        dims = {"cin": cin, "mid": m, "c": c}
        # (output dim, input dim, kernel, stride) of each conv of BasicBlock / Bottleneck.lower
        self.plan = ((("c", "cin", 3, block.s), ("c", "c", 3, 1)) if self.basic else
                     (("mid", "cin", 1, 1), ("mid", "mid", 3, block.s), ("c", "mid", 1, 1)))
        self.convs = nn.ModuleList(nn.Conv2d(dims[i], dims[o], k, bias=False)
                                   for o, i, k, _ in self.plan)
        self.bns = nn.ModuleList(ElasticBN(dims[o]) for o, _, _, _ in self.plan)
        self.se_reduce = nn.Conv2d(c, squeeze, 1) if squeeze else None
        self.se_expand = nn.Conv2d(squeeze, c, 1) if squeeze else None
        self.proj = nn.Conv2d(cin, c, 1, bias=False) if project else None
        self.proj_bn = ElasticBN(c) if project else None

    def sizes(self, block: S.Layer, cin: int) -> dict[str, int]:
        c, m = block.c, (block.c if self.basic else block.m)
        d = {"cin": cin, "mid": m, "c": c,
             "squeeze": max(1, int(c * block.se)) if block.se > 0 else 0}
        fits = (isinstance(block, S.BasicBlock) == self.basic and block.s == self.s
                and block.sc == self.sc and getattr(block, "g", 1) == 1 and cin <= self.cin
                and m <= self.m and c <= self.c and d["squeeze"] <= self.squeeze
                and (self._identity(block, cin) or block.sc == "A" or self.proj is not None))
        if not fits:
            raise ValueError(f"block {block.token()} on {cin} channels does not fit the "
                             f"supernet slot (up to {self.cin} in, {self.m} middle, {self.c} "
                             f"out, stride {self.s})")
        return d

    def _identity(self, block: S.Layer, cin: int) -> bool:
        return block.s == 1 and cin == block.c

    def forward(self, x: torch.Tensor, block: S.Layer) -> torch.Tensor:
        d = self.sizes(block, x.shape[1])
        out = x
        last = len(self.plan) - 1
        for n, ((o, i, k, s), conv, bn) in enumerate(zip(self.plan, self.convs, self.bns)):
            out = bn(F.conv2d(out, conv.weight[:d[o], :d[i]], None, s, k // 2))
            if n < last:
                out = F.relu(out)
        if d["squeeze"]:
            q, c = d["squeeze"], d["c"]
            g = F.adaptive_avg_pool2d(out, 1)
            g = F.relu(F.conv2d(g, self.se_reduce.weight[:q, :c], self.se_reduce.bias[:q]))
            g = torch.sigmoid(F.conv2d(g, self.se_expand.weight[:c, :q],
                                       self.se_expand.bias[:c]))
            out = out * g
        if self._identity(block, d["cin"]):
            short = x
        elif block.sc == "A":
            short = B.PadShortcut(d["c"] - d["cin"], block.s)(x)
        else:
            short = self.proj_bn(F.conv2d(x, self.proj.weight[:d["c"], :d["cin"]], None,
                                          block.s))
        return F.relu(out + short)

    def subnet_tensors(self, block: S.Layer, cin: int) -> list[tuple[type, dict]]:
        d = self.sizes(block, cin)
        out: list[tuple[type, dict]] = []
        for (o, i, _, _), conv, bn in zip(self.plan, self.convs, self.bns):
            out += [(nn.Conv2d, {"weight": conv.weight[:d[o], :d[i]]}),
                    (nn.BatchNorm2d, _bn_tensors(bn, slice(0, d[o])))]
        if d["squeeze"]:
            q, c = d["squeeze"], d["c"]
            out += [(nn.Conv2d, {"weight": self.se_reduce.weight[:q, :c],
                                 "bias": self.se_reduce.bias[:q]}),
                    (nn.Conv2d, {"weight": self.se_expand.weight[:c, :q],
                                 "bias": self.se_expand.bias[:c]})]
        if not self._identity(block, cin) and block.sc == "B":
            out += [(nn.Conv2d, {"weight": self.proj.weight[:d["c"], :cin]}),
                    (nn.BatchNorm2d, _bn_tensors(self.proj_bn, slice(0, d["c"])))]
        return out


class ElasticHead(Elastic):
    """Classifier head (global pool, flatten, dropout, fc) on the first channels of its
    widest input."""

    def __init__(self, cin: int, head: S.Head) -> None:
        super().__init__()
        self.fc = nn.Linear(cin, head.c)
        self.p = head.p

    def forward(self, x: torch.Tensor, head: S.Head) -> torch.Tensor:
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        if head.p > 0:
            x = F.dropout(x, head.p, self.training)
        return F.linear(x, self.fc.weight[:, :x.shape[1]], self.fc.bias)

    def subnet_tensors(self, head: S.Head, cin: int) -> list[tuple[type, dict]]:
        return [(nn.Linear, {"weight": self.fc.weight[:, :cin], "bias": self.fc.bias})]


class ResidualSupernet(Supernet):
    """Supernet of a :class:`search_spaces.residual.ResidualSpace` for one block type:
    elastic depth (the first blocks of a stage) and width per stage (the first channels),
    SE on or off, and the resolution. Basic and bottleneck blocks are separate supernets
    (``block``, default the first of ``space.blocks``); a bottleneck supernet holds the
    ungrouped ResNet bottleneck (groups choice ``[1, 64]``). Channels are not reordered by
    importance: a stage's output channels are shared through its residual connections.

    ``self.space`` is the space restricted to that block type (``blocks=[block]`` and, for
    bottlenecks, ``groups=[[1, 64]]``)."""

    space_name = "residual"

    def __init__(self, space: Any, block: str | None = None) -> None:
        super().__init__()
        blocks = tuple(getattr(space, "blocks", ()))
        block = blocks[0] if block is None and blocks else block
        if block not in blocks:
            raise ValueError(f"supernet block={block!r} is not a block choice of the space "
                             f"({', '.join(blocks)}); pass one of them")
        self.block = block
        restrict: dict[str, Any] = {"blocks": [block]}
        if block == "bottleneck":
            if (1, 64) not in tuple(space.groups):
                raise ValueError("a bottleneck supernet needs the groups choice [1, 64] "
                                 "(grouped convolutions have no supernet)")
            restrict["groups"] = [[1, 64]]
        self._setup(space, restrict)

    def _slot(self, cin: int, block: S.Layer, stage: int, index: int) -> Elastic:
        sp = self.space
        se = max(sp.se)
        c = block.c
        first_widths = {w * (1 if self.block == "basic" else 4) for w in sp.widths[stage]}
        project = block.sc == "B" and index == 0 and (block.s != 1 or first_widths != {cin}
                                                      or self._cin_choices(stage) != {cin})
        return ElasticResBlock(cin, block, squeeze=max(1, int(c * se)) if se > 0 else 0,
                               project=project)

    def _cin_choices(self, stage: int) -> set[int]:
        if stage == 0:
            return {self.space.stem_width}
        return {w * (1 if self.block == "basic" else 4) for w in self.space.widths[stage - 1]}

    def _back_module(self, layer: S.Layer, shape: S.Shape) -> nn.Module:
        if isinstance(layer, S.Head):
            return ElasticHead(shape[0], layer)
        return B.module(layer, shape)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

#: space name -> supernet class
SUPERNETS: dict[str, type[Supernet]] = {cls.space_name: cls
                                         for cls in (MobileSupernet, ResidualSupernet)}


def make_supernet(space: Any, **kwargs: Any) -> nn.Module:
    """The supernet of ``space`` (a SearchSpace); ValueError for a space without one."""
    name = getattr(space, "name", None)
    cls = SUPERNETS.get(name)
    if cls is None:
        raise ValueError(f"the {name} space has no supernet; spaces with one: "
                         f"{', '.join(sorted(SUPERNETS))}")
    import inspect

    allowed = set(inspect.signature(cls.__init__).parameters) - {"self", "space"}
    given = {k: v for k, v in kwargs.items() if v is not None}
    for k in given:
        if k not in allowed:
            raise ValueError(f"{name} supernets take {', '.join(sorted(allowed))}, not {k}")
    return cls(space, **given)


# --------------------------------------------------------------------------------------------
# BN calibration
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def calibrate_bn(module: nn.Module, batches: Iterable[torch.Tensor],
                 forward: Callable[[torch.Tensor], Any] | None = None) -> int:
    """Recompute every BatchNorm's running statistics as the plain average over
    ``batches`` (momentum None; Once-for-All's ``set_running_statistics`` does the same
    with a data subset). Leaves ``module`` in eval mode; returns the number of images."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    n = 0
    try:
        for x in batches:
            (forward or module)(x)
            n += int(x.shape[0])
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        module.eval()
    if n == 0:
        raise ValueError("BN calibration got no batches; pass at least one training batch")
    return n


# --------------------------------------------------------------------------------------------
# Scoring subnets: calibration and validation batches, inherited accuracy
# --------------------------------------------------------------------------------------------


def resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Batch ``x`` at ``resolution`` pixels, resized as the data modules resize (bilinear,
    antialiased when shrinking)."""
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear",
                         align_corners=False, antialias=resolution < max(x.shape[-2:]))


class SubnetData:
    """The images that score a subnet: ``calib_batches`` training batches (no augmentation)
    for BN recalibration and the whole validation split, normalised at the data's native
    size and resized to each subnet's resolution on demand (cached per resolution).

    Args:
        data: ``make_datamodule`` kwargs with ``name`` (the search's data config).
        train: the recipe; its batch size, ``train_fraction`` and ``val_fraction`` make the
            same splits as the from-scratch proxy (the validation split is fixed by
            ``data.split_seed``).
        calib_batches: training batches for BN recalibration.
        seed: picks which training batches calibrate.
    """

    def __init__(self, data: Mapping, train: Any, *, calib_batches: int, seed: int = 0) -> None:
        from nas.cli import split_data_config
        from nas.data import make_datamodule
        from nas.train import TrainConfig

        cfg = TrainConfig.from_any(train)
        name, data = split_data_config(data)
        if isinstance(calib_batches, bool) or not isinstance(calib_batches, int) or \
                calib_batches < 1:
            raise ValueError(f"calib_batches={calib_batches!r} is invalid; pass a positive "
                             f"number of training batches for BN recalibration")
        if cfg.val_fraction <= 0:
            raise ValueError("scoring subnets needs a validation split: set "
                             "train.val_fraction > 0")
        self.dm = make_datamodule(name, **data, batch_size=cfg.batch_size,
                                  train_fraction=cfg.train_fraction,
                                  val_fraction=cfg.val_fraction, seed=int(seed))
        self.calib_batches = calib_batches
        calib = []
        for i, batch in enumerate(self.dm.train_dataloader()):
            if i == calib_batches:
                break
            calib.append(self.dm.on_after_batch_transfer(batch)[0])
        self._native = {"calib": [(x, None) for x in calib],
                        "val": [self.dm.on_after_batch_transfer(b)
                                for b in self.dm.val_dataloader()]}
        self._cache: dict[tuple[str, int], list] = {}

    def batches(self, split: str, resolution: int) -> list[tuple[torch.Tensor, Any]]:
        """The split's batches at ``resolution``, channels-last (the layout `score` runs
        subnets in)."""
        key = (split, int(resolution))
        if key not in self._cache:
            self._cache[key] = [(resize(x, resolution).contiguous(
                memory_format=torch.channels_last), y) for x, y in self._native[split]]
        return self._cache[key]

    @torch.no_grad()
    def score(self, net: nn.Module, resolution: int, *,
              per_image: bool = False) -> dict[str, Any]:
        """Recalibrate ``net``'s BN statistics, then its validation accuracy and loss
        (with ``per_image``, also ``"correct"``: a bool array, one entry per validation
        image in split order).

        Runs ``net`` in the channels-last layout (converted in place, and back to the
        default layout before returning): PyTorch's CPU kernels for the depthwise and 1x1
        convolutions of these subnets run 1.3-3.6x faster in it (RESULTS.md 7.4); outputs
        agree with the default layout to ~1e-7. The validation pass runs with BN folded into
        the convolutions (:func:`nas.build.bn_folded`; outputs agree to ~1e-5), put back
        before returning: ``net`` keeps its recalibrated BN layers."""
        dev = next(net.parameters()).device
        net.to(memory_format=torch.channels_last)
        try:
            return self._score(net, resolution, dev, per_image)
        finally:
            net.to(memory_format=torch.contiguous_format)

    def _score(self, net: nn.Module, resolution: int, dev: torch.device,
               per_image: bool) -> dict[str, Any]:
        n_cal = calibrate_bn(net, (x.to(dev) for x, _ in self.batches("calib", resolution)))
        hits, loss, n = [], 0.0, 0
        with B.bn_folded(net) as folded:  # a fifth to a third faster (RESULTS.md 7.6)
            for x, y in self.batches("val", resolution):
                logits = folded(x.to(dev)).float().cpu()
                hits.append(logits.argmax(1) == y)
                loss += float(F.cross_entropy(logits, y, reduction="sum"))
                n += int(y.shape[0])
        correct = torch.cat(hits)
        out = {"accuracy": int(correct.sum()) / n, "val_loss": loss / n,
               "calib_images": n_cal, "val_images": n}
        if per_image:
            out["correct"] = correct.numpy()
        return out


def subnet_net(supernet: MobileSupernet, genome: Any) -> nn.Module:
    """The standalone network (``nas.build``) of a subnet with its inherited weights."""
    spec, state = supernet.extract(genome)
    net = B.build(spec)
    net.load_state_dict(state)
    return net


# --------------------------------------------------------------------------------------------
# Training: one LightningModule, the sandwich rule with in-place distillation
# --------------------------------------------------------------------------------------------


class SupernetModule(pl.LightningModule):
    """Trains a supernet with ``nas.train``'s recipe (optimiser, schedule, weight decay
    rules, label smoothing, precision).

    Each step follows the sandwich rule (Yu et al., BigNAS 2020): the largest subnet, the
    smallest and ``random_subnets`` random ones, each at its own input resolution; the
    largest learns from the labels, the others (with ``distill``) from the largest's
    detached predictions (in-place distillation, soft cross-entropy). With
    ``sandwich=False`` a step trains only the ``random_subnets`` uniformly drawn subnets,
    each from the labels (single-path uniform sampling, Guo et al., SPOS 2020): every subnet
    gets the same expected share of the training, the extremes none extra. Gradients of
    all of them are summed before one optimiser step. Random subnets are drawn from
    ``(seed, global_step)``, so a resumed run samples what the killed one would have.

    Args:
        space: the space name; ``space_config``: its constructor kwargs (``config()``).
        width: a mobile supernet's width multiplier (None: the largest choice).
        block: a residual supernet's block type (None: the first choice).
        train: the recipe (TrainConfig fields).
        random_subnets, sandwich, distill, sort_channels: see above and
            :meth:`MobileSupernet.sort_channels` (each epoch after the first).
        progressive: progressive shrinking (Cai et al., Once-for-All 2020): gene kinds (the
            last part of a gene's name, e.g. ``[kernel, depth, expand]`` for mobile) in the
            order they become elastic. The epochs are split into ``len + 1`` equal phases:
            in the first every listed kind is held at its largest choice, each later phase
            frees the next kind. Unlisted kinds (resolution, SE) are elastic throughout.
            None: every gene elastic from the start.
        seed: initial weights and subnet sampling.
    """

    def __init__(self, *, space: str, space_config: Mapping, width: float | None = None,
                 block: str | None = None, train: Any = None, random_subnets: int = 2,
                 distill: bool = True, sort_channels: bool = True,
                 progressive: Iterable[str] | None = None, seed: int = 0,
                 sandwich: bool = True) -> None:
        super().__init__()
        from nas.train import TrainConfig
        from search_spaces import get_space

        if isinstance(random_subnets, bool) or not isinstance(random_subnets, int) or \
                random_subnets < 0:
            raise ValueError(f"supernet.random_subnets={random_subnets!r} is invalid; pass "
                             f"an integer >= 0")
        sandwich = checks.boolean("supernet.sandwich", sandwich)
        if not sandwich and random_subnets < 1:
            raise ValueError("supernet.sandwich=false trains only random subnets: set "
                             "supernet.random_subnets >= 1")
        self.cfg = TrainConfig.from_any(train)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.supernet = make_supernet(get_space(space, **dict(space_config)), width=width,
                                          block=block)
        self.space = self.supernet.space
        self.progressive = None if progressive is None else [str(k) for k in progressive]
        kinds = {g.name.rsplit(".", 1)[-1]: None for g in self.space.genes}
        bad = [k for k in self.progressive or [] if k not in kinds]
        if bad or (self.progressive is not None and
                   (not self.progressive or len(set(self.progressive)) < len(self.progressive))):
            raise ValueError(f"supernet.progressive={self.progressive!r} is invalid; pass null "
                             f"or distinct gene kinds of the {self.space.name} space in the "
                             f"order they become elastic, from: {', '.join(kinds)}")
        self.random_subnets = random_subnets
        self.distill = checks.boolean("supernet.distill", distill)
        # without the sandwich no largest subnet runs in a step: nothing to distil from
        self.sandwich_rule = sandwich
        self.sort = checks.boolean("supernet.sort_channels", sort_channels)
        self.seed = int(seed)
        self.automatic_optimization = False
        self.save_hyperparameters({
            "space": self.space.name, "space_config": self.space.config(),
            "width": getattr(self.supernet, "width", None),
            "block": getattr(self.supernet, "block", None), "train": self.cfg.to_dict(),
            "random_subnets": random_subnets, "sandwich": self.sandwich_rule,
            "distill": self.distill,
            "sort_channels": self.sort, "progressive": self.progressive, "seed": self.seed})

    def forward(self, x: torch.Tensor, genome: Any) -> torch.Tensor:
        return self.supernet(x, genome)

    def held(self, epoch: int | None) -> list[str]:
        """The gene kinds held at their largest choice in ``epoch`` (progressive
        shrinking; none without it, or for ``epoch=None``)."""
        if self.progressive is None or epoch is None:
            return []
        phases = len(self.progressive) + 1
        phase = min(phases - 1, int(epoch) * phases // max(1, self.cfg.epochs))
        return self.progressive[phase:]

    def sandwich(self, step: int, epoch: int | None = None) -> list[tuple[int, ...]]:
        """The subnets of one step: largest, smallest (without ``sandwich``: neither), then
        the random ones (with progressive shrinking, the kinds :meth:`held` in ``epoch`` at
        their largest)."""
        rng = np.random.default_rng([self.seed, int(step)])
        big = self.supernet.largest()
        nets = [*([big, self.supernet.smallest()] if self.sandwich_rule else []),
                *map(tuple, self.space.sample(self.random_subnets, rng))]
        held = set(self.held(epoch))
        if not held:
            return nets
        pos = [g.position for g in self.space.genes if g.name.rsplit(".", 1)[-1] in held]
        out = []
        for genome in nets:
            g = list(genome)
            for i in pos:
                g[i] = big[i]
            out.append(tuple(self.space.canonical(g)))
        return out

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        from nas.train import CandidateFailed

        x, y = batch
        opt = self.optimizers()
        sched = self.lr_schedulers()
        opt.zero_grad()
        teacher = None
        losses = []
        # One process: a backward pass per subnet (one graph alive at a time). DDP reduces
        # gradients once per step, so there the subnets' losses are summed into one backward.
        distributed = self.trainer.world_size > 1
        total = 0.0
        for genome in self.sandwich(self.global_step, self.current_epoch):
            res = self.space.values(genome)["resolution"]
            logits = self.supernet(resize(x, res), genome).float()
            if teacher is None or not self.distill:
                loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)
            else:
                loss = -(teacher * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
            if teacher is None and self.sandwich_rule:  # the largest's predictions
                teacher = F.softmax(logits.detach(), dim=1)
            if distributed:
                total = total + loss
            else:
                self.manual_backward(loss)
            losses.append(loss.detach())
        if distributed:
            self.manual_backward(total)
        if not all(torch.isfinite(v) for v in losses):
            raise CandidateFailed(f"diverged: losses {[float(v) for v in losses]} at step "
                                  f"{self.global_step}")
        opt.step()
        sched.step()
        n = x.shape[0]
        if self.sandwich_rule:
            self.log("train/loss_largest", losses[0], on_step=False, on_epoch=True,
                     batch_size=n)
            self.log("train/loss_smallest", losses[1], on_step=False, on_epoch=True,
                     batch_size=n, prog_bar=True)
        else:
            self.log("train/loss", torch.stack(losses).mean(), on_step=False, on_epoch=True,
                     batch_size=n, prog_bar=True)

    def on_train_epoch_start(self) -> None:
        # Dropout draws from torch's global generator: seeding it per epoch makes a run
        # resumed from an epoch's checkpoint draw what the uninterrupted run drew.
        torch.manual_seed(self.seed * 100_003 + self.current_epoch)
        if self.sort and self.current_epoch > 0:
            self.supernet.sort_channels(self.optimizers().optimizer)

    def configure_optimizers(self):
        from nas.train import make_optimizer

        params = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        # Kernel maps start as identities: decay would pull them towards zero.
        decay = [p for n, p in params if p.ndim > 1 and "kernel_maps" not in n]
        rest = [p for n, p in params if not (p.ndim > 1 and "kernel_maps" not in n)]
        groups = [{"params": decay, "weight_decay": self.cfg.weight_decay},
                  {"params": rest, "weight_decay": 0.0}]
        return make_optimizer(groups, self.cfg, int(self.trainer.estimated_stepping_batches))


class ScoreExtremes(pl.Callback):
    """After every epoch, the inherited accuracy of the largest and smallest subnet
    (BN recalibrated, on the validation split), logged as ``val/acc_largest`` and
    ``val/acc_smallest``; ``last`` holds the latest."""

    def __init__(self, data: SubnetData) -> None:
        self.data = data
        self.last: dict[str, float] = {}

    def scores(self, module: SupernetModule) -> dict[str, float]:
        sn = module.supernet
        out = {}
        for label, genome in (("largest", sn.largest()), ("smallest", sn.smallest())):
            net = subnet_net(sn, genome).to(module.device)
            res = sn.space.values(genome)["resolution"]
            out[label] = self.data.score(net, res)["accuracy"]
        return out

    def on_train_epoch_end(self, trainer: pl.Trainer, module: SupernetModule) -> None:
        self.last = self.scores(module)
        for label, acc in self.last.items():
            module.log(f"val/acc_{label}", acc, prog_bar=True)


# --------------------------------------------------------------------------------------------
# Scoring with a trained supernet (evaluator=supernet, nas.export)
# --------------------------------------------------------------------------------------------


def read_supernet_checkpoint(path: Any) -> tuple[dict, dict]:
    """``(hyper-parameters, checkpoint)`` of a ``python -m nas.supernet`` checkpoint, read
    safely; ValueError naming the file when it is missing, unreadable or not a
    supernet's."""
    from pathlib import Path

    p = Path(str(path)).expanduser()
    if not p.is_file():
        raise ValueError(f"supernet checkpoint {p}: no such file; pass the checkpoints/"
                         f"last.ckpt of a `python -m nas.supernet` run")
    # The hyper-parameters are plain containers, so the safe loader reads them.
    ckpt = read_checkpoint(p, what="supernet checkpoint",
                           fix="train it again with `python -m nas.supernet`")
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hp, dict) or not {"space", "space_config", "width"} <= set(hp) or \
            not isinstance(ckpt.get("state_dict"), dict):
        raise ValueError(f"{p} is not a supernet checkpoint (no space/space_config/width "
                         f"hyper-parameters); pass one written by `python -m nas.supernet`")
    if hp["space"] not in SUPERNETS:
        raise ValueError(f"{p} is a supernet of the {hp['space']} space, which has no "
                         f"supernet class here; spaces with one: {', '.join(sorted(SUPERNETS))}")
    return hp, ckpt


def load_supernet(path: Any) -> tuple[MobileSupernet, str]:
    """The supernet of a ``python -m nas.supernet`` checkpoint and the sha256 of the file;
    ValueError naming the file when it is missing, unreadable or not a supernet's."""
    from pathlib import Path

    p = Path(str(path)).expanduser()
    hp, ckpt = read_supernet_checkpoint(p)
    module = SupernetModule(**hp)
    try:
        module.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise ValueError(f"supernet checkpoint {p} does not fit the supernet its own config "
                         f"describes ({str(e).splitlines()[0]}); was it written by another "
                         f"version of nas?") from None
    sn = module.supernet.eval()
    return sn, file_hash(p)


def _override(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_override(x) for x in v) + "]"
    return format(v, "g") if isinstance(v, float) else str(v)


def check_space(supernet: MobileSupernet, space: Any, checkpoint: Any = "the checkpoint") -> None:
    """ValueError unless ``space`` (a search's) is the supernet's space, config included;
    the message names the first difference and the override that fixes it."""
    if space.name not in SUPERNETS:
        make_supernet(space)  # raises: this space has no supernet, listing those that do
    if space.name != supernet.space.name:
        raise ValueError(f"{checkpoint} is a supernet of the {supernet.space.name} space, but "
                         f"the search's space is {space.name}; train one with `python -m "
                         f"nas.supernet +space={space.name}` or search +space="
                         f"{supernet.space.name}")
    mine, theirs = supernet.space.config(), space.config()
    for key in sorted(set(mine) | set(theirs)):
        a, b = mine.get(key), theirs.get(key)
        if a != b:
            where = ("data" if key in ("num_classes", "in_channels") else "space")
            hint = ("use the data set the supernet was trained on" if where == "data" else
                    f"run the search with space.{key}={_override(a)}")
            raise ValueError(f"{checkpoint} was trained for a {space.name} space config with "
                             f"{key}={_override(a)}, the search's has {key}={_override(b)}; "
                             f"{hint}")


def adopt_checkpoint_space(space_cfg: Mapping, checkpoint: Any, typed: Mapping) -> tuple[dict, list[str]]:
    """A search's space config with the layout of the supernet in ``checkpoint``: the
    checkpoint knows its space, so the search takes its settings from there. ``typed``
    holds the ``space.KEY`` values the user gave on the command line: one that contradicts
    the checkpoint is refused (naming both), the rest of the config is replaced. Returns
    the new config and the ``KEY=VALUE`` settings taken over (for the log). The classes
    and channels come from the data, as always; a supernet of another space is left for
    :func:`check_space` to refuse."""
    from search_spaces import SPACES

    hp, _ = read_supernet_checkpoint(checkpoint)
    out = dict(space_cfg)
    cls = SPACES[hp["space"]]
    if str(out.get("_target_", "")) != f"{cls.__module__}.{cls.__qualname__}":
        return out, []
    taken = []
    for key, value in hp["space_config"].items():
        if key in ("num_classes", "in_channels"):
            continue
        if key in typed and typed[key] != value:
            raise ValueError(f"evaluator.checkpoint={checkpoint} is a supernet of the "
                             f"{hp['space']} space with {key}={_override(value)}, but the "
                             f"command line sets space.{key}={_override(typed[key])}; drop "
                             f"that override (the search takes the space from the checkpoint)")
        if out.get(key) != value:
            taken.append(f"space.{key}={_override(value)}")
        out[key] = value
    return out, taken


class InheritedScorer:
    """Scores subnets of a trained supernet: extract, optionally fine-tune, recalibrate BN
    on ``calib_batches`` training batches, measure on the validation split.

    Args:
        checkpoint: a ``python -m nas.supernet`` checkpoint.
        data, train: the search's data config and recipe (batch size and splits; the
            recipe's optimiser and schedule for fine-tuning).
        calib_batches: training batches for BN recalibration.
        finetune_steps: optimiser steps of fine-tuning before scoring (0: none).
        calib_seed: picks which training batches calibrate (the same for every subnet).
    """

    def __init__(self, checkpoint: Any, *, data: Mapping, train: Any, calib_batches: int = 10,
                 finetune_steps: int = 0, calib_seed: int = 0) -> None:
        from nas.train import TrainConfig

        if isinstance(finetune_steps, bool) or not isinstance(finetune_steps, int) or \
                finetune_steps < 0:
            raise ValueError(f"finetune_steps={finetune_steps!r} is invalid; pass an integer "
                             f">= 0 (0: score the inherited weights as they are)")
        self.checkpoint = str(checkpoint)
        self.supernet, self.sha256 = load_supernet(checkpoint)
        self.train = TrainConfig.from_any(train)
        self.data_cfg = dict(data)
        self.data = SubnetData(data, self.train, calib_batches=calib_batches, seed=calib_seed)
        self.finetune_steps = finetune_steps
        self.fidelity = {"evaluator": "supernet", "checkpoint_sha256": self.sha256[:16],
                         "calib_batches": calib_batches, "finetune_steps": finetune_steps}

    def check_space(self, space: Any) -> None:
        check_space(self.supernet, space, self.checkpoint)

    def network(self, genome: Any, *, seed: int = 0,
                per_image: bool = False) -> tuple[S.ArchSpec, nn.Module, dict]:
        """``(spec, net, score)``: the subnet with its inherited (fine-tuned, recalibrated)
        weights in eval mode, and its validation score (``per_image``: see
        :meth:`SubnetData.score`)."""
        genome = self.supernet.space.canonical(genome)
        spec, state = self.supernet.extract(genome)
        net = B.build(spec)
        net.load_state_dict(state)
        if self.finetune_steps:
            net = self._finetune(spec, net, seed)
        score = self.data.score(net, spec.input[1], per_image=per_image)
        return spec, net, score

    def _finetune(self, spec: S.ArchSpec, net: nn.Module, seed: int) -> nn.Module:
        from dataclasses import replace

        from nas.data import make_datamodule
        from nas.train import ClassifierModule, _accelerator, _quiet

        data = {k: v for k, v in self.data_cfg.items() if k != "name"}
        for k in ("batch_size", "train_fraction", "val_fraction", "resolution", "seed"):
            data.pop(k, None)
        cfg = replace(self.train, epochs=1, warmup_epochs=0.0)
        with _quiet(True):
            pl.seed_everything(seed, workers=False, verbose=False)
            dm = make_datamodule(self.data_cfg["name"], **data, batch_size=cfg.batch_size,
                                 train_fraction=cfg.train_fraction,
                                 val_fraction=cfg.val_fraction, resolution=spec.input[1],
                                 seed=seed)
            model = ClassifierModule(spec, train=cfg, seed=seed)
            model.net.load_state_dict(net.state_dict())
            trainer = pl.Trainer(max_steps=self.finetune_steps, max_epochs=-1,
                                 accelerator=_accelerator(cfg), devices=1, logger=False,
                                 enable_checkpointing=False, enable_progress_bar=False,
                                 enable_model_summary=False, limit_val_batches=0,
                                 num_sanity_val_steps=0)
            trainer.fit(model, datamodule=dm)
        return model.net.eval()

    def score(self, genome: Any, *, seed: int = 0, per_image: bool = False) -> dict:
        """``{"accuracy", "val_loss", "seconds", ...}`` of one subnet."""
        import time

        from nas.train import _threads

        t0 = time.perf_counter()
        with _threads(self.train.num_threads):
            _, _, score = self.network(genome, seed=seed, per_image=per_image)
        return {**score, "seconds": time.perf_counter() - t0}


# --------------------------------------------------------------------------------------------
# The training app: python -m nas.supernet +space=mobile
# --------------------------------------------------------------------------------------------

CHECKPOINT = "checkpoints/last.ckpt"  # in the run folder


class SupernetError(ValueError):
    """A configuration or run-folder problem, reported as one clear line."""


def run_supernet(cfg: Any, run_dir: Any) -> dict:
    """Train (or, with ``cfg.resume``, continue) a supernet into ``run_dir``; the plain
    function behind the CLI. Writes ``config.yaml``, ``checkpoints/last.ckpt`` (every epoch),
    ``metrics.csv`` and ``summary.json``; returns the summary (an empty dict in the other
    processes of a DDP run)."""
    import json
    import time
    import warnings
    from pathlib import Path

    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger

    from nas.data import make_datamodule
    from nas.train import (
        DATA_KEYS_SET_BY_TRAIN,
        TrainConfig,
        _accelerator,
        _quiet,
        _threads,
        keyboard_interrupts,
        resolve_precision,
    )

    run_dir = Path(run_dir)
    ckpt = None
    if cfg.get("resume"):
        run_dir = Path(str(cfg.resume)).expanduser()
        if not (run_dir / "config.yaml").is_file():
            raise SupernetError(f"resume={cfg.resume}: no config.yaml there; pass a run folder "
                                f"written by `python -m nas.supernet`")
        saved = OmegaConf.load(run_dir / "config.yaml")
        if "supernet" not in saved:
            kind = ("a nas.search run folder" if (run_dir / "archive.sqlite").exists()
                    else "not written by `python -m nas.supernet`")
            raise SupernetError(f"resume={cfg.resume} is not a supernet run folder ({kind}); "
                                f"pass the folder of a `python -m nas.supernet` run")
        if not (run_dir / CHECKPOINT).is_file():
            raise SupernetError(f"resume={cfg.resume}: no {CHECKPOINT} yet (killed before "
                                f"its first epoch ended); start a fresh run")
        # read safely (and fail in one line on a corrupt file) before Lightning loads it
        hp = read_checkpoint(run_dir / CHECKPOINT, what="supernet checkpoint",
                             fix="start a fresh run").get("hyper_parameters")
        if not isinstance(hp, dict) or "space" not in hp:
            raise SupernetError(f"{run_dir / CHECKPOINT} is not a supernet checkpoint; start a "
                                f"fresh run")
        cfg = saved
        ckpt = str(run_dir / CHECKPOINT)
    elif cfg.get("space") is None:
        raise SupernetError(f"no search space given: add +space=NAME, NAME one of "
                            f"{', '.join(sorted(SUPERNETS))} (spaces with a supernet)")
    elif (run_dir / CHECKPOINT).exists():
        raise SupernetError(f"{run_dir} already holds a supernet; continue it with "
                            f"resume={run_dir}")
    from hydra.utils import get_class

    space_name = getattr(get_class(cfg.space._target_), "name", None)
    if space_name not in SUPERNETS:  # before any data is loaded
        raise SupernetError(f"the {space_name} space has no supernet; spaces with one: "
                            f"{', '.join(sorted(SUPERNETS))}")
    train = TrainConfig.from_any(cfg.train)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    name = data.pop("name")
    for k in DATA_KEYS_SET_BY_TRAIN:
        data.pop(k, None)
    opts = OmegaConf.to_container(cfg.supernet, resolve=True)
    seed = int(cfg.seed)
    with _threads(train.num_threads), _quiet(not cfg.get("progress", True)):
        pl.seed_everything(seed, workers=False, verbose=False)
        dm = make_datamodule(name, **data, batch_size=train.batch_size,
                             train_fraction=train.train_fraction,
                             val_fraction=train.val_fraction, seed=seed)
        space_cfg = OmegaConf.to_container(cfg.space, resolve=True)
        space_cfg.pop("name", None)
        space = instantiate(space_cfg, num_classes=dm.num_classes, in_channels=dm.in_channels,
                            _convert_="all")
        module = SupernetModule(space=space.name, space_config=space.config(),
                                width=cfg.get("width"), block=cfg.get("block"), train=train,
                                random_subnets=opts["random_subnets"], distill=opts["distill"],
                                sort_channels=opts["sort_channels"],
                                progressive=opts.get("progressive"), seed=seed,
                                sandwich=opts.get("sandwich", True))
        scorer = ScoreExtremes(SubnetData(cfg.data, train, calib_batches=opts["calib_batches"],
                                          seed=seed))
        run_dir.mkdir(parents=True, exist_ok=True)
        if ckpt is None:
            (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        elif (run_dir / "metrics.csv").exists():
            # Lightning's CSV logger deletes an existing metrics.csv: keep the rows of the
            # interrupted run as a part, merged back when this run completes.
            n = len(list(run_dir.glob("metrics.part*.csv")))
            (run_dir / "metrics.csv").rename(run_dir / f"metrics.part{n}.csv")
        accelerator = _accelerator(train)
        trainer = pl.Trainer(
            max_epochs=train.epochs, accelerator=accelerator, devices=train.devices,
            # Subnets leave parts of the supernet unused in a step: DDP must look for them.
            strategy=(f"{train.strategy}_find_unused_parameters_true"
                      if train.strategy in ("ddp", "ddp_spawn") else train.strategy),
            precision=resolve_precision(train.precision, accelerator),
            deterministic=train.deterministic,
            logger=CSVLogger(save_dir=str(run_dir), name="", version=""),
            callbacks=[scorer, ModelCheckpoint(dirpath=run_dir / "checkpoints",
                                               filename="last", save_top_k=1, monitor=None)],
            enable_progress_bar=bool(cfg.get("progress", True)), enable_model_summary=False,
            num_sanity_val_steps=0, limit_train_batches=train.limit_train_batches,
            limit_val_batches=0, log_every_n_steps=10, default_root_dir=str(run_dir),
            use_distributed_sampler=False)
        t0 = time.perf_counter()
        with warnings.catch_warnings(), keyboard_interrupts():
            # Subnets are scored by ScoreExtremes (calibrated BN), not by a validation loop.
            warnings.filterwarnings("ignore", message=".*no `validation_step`.*")
            trainer.fit(module, datamodule=dm, ckpt_path=ckpt, weights_only=True)
        seconds = time.perf_counter() - t0
    if not trainer.is_global_zero:  # DDP: the first process writes and prints the summary
        return {}
    _merge_metrics(run_dir)
    scores = scorer.last or scorer.scores(module)
    previous = {}
    if (run_dir / "summary.json").exists():
        previous = json.loads((run_dir / "summary.json").read_text())
    summary = {
        "space": space.name, "restrict": module.supernet.restrict, "data": name,
        "epochs": int(trainer.current_epoch), "steps": int(trainer.global_step),
        "accuracy_largest": scores["largest"], "accuracy_smallest": scores["smallest"],
        "train_seconds": seconds + float(previous.get("train_seconds", 0.0)),
        "checkpoint": str(run_dir / CHECKPOINT),
        "checkpoint_sha256": file_hash(run_dir / CHECKPOINT),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    if cfg.get("progress", True):
        _print_summary(summary, module)
    return summary


def _merge_metrics(run_dir: Any) -> None:
    """metrics.csv = the rows of every interrupted part, then this run's."""
    import pandas as pd

    parts = sorted(run_dir.glob("metrics.part*.csv"), key=lambda p: int(p.stem[12:]))
    if not parts:
        return
    frames = [pd.read_csv(p) for p in parts + [run_dir / "metrics.csv"]
              if p.exists() and p.stat().st_size > 0]
    pd.concat(frames, ignore_index=True).to_csv(run_dir / "metrics.csv", index=False)
    for p in parts:
        p.unlink()


def _print_summary(summary: dict, module: SupernetModule) -> None:
    from rich.console import Console
    from rich.table import Table

    from nas.cost import human, totals

    sn = module.supernet
    held = " ".join(f"{k}={_override(v)}" for k, v in summary["restrict"].items())
    t = Table(title=f"supernet {summary['space']} ({held}) on "
                    f"{summary['data']}: {summary['epochs']} epochs, {summary['steps']} steps, "
                    f"{summary['train_seconds']:.0f} s")
    for col in ("subnet", "MACs", "params", "val acc (inherited, BN recalibrated)"):
        t.add_column(col, justify="right")
    for label in ("largest", "smallest"):
        genome = sn.largest() if label == "largest" else sn.smallest()
        macs, params, _ = totals(sn.space.decode(genome))
        t.add_row(label, human(macs), human(params), f"{100 * summary[f'accuracy_{label}']:.2f}%")
    con = Console()
    con.print(t)
    space_args = " ".join(f"space.{k}={_override(v)}" for k, v in summary["restrict"].items())
    con.print(f"checkpoint: {summary['checkpoint']}\nsearch with it: python -m nas.search "
              f"+space={summary['space']} {space_args} "
              f"evaluator=supernet evaluator.checkpoint={summary['checkpoint']}")


def main() -> None:
    from nas.cli import hydra_app

    hydra_app("supernet", lambda cfg, run_dir, _: run_supernet(cfg, run_dir))


def file_hash(path: Any) -> str:
    """sha256 of a file's content (the checkpoint id recorded with every score)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


__all__ = ["SUPERNETS", "ElasticBN", "ElasticMBConv", "MobileSupernet", "ScoreExtremes",
           "InheritedScorer", "SubnetData", "SupernetError", "SupernetModule", "calibrate_bn", "check_space", "extreme_genome",
           "file_hash", "load_supernet", "make_supernet", "resize", "run_supernet", "subnet_net"]


if __name__ == "__main__":
    main()
