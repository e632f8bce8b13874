"""Weight-sharing supernets: train once, score any subnet with inherited weights.

A supernet holds the weights of the largest network of a space; every other network of the
space is a part of it (Cai et al., "Once-for-All", ICLR 2020; Lu et al., NSGANetV2, ECCV
2020). It is derived from the space object itself: the supernet asks the space to decode
genomes (``MobileSpace.parts``) and reads the blocks it gets, so no layout is written twice.

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

The **width multiplier is fixed per supernet** (``width``, default the largest choice of
the space config): it changes every stage's output channels, residual shapes and the trunk,
so Once-for-All too trains one supernet per width. A supernet's space is the space config
with ``width_mults=[width]``; a search scored by it uses that config.

:meth:`MobileSupernet.extract` returns a subnet's ``(ArchSpec, state_dict)``: ``nas.build``
of that spec loaded with that state_dict computes what the supernet computes for the subnet
(tested to 1e-5 on random genomes, in eval mode after the same BN calibration). The
training app (``python -m nas.supernet +space=mobile``) and the evaluator
(``evaluator=supernet``) live further down.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas import build as B
from nas import spec as S

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


class ElasticMBConv(nn.Module):
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

    def subnet_tensors(self, block: S.MBConv) -> list[tuple[type, dict[str, torch.Tensor]]]:
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
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]


# --------------------------------------------------------------------------------------------
# The mobile supernet
# --------------------------------------------------------------------------------------------


def extreme_genome(space: Any, largest: bool) -> tuple[int, ...]:
    """The canonical genome taking every gene's largest (or smallest) choice."""
    pick = max if largest else min
    return space.canonical([g.choices.index(pick(g.choices)) for g in space.genes])


