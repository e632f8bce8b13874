"""Analytic cost model: MACs, parameters, activations and memory from a spec alone.

Definitions (per sample unless a batch is given):

* **MACs**: multiply-accumulates of convolutions and fully connected layers, bias excluded:
  ``C_out * H_out * W_out * (C_in / groups) * k_h * k_w`` per conv, ``F_in * F_out`` per fc
  and per RBF output layer (its distances as dot products, LeCun et al. 1998, eq. 7).
  Auxiliary classifiers (``aux[...]``) run only while training and add no MACs.
  This is exactly half of what ``torch.utils.flop_counter.FlopCounterMode`` reports for a
  forward pass of the built model, and what torchvision's model tables call "GFLOPS".
* **FLOPs** = 2 x MACs (the FlopCounterMode convention).
* **params**: trainable parameters, exactly ``sum(p.numel() for p in model.parameters())``
  (BN contributes its weight and bias; running statistics are buffers; PReLU one slope per
  channel; auxiliary classifiers count; LeNet-5's fixed RBF prototypes do not).
* **activations**: elements of every tensor the forward pass creates (outputs of conv, BN,
  activations, pooling, dropout, fc, add, concat and gate); views (flatten, identity) and
  the input are not counted.
* **stored**: the activations training keeps for the backward pass, by the convention of
  the CS231n notes' VGG-16 walk-through (a layer's output is stored; ReLU and dropout run
  in place): ``activations`` less the outputs of element-wise layers that can overwrite
  their input (every activation function, dropout, ``scale``). Normalisation layers (BN,
  LRN), pooling, add / concat / gate outputs make new tensors and count.
* **pool_ops**: comparisons/additions of pooling layers (output elements x window; global
  pooling: input elements); not part of MACs.
* **memory** (training rule of thumb, the same notes): ``2 x batch x stored x 4 B`` (forward
  activations kept for backward, and their gradients) ``+ 3 x params x 4 B`` (weights,
  gradients, one optimiser state), float32. ``inplace=False`` counts every activation
  instead (no layer in place), the rule before the notes' convention was adopted: VGG-16
  at batch 128 needs 17.1 GB by the notes' rule and 31.0 GB by that one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from nas import spec as S


@dataclass(frozen=True)
class LayerCost:
    """Cost of one top-level layer of a spec."""

    name: str
    type: str
    out_shape: tuple[int, ...]
    activations: int
    macs: int
    params: int
    pool_ops: int
    stored: int = 0

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def memory_bytes(self, batch: int = 1, *, inplace: bool = True) -> int:
        return memory_bytes(self.stored if inplace else self.activations, self.params, batch)

    def row(self, batch: int = 1, *, inplace: bool = True) -> dict:
        return {"name": self.name, "type": self.type, "out_shape": list(self.out_shape),
                "activations": self.activations, "stored": self.stored, "macs": self.macs,
                "flops": self.flops, "params": self.params, "pool_ops": self.pool_ops,
                "memory": self.memory_bytes(batch, inplace=inplace)}


@dataclass(frozen=True)
class Cost:
    """Totals and per-layer rows for a whole spec."""

    macs: int
    params: int
    activations: int
    pool_ops: int
    layers: tuple[LayerCost, ...] = ()
    stored: int = 0

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def memory_bytes(self, batch: int = 1, *, inplace: bool = True) -> int:
        return memory_bytes(self.stored if inplace else self.activations, self.params, batch)

    def total(self, batch: int = 1, *, inplace: bool = True) -> dict:
        return {"macs": self.macs, "flops": self.flops, "params": self.params,
                "activations": self.activations, "stored": self.stored,
                "pool_ops": self.pool_ops, "memory": self.memory_bytes(batch, inplace=inplace)}


def memory_bytes(activations: int, params: int, batch: int = 1) -> int:
    """Training-memory rule of thumb (see the module docstring): ``activations`` are the
    stored ones under the notes' convention (:attr:`Cost.stored`)."""
    return 2 * batch * activations * 4 + 3 * params * 4


def training_memory(spec: S.ArchSpec, batch: int = 1, *, inplace: bool = True) -> int:
    """Bytes to train ``spec`` at ``batch`` by the rule of thumb (the fast path of
    :meth:`Cost.memory_bytes`, for the out-of-memory check before training)."""
    params = stored = acts = 0
    shape = spec.input
    for layer, out in zip(spec.layers, spec.out_shapes):
        c = layer_cost(layer, shape)
        params += c[1]
        acts += c[2]
        stored += c[4]
        shape = out
    return memory_bytes(stored if inplace else acts, params, batch)


#: element-wise layers that can run in place: their outputs store nothing extra
_IN_PLACE = (S.Act, S.Dropout, S.Scale)


