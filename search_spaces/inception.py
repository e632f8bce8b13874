"""Inception space: the GoogLeNet trunk with searchable inception modules.

The trunk is ``baselines.googlenet`` at the decoded resolution: its stem (ImageNet: 7x7/2
conv, max-pool, 1x1 and 3x3 convs, max-pool; CIFAR-size: one 3x3 conv to 192 channels), its
max-pools after 3b and 4e, and its head; only the nine inception modules 3a..5b are
replaced. Per module ``M`` (genes ``M.b1``, ``M.r3``, ``M.b3``, ``M.r5``, ``M.b5``, ``M.pp``,
``M.f``, ``M.r``):

* six branch widths, each a multiplier of GoogLeNet's width for that slot (Szegedy et al.
  2015, Table 1), rounded with ``make_divisible(w * m, 8)``; multipliers that round to the
  same width are one choice, and multiplier 1.0 gives GoogLeNet's exact numbers;
* ``f``: the "5x5" branch as one ``k5 x k5`` conv (0) or two 3x3 convs (1, Szegedy 2016);
* ``r``: residual connection (1x1 projection back to the input width, add, ReLU;
  Inception-ResNet, Szegedy 2017).

Ancestor: ``googlenet`` (:meth:`InceptionSpace.ancestor_genome`) decodes exactly to
``baselines.get("googlenet", resolution=R)`` at the largest resolution ``R``; with the
default multipliers its genome is the same for the CIFAR and ImageNet configs (the
resolution gene has one choice in both; checked by the tests)::

    0-2-2-2-1-2-2-0-0-2-2-2-2-2-2-0-0-2-2-2-1-2-2-0-0-2-2-2-1-2-2-0-0-2-2-2-1-2-2-0-0-
    2-2-2-2-2-2-0-0-2-2-2-2-2-2-0-0-2-2-2-2-2-2-0-0-2-2-2-2-2-2-0-0

(the 5x5 reductions of 16 and 24 are gene value 1: 0.75 x 16 rounds to 16 too, so the
choices there are 8/16/24 and 16/24/32).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from nas.spec import ArchSpec, Inception, Layer
from search_spaces import baselines
from search_spaces.base import (
    SearchSpace,
    as_list,
    check_resolutions,
    config_error,
    float_choices,
    int_choices,
    int_list,
)
from search_spaces.baselines import GOOGLENET_MODULES, make_divisible

#: Positional widths of an inception module, in ``nas.spec.Inception`` order.
BRANCHES = ("b1", "r3", "b3", "r5", "b5", "pp")
_MEANING = {"b1": "1x1 branch width", "r3": "1x1 reduction before the 3x3",
            "b3": "3x3 branch width", "r5": "1x1 reduction before the 5x5",
            "b5": "5x5 branch width", "pp": "pool projection width"}


@lru_cache(maxsize=64)
def _trunk(num_classes: int, resolution: int, in_channels: int, k5: int) -> tuple[Layer, ...]:
    """GoogLeNet's layers at this resolution (the modules are replaced by the decoder)."""
    layers = baselines.googlenet(num_classes=num_classes, resolution=resolution,
                                 in_channels=in_channels, k5=k5).layers
    if sum(isinstance(x, Inception) for x in layers) != len(GOOGLENET_MODULES):
        raise RuntimeError("baselines.googlenet no longer has one inception layer per "
                           "GOOGLENET_MODULES entry; update search_spaces.inception")
    return layers