class MobileSupernet(nn.Module):
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
        from search_spaces import get_space

        if getattr(space, "name", None) != self.space_name:
            raise ValueError(f"MobileSupernet needs a mobile space, got "
                             f"{getattr(space, 'name', type(space).__name__)!r}")
        widths = tuple(space.width_mults)
        if width is None:
            width = max(widths)
        if width not in widths:
            raise ValueError(f"supernet width={width!r} is not a width multiplier choice of "
                             f"the space ({', '.join(f'{w:g}' for w in widths)}); pass one "
                             f"of them")
        self.width = float(width)
        self.space = get_space(space.name, **{**space.config(), "width_mults": [self.width]})
        sp = self.space
        big = sp.values(extreme_genome(sp, largest=True))
        front, stages, back = sp.parts(big)
        # The weights must not depend on the resolution: every resolution choice must give
        # the same trunk and stage layout (the space config keeps all choices one stem kind).
        for r in sp.resolutions:
            f2, s2, b2 = sp.parts({**big, "resolution": r})
            if (f2, s2, b2) != (front, stages, back):
                raise ValueError(f"mobile space config: resolution {r} changes the trunk or "
                                 f"the stages; a supernet needs one layout for every "
                                 f"resolution choice")
        self.front_layers, self.back_layers = tuple(front), tuple(back)
        res = max(sp.resolutions)
        shape: S.Shape = (sp.in_channels, res, res)
        self.front = nn.ModuleList()
        for layer in front:
            self.front.append(B.module(layer, shape))
            shape = S.out_shape(layer, shape)
        self.stages = nn.ModuleList()
        for blocks in stages:
            slots = nn.ModuleList()
            for b in blocks:
                cin = shape[0]
                slots.append(ElasticMBConv(
                    cin, b, kernels=sp.kernels,
                    hidden=max(int(round(cin * e)) for e in sp.expansions),
                    squeeze=max([max(1, int(cin * r)) for r in sp.se if r > 0], default=0)))
                shape = S.out_shape(b, shape)
            self.stages.append(slots)
        self.back = nn.ModuleList()
        for layer in back:
            self.back.append(B.module(layer, shape))
            shape = S.out_shape(layer, shape)
        B.init_weights(self)

    # Subnets ----------------------------------------------------------------------------------
    def blocks(self, genome: Any) -> list[list[S.MBConv]]:
        """The MBConv blocks of each stage of a genome of :attr:`space`."""
        values = self.space.values(self._check_genome(genome))
        front, stages, back = self.space.parts(values)
        if (tuple(front), tuple(back)) != (self.front_layers, self.back_layers):
            raise ValueError("genome decodes to another trunk than this supernet's")
        return stages

    def _check_genome(self, genome: Any) -> tuple[int, ...]:
        try:
            return self.space.canonical(genome)
        except ValueError as e:
            if "'width'" in str(e):
                raise ValueError(f"{e}: this supernet has width multiplier {self.width:g} "
                                 f"only (one supernet per width)") from None
            raise

    def largest(self) -> tuple[int, ...]:
        return extreme_genome(self.space, largest=True)

    def smallest(self) -> tuple[int, ...]:
        return extreme_genome(self.space, largest=False)

    def forward(self, x: torch.Tensor, genome: Any) -> torch.Tensor:
        stages = self.blocks(genome)
        for m in self.front:
            x = m(x)
        for slots, blocks in zip(self.stages, stages):
            for slot, b in zip(slots, blocks):
                x = slot(x, b)
        for m in self.back:
            x = m(x)
        return x

    @torch.no_grad()
    def extract(self, genome: Any) -> tuple[S.ArchSpec, dict[str, torch.Tensor]]:
        """``(spec, state_dict)`` of a subnet: ``nas.build(spec)`` loaded with the state
        dict computes what ``self(x, genome)`` computes (in eval mode)."""
        genome = self._check_genome(genome)
        spec = self.space.decode(genome)
        net = B.build(spec)
        stages = self.blocks(genome)
        mods = list(net.layers)
        nf, nb = len(self.front), len(self.back)
        for src, dst in zip(list(self.front) + list(self.back), mods[:nf] + mods[-nb:]):
            dst.load_state_dict(src.state_dict())
        pos = nf
        for slots, blocks in zip(self.stages, stages):
            for slot, b in zip(slots, blocks):
                targets = _modules_with_tensors(mods[pos])
                tensors = slot.subnet_tensors(b)
                if [type(m) for m in targets] != [t for t, _ in tensors]:
                    raise RuntimeError(f"nas.build of {b.token()} no longer has the layers "
                                       f"ElasticMBConv.subnet_tensors lists; update both")
                for m, (_, named) in zip(targets, tensors):
                    for name, t in named.items():
                        getattr(m, name).copy_(t)
                pos += 1
        if pos != len(mods) - nb:
            raise RuntimeError("extracted subnet has unused layers")
        return spec, {k: v.clone() for k, v in net.state_dict().items()}

    def sort_channels(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """:meth:`ElasticMBConv.sort_channels` on every slot that allows it."""
        for slots in self.stages:
            for slot in slots:
                if slot.sortable(self.space.expansions):
                    slot.sort_channels(optimizer)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

#: space name -> supernet class
SUPERNETS: dict[str, type[nn.Module]] = {MobileSupernet.space_name: MobileSupernet}


def make_supernet(space: Any, **kwargs: Any) -> nn.Module:
    """The supernet of ``space`` (a SearchSpace); ValueError for a space without one."""
    name = getattr(space, "name", None)
    cls = SUPERNETS.get(name)
    if cls is None:
        raise ValueError(f"the {name} space has no supernet; spaces with one: "
                         f"{', '.join(sorted(SUPERNETS))}")
    return cls(space, **kwargs)


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


def file_hash(path: Any) -> str:
    """sha256 of a file's content (the checkpoint id recorded with every score)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


__all__ = ["SUPERNETS", "ElasticBN", "ElasticMBConv", "MobileSupernet", "calibrate_bn",
           "extreme_genome", "file_hash", "make_supernet"]
