"""Residual space: ResNet / ResNeXt / SE-ResNet family with per-stage depth and width.

The stem is ``baselines.resnet_stem``: ``style='imagenet'`` (7x7/2 conv + 3x3/2 max-pool,
ImageNet-size resolutions) or ``'cifar'`` (3x3/1 conv, CIFAR-size resolutions); the stages
are ``baselines.resnet_stages`` (stride 2 at the first block of every stage but the first);
the head is global pooling + fc.

Genes, in order:

* ``resolution``: input resolution;
* ``block``: ``basic`` (two 3x3) or ``bottleneck`` (1x1-3x3-1x1, output 4 x width);
* ``groups`` (only when ``block`` is bottleneck, and only if the config offers bottlenecks):
  ResNeXt grouping ``(groups, base width)`` of the 3x3; middle width =
  ``width * base_width / 64 * groups`` (torchvision), ``(1, 64)`` being plain ResNet;
* ``se``: SE ratio relative to the block's output channels (0 = none, SENet uses 1/16);
* per stage ``i`` (1-based): ``stage{i}.depth`` and ``stage{i}.width``.

``shortcut`` picks what a block does when its shape changes: ``B`` a 1x1 projection, ``A``
parameter-free subsampling with zero-padded channels (He et al. 2016's CIFAR nets; needs
widths that never shrink from stage to stage).

Ancestors (:meth:`ResidualSpace.ancestor_genome`), decoding exactly to the baselines:

* ImageNet config (``conf/space/residual_imagenet.yaml``, 224):
  ``resnet18`` = 0-0-0-0-1-1-1-1-1-1-1-1, ``resnet34`` = 0-0-0-0-2-1-3-1-5-1-2-1,
  ``resnet50`` = 0-1-0-0-2-1-3-1-5-1-2-1,
  ``resnext50_32x4d`` = 0-1-1-0-2-1-3-1-5-1-2-1, ``se_resnet50`` = 0-1-0-1-2-1-3-1-5-1-2-1;
* CIFAR config (the default, ``conf/space/residual.yaml``, 32, option-A shortcuts):
  ``resnet20`` = 0-0-0-0-2-0-2-0-2-0, ``resnet32`` = 0-0-0-0-4-0-4-0-4-0,
  ``resnet44`` = 0-0-0-0-6-0-6-0-6-0, ``resnet56`` = 0-0-0-0-8-0-8-0-8-0.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

from nas.spec import ArchSpec, BasicBlock, Bottleneck, Head, Layer
from search_spaces.base import (
    SearchSpace,
    as_list,
    check_resolutions,
    config_error,
    float_choices,
    int_choices,
    one_of,
    per_stage,
)
from search_spaces.baselines import CIFAR_MAX_RESOLUTION, resnet_stages, resnet_stem

BLOCKS = ("basic", "bottleneck")
#: block gene label -> the name ``baselines.resnet_stages`` takes
_STAGE_BLOCK = {"basic": "basic", "bottleneck": "bottle"}


class ResidualSpace(SearchSpace):
    """Residual networks with searchable block type, grouping, SE, and per-stage depth and
    width (see the module docstring).

    Args:
        num_classes: classifier outputs.
        in_channels: input image channels.
        style: ``cifar`` (3x3/1 stem) or ``imagenet`` (7x7/2 + max-pool stem).
        stem_width: output channels of the stem conv.
        widths: per stage, the width choices (basic: output channels; bottleneck: the
            width before expansion x4). Its length is the number of stages.
        depths: block-count choices, one list for every stage or one list per stage.
        blocks: block type choices, from ``basic`` and ``bottleneck``.
        groups: ``[groups, base_width]`` choices for bottleneck 3x3 convs.
        se: SE ratio choices (0 = no SE).
        shortcut: ``A`` (zero-pad) or ``B`` (1x1 projection) when a block changes shape.
        resolutions: input resolution choices (matching ``style``).
    """

    name = "residual"
    ANCESTORS = ("resnet18", "resnet34", "resnet50", "resnext50_32x4d", "se_resnet50",
                 "resnet20", "resnet32", "resnet44", "resnet56", "resnet20_b", "resnet56_b")

    def __init__(self, *, num_classes: int = 10, in_channels: int = 3, style: str = "cifar",
                 stem_width: int = 16,
                 widths: Any = ((16, 24, 32), (32, 48, 64), (64, 96, 128)),
                 depths: Any = (1, 2, 3, 4, 5, 6, 7, 8, 9), blocks: Any = BLOCKS,
                 groups: Any = ((1, 64), (8, 8)), se: Any = (0.0, 0.0625),
                 shortcut: str = "A", resolutions: Any = (32,)) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels)
        n = self.name
        self.style = one_of(n, "style", style, ("cifar", "imagenet"))
        if isinstance(stem_width, bool) or not isinstance(stem_width, numbers.Integral) \
                or stem_width < 1:
            raise config_error(n, "stem_width", stem_width, "must be a positive integer")
        self.stem_width = int(stem_width)
        stage_lists = as_list(n, "widths", widths)
        if any(isinstance(w, (numbers.Number, str)) for w in stage_lists):
            raise config_error(n, "widths", widths, "expected one list of width choices per "
                                "stage, e.g. [[16, 32], [32, 64], [64, 128]]")
        self.widths = tuple(int_choices(n, f"widths[{i}]", w) for i, w in enumerate(stage_lists))
        self.depths = per_stage(n, "depths", depths, len(self.widths), int_choices)
        block_list = as_list(n, "blocks", blocks)
        for b in block_list:
            one_of(n, "blocks", b, BLOCKS)
        if len(set(block_list)) != len(block_list):
            raise config_error(n, "blocks", list(block_list), "choices must be distinct")
        self.blocks = tuple(str(b) for b in block_list)
        self.groups = self._parse_groups(groups)
        self.se = float_choices(n, "se", se, lo=0.0)
        self.shortcut = one_of(n, "shortcut", shortcut, ("A", "B"))
        self.resolution_choices = int_choices(n, "resolutions", resolutions)
        check_resolutions(n, self.resolution_choices)
        cifar = self.style == "cifar"
        if cifar != (self.resolution_choices[0] < CIFAR_MAX_RESOLUTION):
            raise config_error(n, "resolutions", list(self.resolution_choices),
                                f"style {self.style!r} needs {'CIFAR' if cifar else 'ImageNet'}"
                                f"-size resolutions ({'<' if cifar else '>='} "
                                f"{CIFAR_MAX_RESOLUTION}), the stem is chosen by resolution")
        if self.shortcut == "A":
            self._check_widths_grow()

        self._add_gene("resolution", self.resolution_choices, "input resolution")
        self._add_gene("block", self.blocks, "block type")
        if "bottleneck" in self.blocks:
            self._add_gene("groups", self.groups, "bottleneck grouping (groups x base width)",
                           active_if=("block", [self.blocks.index("bottleneck")]))
        self._add_gene("se", self.se, "SE ratio")
        for i, (d, w) in enumerate(zip(self.depths, self.widths), 1):
            self._add_gene(f"stage{i}.depth", d, f"number of blocks in stage {i}")
            self._add_gene(f"stage{i}.width", w, f"width of stage {i}")

    def _parse_groups(self, groups: Any) -> tuple[tuple[int, int], ...]:
        n = self.name
        items = as_list(n, "groups", groups)
        out = []
        for item in items:
            pair = list(item) if not isinstance(item, (str, bytes)) and \
                hasattr(item, "__iter__") else [item]
            if len(pair) != 2 or not all(isinstance(x, numbers.Integral) and
                                         not isinstance(x, bool) and x >= 1 for x in pair):
                raise config_error(n, "groups", item, "each choice must be [groups, "
                                    "base_width] of positive integers, e.g. [32, 4]")
            out.append((int(pair[0]), int(pair[1])))
        if len(set(out)) != len(out):
            raise config_error(n, "groups", out, "choices must be distinct")
        if "bottleneck" in self.blocks:
            for g, bw in out:
                for i, ws in enumerate(self.widths):
                    for w in ws:
                        if (w * bw) % 64:
                            raise config_error(
                                n, "groups", [g, bw], f"stage {i + 1} width {w} x base width "
                                f"{bw} / 64 is not an integer, so the middle width would be "
                                f"rounded; use widths that are multiples of "
                                f"{64 // math.gcd(64, bw)}")
        return tuple(out)

    def _check_widths_grow(self) -> None:
        prev = ("stem_width", self.stem_width)
        for i, ws in enumerate(self.widths):
            if min(ws) < prev[1]:
                raise config_error(self.name, f"widths[{i}]", list(ws),
                                    f"shortcut 'A' zero-pads channels and cannot shrink them: "
                                    f"{prev[0]} can be {prev[1]} but this stage {min(ws)}; "
                                    f"use shortcut 'B' or non-overlapping width choices")
            prev = (f"widths[{i}]", max(ws))

    def parts(self, values: dict[str, Any]) -> tuple[tuple[Layer, ...], list[list[Layer]],
                                                      tuple[Layer, ...]]:
        """The network of decoded gene ``values`` (:meth:`values`) in three parts: the stem,
        the blocks of each stage, the head. ``decode`` concatenates them; ``nas.supernet``
        reads the same parts."""
        v = values
        g, bw = v.get("groups", (1, 64))
        n = len(self.widths)
        depths = tuple(v[f"stage{i}.depth"] for i in range(1, n + 1))
        blocks = resnet_stages(_STAGE_BLOCK[v["block"]], depths,
                               tuple(v[f"stage{i}.width"] for i in range(1, n + 1)),
                               groups=g, base_width=bw, se=v["se"])
        if self.shortcut != "B":
            blocks = [dataclasses.replace(b, sc=self.shortcut) for b in blocks]
        ends = [sum(depths[:i + 1]) for i in range(n)]
        stages = [blocks[e - d:e] for d, e in zip(depths, ends)]
        return (tuple(resnet_stem(v["resolution"], self.stem_width)), stages,
                (Head(c=self.num_classes),))

    def _build(self, v: dict[str, Any]) -> list[Layer]:
        stem, stages, head = self.parts(v)
        return [*stem, *(b for blocks in stages for b in blocks), *head]

    def _encode(self, spec: ArchSpec) -> list[int]:
        res = spec.input[1]
        stem = resnet_stem(res, self.stem_width)
        if list(spec.layers[:len(stem)]) != stem:
            raise ValueError(f"the stem is not {' '.join(x.token() for x in stem)}")
        blocks = spec.layers[len(stem):-1]
        first = blocks[0]
        block = "basic" if isinstance(first, BasicBlock) else \
            "bottleneck" if isinstance(first, Bottleneck) else None
        if block is None:
            raise ValueError(f"{first.token()} is neither a basic nor a bottleneck block")
        genes = {"resolution": self.index_of("resolution", res),
                 "block": self.index_of("block", block), "se": self.index_of("se", first.se)}
        stages: list[list[Layer]] = []
        for b in blocks:
            if not stages or getattr(b, "s", 1) == 2:
                stages.append([])
            stages[-1].append(b)
        if len(stages) != len(self.widths):
            raise ValueError(f"{len(stages)} stages, the space has {len(self.widths)}")
        for i, st in enumerate(stages, 1):
            w = st[0].c if block == "basic" else st[0].c // 4
            genes[f"stage{i}.depth"] = self.index_of(f"stage{i}.depth", len(st))
            genes[f"stage{i}.width"] = self.index_of(f"stage{i}.width", w)
        if block == "bottleneck":
            w = stages[0][0].c // 4
            pair = next((p for p in self.groups
                         if p[0] == first.g and w * p[1] // 64 * p[0] == first.m), None)
            if pair is None:
                raise ValueError(f"no grouping choice gives {first.token()}")
            genes["groups"] = self.index_of("groups", pair)
        return [genes.get(g.name, 0) for g in self.genes]

    def _config(self) -> dict[str, Any]:
        return {"style": self.style, "stem_width": self.stem_width,
                "widths": [list(w) for w in self.widths],
                "depths": [list(d) for d in self.depths], "blocks": list(self.blocks),
                "groups": [list(p) for p in self.groups], "se": list(self.se),
                "shortcut": self.shortcut, "resolutions": list(self.resolution_choices)}