def _primitive(layer: S.Layer, inp: S.Shape, out: S.Shape) -> tuple[int, int, int, int]:
    """(macs, params, activations, pool_ops) of one primitive or combinator node."""
    t = type(layer)
    n_out = math.prod(out)
    if t is S.Conv:
        per_out = (inp[0] // layer.g) * layer.k * (layer.k if layer.kw is None else layer.kw)
        params = layer.c * per_out + (layer.c if layer.bias else 0)
        return n_out * per_out, params, n_out, 0
    if t is S.Linear:
        return inp[0] * layer.c, inp[0] * layer.c + (layer.c if layer.bias else 0), n_out, 0
    if t is S.BN:
        return 0, 2 * inp[0], n_out, 0
    if t is S.MaxPool or t is S.AvgPool:
        return 0, 0, n_out, n_out * layer.k * layer.k
    if t is S.GAP or t is S.AdaptiveAvgPool:
        return 0, 0, n_out, math.prod(inp)
    if t is S.Flatten or t is S.Identity or t is S.ChannelSplit:
        return 0, 0, 0, 0
    if t is S.Pick:
        return 0, 0, (0 if layer.view else n_out), 0  # a slice is a view, a gather a copy
    if t is S.RBF:
        # LeCun et al. 1998, eq. 7: one multiply-accumulate per connection; fixed prototypes
        # are not parameters
        return inp[0] * layer.c, (inp[0] * layer.c if layer.learn else 0), n_out, 0
    if t is S.Act and layer.fn == "prelu":
        return 0, inp[0], n_out, 0  # one learned slope per channel
    # Activations, LRN, dropout, option-A shortcut, space-to-depth / depth-to-space copies,
    # add / concat / gate outputs.
    return 0, 0, n_out, 0


def _accumulate(layer: S.Layer, shape: S.Shape, acc: list[int]) -> S.Shape:
    """Add the cost of ``layer`` on ``shape`` to ``acc`` (macs, params, activations,
    pool_ops, stored) and return its output shape: one recursive pass over the lowered
    primitives, each add/concat/gate counted as the tensor it creates."""
    t = type(layer)
    if t is S.Seq:
        for sub in layer.layers:
            shape = _accumulate(sub, shape, acc)
        return shape
    if t is S.Dag:
        # Live edges; every node that sums two or more of them creates one more tensor.
        n_in: dict[int, int] = {}
        for e, (_, j) in zip(layer.edges, layer.pairs):
            if type(e) is not S.Zero:
                _accumulate(e, shape, acc)
                n_in[j] = n_in.get(j, 0) + 1
        sums = math.prod(shape) * sum(1 for v in n_in.values() if v > 1)
        acc[2] += sums
        acc[4] += sums
        return tuple(shape)
    if t is S.Aux:
        # Inference never runs the auxiliary head: its parameters count, nothing else.
        side = [0, 0, 0, 0, 0]
        _accumulate(layer.branch, shape, side)
        acc[1] += side[1]
        return shape
    if t is S.Add or t is S.Concat or t is S.Gate or t is S.Join:
        for b in (layer.branches if t is not S.Gate else (layer.branch,)):
            _accumulate(b, shape, acc)
        out = S.out_shape(layer, shape)
    elif layer.kind == "block":
        return _accumulate(S.lowered(layer, shape), shape, acc)
    else:
        out = S.out_shape(layer, shape)
    a, b, c, d = _primitive(layer, shape, out)
    acc[0] += a
    acc[1] += b
    acc[2] += c
    acc[3] += d
    if t not in _IN_PLACE:
        acc[4] += c
    return out


@lru_cache(maxsize=65536)
def layer_cost(layer: S.Layer, shape: S.Shape) -> tuple[int, int, int, int, int]:
    """(macs, params, activations, pool_ops, stored) of ``layer`` on input ``shape``
    (memoised: layer specs are immutable, so a block met again in another spec costs a
    dict lookup)."""
    acc = [0, 0, 0, 0, 0]
    _accumulate(layer, shape, acc)
    return acc[0], acc[1], acc[2], acc[3], acc[4]


def totals(spec: S.ArchSpec) -> tuple[int, int, int]:
    """(macs, params, activations) of a spec: the fast path used inside the search."""
    macs = params = acts = 0
    shape = spec.input
    for layer, out in zip(spec.layers, spec.out_shapes):
        a, b, c, _, _ = layer_cost(layer, shape)
        macs += a
        params += b
        acts += c
        shape = out
    return macs, params, acts


def cost(spec: S.ArchSpec) -> Cost:
    """Full cost of a spec with one row per top-level layer."""
    rows = []
    shape = spec.input
    for i, (layer, out) in enumerate(zip(spec.layers, spec.shapes())):
        macs, params, acts, pool, stored = layer_cost(layer, shape)
        rows.append(LayerCost(name=f"{i}:{layer.token()}", type=layer.type, out_shape=out,
                              activations=acts, macs=macs, params=params, pool_ops=pool,
                              stored=stored))
        shape = out
    return Cost(macs=sum(r.macs for r in rows), params=sum(r.params for r in rows),
                activations=sum(r.activations for r in rows),
                pool_ops=sum(r.pool_ops for r in rows), layers=tuple(rows),
                stored=sum(r.stored for r in rows))


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23M' (SI prefixes; bytes use the same decimal prefixes)."""
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n:g}{unit}"


__all__ = ["Cost", "LayerCost", "cost", "human", "layer_cost", "memory_bytes", "totals",
           "training_memory"]
