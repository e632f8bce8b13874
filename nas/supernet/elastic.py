"""Elastic layers: the weights of the largest block, of which every smaller choice uses a
part (first channels, centre of the kernel, first blocks of a stage)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from nas import build as B
from nas import spec as S


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


def modules_with_tensors(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]


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
