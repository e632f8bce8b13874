"""The supernet of each space that has one, and subnet extraction."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from nas import build as B
from nas import registry
from nas import spec as S
from nas.supernet.elastic import (
    Elastic,
    ElasticHead,
    ElasticMBConv,
    ElasticResBlock,
    modules_with_tensors,
)


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
        if getattr(space, "name", None) != self.space_name:
            raise ValueError(f"{type(self).__name__} needs a {self.space_name} space, got "
                             f"{getattr(space, 'name', type(space).__name__)!r}")
        self.restrict = dict(restrict)
        self.space = registry.SPACES.build(space.name, **{**space.config(), **restrict})
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
            targets = modules_with_tensors(dst)
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


#: space name -> supernet class
#: the supernets, by the space they share weights over (:data:`nas.registry.SUPERNETS`)
SUPERNETS = registry.SUPERNETS


def make_supernet(space: Any, **kwargs: Any) -> nn.Module:
    """The supernet of ``space`` (a SearchSpace); ValueError for a space without one."""
    name = getattr(space, "name", None)
    if name not in SUPERNETS:
        raise ValueError(f"the {name} space has no supernet; spaces with one: "
                         f"{', '.join(sorted(SUPERNETS))}")
    cls = SUPERNETS.get(name)
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self", "space"}
    given = {k: v for k, v in kwargs.items() if v is not None}
    for k in given:
        if k not in allowed:
            raise ValueError(f"{name} supernets take {', '.join(sorted(allowed))}, not {k}")
    return cls(space, **given)


def subnet_net(supernet: MobileSupernet, genome: Any) -> nn.Module:
    """The standalone network (``nas.build``) of a subnet with its inherited weights."""
    spec, state = supernet.extract(genome)
    net = B.build(spec)
    net.load_state_dict(state)
    return net