class InceptionSpace(SearchSpace):
    """GoogLeNet with searchable module widths, factorised 5x5 and residual connections
    (see the module docstring).

    Args:
        num_classes: classifier outputs.
        in_channels: input image channels.
        base_widths: per module 3a..5b, the six widths multipliers apply to (GoogLeNet's by
            default; smaller ones give a cheaper space of the same shape).
        multipliers: width multiplier choices for every branch.
        divisor: widths are rounded to multiples of this.
        k5: kernel of the unfactorised "5x5" branch.
        resolutions: input resolution choices (all CIFAR-size or all ImageNet-size).
    """

    name = "inception"
    ANCESTORS = ("googlenet", "googlenet_k3")

    def __init__(self, *, num_classes: int = 10, in_channels: int = 3,
                 base_widths: Any = None, multipliers: Any = (0.5, 0.75, 1.0, 1.25),
                 divisor: int = 8, k5: int = 5, resolutions: Any = (32,)) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels)
        n = self.name
        base = dict(GOOGLENET_MODULES if base_widths is None else base_widths)
        if set(base) != set(GOOGLENET_MODULES):
            raise config_error(n, "base_widths", sorted(base), f"needs exactly the modules "
                                f"{', '.join(GOOGLENET_MODULES)} (the trunk's slots)")
        self.base_widths = {m: int_list(n, f"base_widths.{m}", base[m])
                            for m in GOOGLENET_MODULES}
        for m, ws in self.base_widths.items():
            if len(ws) != len(BRANCHES):
                raise config_error(n, f"base_widths.{m}", list(ws),
                                    f"needs {len(BRANCHES)} widths ({'/'.join(BRANCHES)})")
        self.multipliers = float_choices(n, "multipliers", multipliers, lo=0.0, lo_open=True)
        self.divisor = int_choices(n, "divisor", [divisor])[0]
        self.k5 = int_choices(n, "k5", [k5])[0]
        if self.k5 % 2 == 0:
            raise config_error(n, "k5", k5, "must be odd ('same' padding)")
        self.resolution_choices = int_choices(n, "resolutions", as_list(n, "resolutions",
                                                                         resolutions))
        check_resolutions(n, self.resolution_choices)

        self._add_gene("resolution", self.resolution_choices, "input resolution")
        for m, ws in self.base_widths.items():
            for b, w in zip(BRANCHES, ws):
                widths = sorted({make_divisible(w * x, self.divisor) for x in self.multipliers})
                self._add_gene(f"{m}.{b}", widths, f"{_MEANING[b]} of module {m} (x"
                               f"{'/'.join(format(x, 'g') for x in self.multipliers)} of {w})")
            self._add_gene(f"{m}.f", (0, 1), f"module {m}: one {self.k5}x{self.k5} conv (0) or "
                           f"two 3x3 (1) in the 5x5 branch")
            self._add_gene(f"{m}.r", (0, 1), f"module {m}: residual connection")

    def _build(self, v: dict[str, Any]) -> list[Layer]:
        mods = iter(GOOGLENET_MODULES)
        out = []
        for layer in _trunk(self.num_classes, v["resolution"], self.in_channels, self.k5):
            if isinstance(layer, Inception):
                m = next(mods)
                layer = Inception(*(v[f"{m}.{b}"] for b in BRANCHES), k=self.k5,
                                  f=v[f"{m}.f"], r=v[f"{m}.r"])
            out.append(layer)
        return out

    def _encode(self, spec: ArchSpec) -> list[int]:
        genes = {"resolution": self.index_of("resolution", spec.input[1])}
        modules = [x for x in spec.layers if isinstance(x, Inception)]
        if len(modules) != len(GOOGLENET_MODULES):
            raise ValueError(f"{len(modules)} inception modules, the trunk has "
                             f"{len(GOOGLENET_MODULES)}")
        for m, layer in zip(GOOGLENET_MODULES, modules):
            for b in BRANCHES:
                genes[f"{m}.{b}"] = self.index_of(f"{m}.{b}", getattr(layer, b))
            genes[f"{m}.f"] = int(layer.f)
            genes[f"{m}.r"] = int(layer.r)
        return [genes[g.name] for g in self.genes]

    def _config(self) -> dict[str, Any]:
        return {"base_widths": {m: list(w) for m, w in self.base_widths.items()},
                "multipliers": list(self.multipliers), "divisor": self.divisor,
                "k5": self.k5, "resolutions": list(self.resolution_choices)}
