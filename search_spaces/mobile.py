"""Mobile space: MobileNetV2 trunk with searchable MBConv stages (OFA / NSGANetV2 style).

Fixed parts come from ``baselines.mobilenet_v2`` at the decoded width multiplier and
resolution: the stem (3x3 conv, stride 2; stride 1 for CIFAR-size inputs), the first MBConv
(e1, 16 channels), the last 1x1 conv (1280, times the width multiplier when above 1) and the
head (dropout 0.2). Between them, ``len(widths)`` stages of MBConv blocks.

Genes, in order:

* ``resolution``: input resolution;
* ``width``: width multiplier, applied to every layer with ``make_divisible(c * w, 8)``;
* per stage ``i`` (1-based): ``stage{i}.depth`` (number of blocks), ``stage{i}.se`` (SE ratio
  of the stage's blocks, 0 for none), then per block slot ``j`` up to the largest depth:
  ``stage{i}.block{j}.kernel`` and ``stage{i}.block{j}.expand``, active only when the
  stage's depth reaches ``j``.

The first block of a stage has the stage's stride and output width; the rest stride 1.
With the default stage layout, :meth:`MobileSpace.ancestor_genome` ``("mobilenet_v2")``
decodes exactly to ``baselines.get("mobilenet_v2", resolution=R)`` at the largest
resolution choice ``R``. For the default (CIFAR, 24/28/32) and ImageNet configs
(``conf/space/mobile.yaml``, ``mobile_imagenet.yaml``; checked by the tests)::

    mobilenet_v2, CIFAR (32):     2-1-1-0-0-2-0-2-0-0-0-0-2-0-0-2-0-2-0-2-0-0-3-0-0-2-0-2-0-2-
                                  0-2-2-0-0-2-0-2-0-2-0-0-2-0-0-2-0-2-0-2-0-0-0-0-0-2-0-0-0-0-0-0
    mobilenet_v2, ImageNet (224): the same with the first gene 4
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from nas.spec import ArchSpec, ConvBNAct, Head, Layer, MBConv
from search_spaces import baselines
from search_spaces.base import (
    SearchSpace,
    check_resolutions,
    config_error,
    float_choices,
    int_choices,
    int_list,
    per_stage,
)
from search_spaces.baselines import MOBILENET_V2_STAGES, make_divisible

# MobileNetV2's stages after the fixed first block (Sandler et al. 2018, Table 2).
_MV2_WIDTHS = tuple(c for _, c, _, _ in MOBILENET_V2_STAGES[1:])
_MV2_STRIDES = tuple(s for _, _, _, s in MOBILENET_V2_STAGES[1:])


@lru_cache(maxsize=256)
def _trunk(num_classes: int, resolution: int, in_channels: int,
           width: float) -> tuple[tuple[Layer, ...], tuple[Layer, ...]]:
    """(stem + first block, last conv + head) of MobileNetV2 at this width and resolution."""
    layers = baselines.mobilenet_v2(num_classes=num_classes, resolution=resolution,
                                    in_channels=in_channels, width=width).layers
    head, tail = layers[:2], layers[-2:]
    if not (isinstance(head[0], ConvBNAct) and isinstance(head[1], MBConv)
            and isinstance(tail[0], ConvBNAct) and isinstance(tail[1], Head)):
        raise RuntimeError("baselines.mobilenet_v2 no longer starts with stem + first MBConv "
                           "and ends with 1x1 conv + head; update search_spaces.mobile")
    return head, tail


class MobileSpace(SearchSpace):
    """MBConv stages with searchable depth, kernel, expansion and SE, a width multiplier
    and the input resolution (see the module docstring).

    Args:
        num_classes: classifier outputs.
        in_channels: input image channels.
        widths: output channels of each stage at width 1.0 (the number of stages).
        strides: stride of each stage's first block.
        depths: block-count choices, one list for every stage or one list per stage.
        kernels: depthwise kernel choices.
        expansions: MBConv expansion ratio choices.
        se: SE ratio choices (relative to the block's input channels; 0 = no SE).
        width_mults: width multiplier choices.
        resolutions: input resolution choices (all CIFAR-size or all ImageNet-size).
    """

    name = "mobile"
    ANCESTORS = ("mobilenet_v2",)

    def __init__(self, *, num_classes: int = 10, in_channels: int = 3,
                 widths: Any = _MV2_WIDTHS, strides: Any = (1, 2, 2, 1, 2, 1),
                 depths: Any = (1, 2, 3, 4), kernels: Any = (3, 5, 7),
                 expansions: Any = (3, 4, 6), se: Any = (0.0, 0.25),
                 width_mults: Any = (0.75, 1.0, 1.25), resolutions: Any = (24, 28, 32)) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels)
        n = self.name
        self.widths = int_list(n, "widths", widths)
        self.strides = int_list(n, "strides", strides)
        if len(self.strides) != len(self.widths):
            raise config_error(n, "strides", list(self.strides),
                                f"needs one stride per stage ({len(self.widths)} stages from "
                                f"widths)")
        self.depths = per_stage(n, "depths", depths, len(self.widths), int_choices)
        self.kernels = int_choices(n, "kernels", kernels)
        for k in self.kernels:
            if k % 2 == 0:
                raise config_error(n, "kernels", list(self.kernels),
                                    f"kernel sizes must be odd ('same' padding), got {k}")
        self.expansions = float_choices(n, "expansions", expansions, lo=1.0)
        self.se = float_choices(n, "se", se, lo=0.0)
        self.width_mults = float_choices(n, "width_mults", width_mults, lo=0.0, lo_open=True)
        self.resolution_choices = int_choices(n, "resolutions", resolutions)
        check_resolutions(n, self.resolution_choices)
        self._check_width_mults()

        self._add_gene("resolution", self.resolution_choices, "input resolution")
        self._add_gene("width", self.width_mults, "width multiplier")
        for i, depth_choices in enumerate(self.depths, 1):
            stage = f"stage{i}"
            self._add_gene(f"{stage}.depth", depth_choices, f"number of blocks in stage {i}")
            self._add_gene(f"{stage}.se", self.se, f"SE ratio of stage {i}'s blocks")
            for j in range(1, max(depth_choices) + 1):
                when = (f"{stage}.depth", [v for v, d in enumerate(depth_choices) if d >= j])
                self._add_gene(f"{stage}.block{j}.kernel", self.kernels, "kernel size",
                               active_if=when)
                self._add_gene(f"{stage}.block{j}.expand", self.expansions,
                               "expansion ratio", active_if=when)

    def _check_width_mults(self) -> None:
        # Two multipliers that round to the same channels everywhere would be one network
        # under two canonical genomes.
        seen: dict[tuple, float] = {}
        r = max(self.resolution_choices)
        for w in self.width_mults:
            head, tail = _trunk(self.num_classes, r, self.in_channels, w)
            key = (head[0].c, head[1].c, tail[0].c) + tuple(
                make_divisible(c * w) for c in self.widths)
            if key in seen:
                raise config_error(self.name, "width_mults", list(self.width_mults),
                                    f"{seen[key]:g} and {w:g} round to the same channels; "
                                    f"keep one")
            seen[key] = w

    def _stage_widths(self, width: float) -> list[int]:
        return [make_divisible(c * width) for c in self.widths]

    def parts(self, values: dict[str, Any]) -> tuple[tuple[Layer, ...],
                                                      list[list[MBConv]], tuple[Layer, ...]]:
        """The network of decoded gene ``values`` (:meth:`values`) in three parts: the fixed
        front (stem + first block), the MBConv blocks of each stage, the fixed back (last
        conv + head). ``decode`` concatenates them; ``nas.supernet`` reads the same parts."""
        v = values
        head, tail = _trunk(self.num_classes, v["resolution"], self.in_channels, v["width"])
        stages = []
        for i, (c, s) in enumerate(zip(self._stage_widths(v["width"]), self.strides), 1):
            stages.append([MBConv(c=c, k=v[f"stage{i}.block{j}.kernel"],
                                  e=v[f"stage{i}.block{j}.expand"], s=s if j == 1 else 1,
                                  se=v[f"stage{i}.se"])
                           for j in range(1, v[f"stage{i}.depth"] + 1)])
        return head, stages, tail

    def _build(self, v: dict[str, Any]) -> list[Layer]:
        head, stages, tail = self.parts(v)
        return [*head, *(b for blocks in stages for b in blocks), *tail]

    def _encode(self, spec: ArchSpec) -> list[int]:
        layers = spec.layers
        res = spec.input[1]
        width = next((w for w in self.width_mults
                      if _trunk(self.num_classes, res, self.in_channels, w)
                      == (layers[:2], layers[-2:])), None)
        if width is None:
            raise ValueError("its stem, first block, last conv and head are not MobileNetV2's "
                             "at any width multiplier choice")
        blocks = list(layers[2:-2])
        genes = {"resolution": self.index_of("resolution", res),
                 "width": self.index_of("width", width)}
        pos = 0
        for i, (c, s) in enumerate(zip(self._stage_widths(width), self.strides), 1):
            stage = f"stage{i}"
            n = 0
            while (pos + n < len(blocks) and n < max(self.depths[i - 1])
                   and isinstance(blocks[pos + n], MBConv) and blocks[pos + n].c == c
                   and blocks[pos + n].s == (s if n == 0 else 1)):
                n += 1
            if n == 0:
                raise ValueError(f"no MBConv with {c} channels and stride {s} starts stage {i}")
            genes[f"{stage}.depth"] = self.index_of(f"{stage}.depth", n)
            genes[f"{stage}.se"] = self.index_of(f"{stage}.se", blocks[pos].se)
            for j, b in enumerate(blocks[pos:pos + n], 1):
                genes[f"{stage}.block{j}.kernel"] = self.index_of(f"{stage}.block{j}.kernel", b.k)
                genes[f"{stage}.block{j}.expand"] = self.index_of(f"{stage}.block{j}.expand",
                                                                b.e)
            pos += n
        if pos != len(blocks):
            raise ValueError(f"{len(blocks) - pos} block(s) left after the last stage")
        return [genes.get(g.name, 0) for g in self.genes]

    def _config(self) -> dict[str, Any]:
        return {"widths": list(self.widths), "strides": list(self.strides),
                "depths": [list(d) for d in self.depths], "kernels": list(self.kernels),
                "expansions": list(self.expansions), "se": list(self.se),
                "width_mults": list(self.width_mults),
                "resolutions": list(self.resolution_choices)}
