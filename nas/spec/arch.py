"""ArchSpec: a whole network, its input shape and its layers, with its JSON and string
forms."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from nas.spec.layers import (
    Layer,
    Shape,
    SpecError,
    _as_layers,
    layer_from_dict,
)
from nas.spec.parse import layers_from_words
from nas.spec.shapes import out_shape


@dataclass(frozen=True)
class ArchSpec:
    """A whole network: input shape (C, H, W) and an ordered tuple of layers."""

    input: tuple[int, int, int]
    layers: tuple[Layer, ...]
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        inp = self.input
        if (not isinstance(inp, (tuple, list)) or len(inp) != 3
                or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0
                           for x in inp)):
            raise SpecError(f"input: expected [channels, height, width] of positive integers, "
                            f"got {inp!r}")
        object.__setattr__(self, "input", tuple(inp))
        object.__setattr__(self, "layers", _as_layers(self.layers, "layers"))
        if not self.layers:
            raise SpecError("layers: a spec needs at least one layer")
        # Shape-check now (an inconsistent spec never exists) and keep the result.
        object.__setattr__(self, "_shapes", _layer_shapes(self.input, self.layers))

    def shapes(self) -> list[Shape]:
        """Output shape of every top-level layer."""
        return list(self._shapes)

    @property
    def out_shapes(self) -> tuple[Shape, ...]:
        """The same as :meth:`shapes`, as the stored tuple (no copy)."""
        return self._shapes

    @property
    def out_shape(self) -> Shape:
        return self.shapes()[-1]

    @property
    def num_classes(self) -> int:
        out = self.out_shape
        return out[0] if len(out) == 1 else math.prod(out)

    @property
    def resolution(self) -> int:
        return self.input[1]

    # Serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"name": self.name, "input": list(self.input),
                "layers": [x.to_dict() for x in self.layers]}

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_dict(cls, d: Any) -> ArchSpec:
        if not isinstance(d, dict):
            raise SpecError(f"spec: expected a JSON object with 'input' and 'layers', got "
                            f"{type(d).__name__}")
        for key in ("input", "layers"):
            if key not in d:
                raise SpecError(f"spec: missing field {key!r}")
        extra = set(d) - {"name", "input", "layers"}
        if extra:
            raise SpecError(f"spec: unknown field(s) {sorted(extra)}; allowed: name, input, "
                            f"layers")
        layers = d["layers"]
        if not isinstance(layers, list):
            raise SpecError("spec.layers: expected a list of layer objects")
        parsed = tuple(layer_from_dict(x, where=f"layers[{i}]") for i, x in enumerate(layers))
        return cls(input=tuple(d["input"]) if isinstance(d["input"], list) else d["input"],
                   layers=parsed, name=str(d.get("name", "")))

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError(f"spec JSON is malformed: {e}") from None
        return cls.from_dict(d)

    def to_string(self) -> str:
        """Short readable form: ``CxHxW tok tok*N ...`` (see the module docstring)."""
        toks = [x.token() for x in self.layers]
        out = ["x".join(map(str, self.input))]
        i = 0
        while i < len(toks):
            j = i
            while j + 1 < len(toks) and toks[j + 1] == toks[i]:
                j += 1
            n = j - i + 1
            out.append(toks[i] if n == 1 else f"{toks[i]}*{n}")
            i = j + 1
        return " ".join(out)

    def __str__(self) -> str:
        return self.to_string()

    @classmethod
    def from_string(cls, text: str, *, name: str = "") -> ArchSpec:
        parts = text.split()
        if not parts:
            raise SpecError("spec string is empty")
        m = re.fullmatch(r"(\d+)x(\d+)x(\d+)", parts[0])
        if not m:
            raise SpecError(f"spec string must start with the input shape CxHxW (e.g. "
                            f"3x224x224), got {parts[0]!r}")
        layers = layers_from_words(parts[1:])
        return cls(input=tuple(int(g) for g in m.groups()), layers=tuple(layers), name=name)


def _layer_shapes(inp: Shape, layers: tuple[Layer, ...]) -> tuple[Shape, ...]:
    """Output shapes of ``layers`` in turn; errors name the layer index and token."""
    shapes = []
    shape = inp
    for i, layer in enumerate(layers):
        try:
            shape = out_shape(layer, shape)
        except SpecError as e:
            raise SpecError(f"layers[{i}] {layer.token()}: {e}") from None
        shapes.append(shape)
    return tuple(shapes)
