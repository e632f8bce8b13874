"""Shape inference: the output shape of any layer on an input shape, blocks through
their lowering (both memoised: layers are immutable)."""

from __future__ import annotations

import math
from functools import lru_cache

from nas.spec.layers import (
    BN,
    GAP,
    LRN,
    RBF,
    Act,
    AdaptiveAvgPool,
    Add,
    Aux,
    AvgPool,
    Block,
    ChannelShuffle,
    ChannelSplit,
    Concat,
    Conv,
    Dag,
    DepthToSpace,
    Dropout,
    Flatten,
    Gate,
    Identity,
    Join,
    Layer,
    Linear,
    MaxPool,
    PadShortcut,
    Pick,
    Scale,
    Seq,
    Shape,
    SpaceToDepth,
    SpecError,
    Zero,
    _check_nonempty,
    _need_map,
    _spatial,
)


@lru_cache(maxsize=65536)
def lowered(layer: Layer, shape: Shape) -> Layer:
    """``layer.lower(shape)``, memoised (blocks are immutable)."""
    return layer.lower(shape)


def out_shape(layer: Layer, shape: Shape) -> Shape:
    """Output shape of ``layer`` on ``shape``; raises :class:`SpecError` when inconsistent."""
    return _out_shape(layer, tuple(shape))


@lru_cache(maxsize=65536)
def _out_shape(layer: Layer, shape: Shape) -> Shape:
    t = type(layer)
    if t is Conv:
        c, h, w = _need_map(layer, shape)
        if c % layer.g:
            raise SpecError(f"{layer.token()}: input channels {c} not divisible by groups "
                            f"{layer.g}")
        (kh, kw), (ph, pw) = layer.kernel, layer.padding_hw
        out = (layer.c, _spatial(layer, h, kh, layer.s, ph, layer.d),
               _spatial(layer, w, kw, layer.s, pw, layer.d))
        return _check_nonempty(layer, shape, out)
    if t is BN or t is Act or t is Dropout or t is Identity or t is LRN or t is Zero:
        if t is not Act and t is not Dropout and t is not Identity and t is not Zero:
            _need_map(layer, shape)
        return shape
    if t is MaxPool or t is AvgPool:
        c, h, w = _need_map(layer, shape)
        if layer.p * 2 > layer.k:
            raise SpecError(f"{layer.token()}: padding {layer.p} exceeds half the kernel "
                            f"{layer.k} (PyTorch rejects this)")
        out = (c, _spatial(layer, h, layer.k, layer.stride, layer.p, ceil=layer.ceil),
               _spatial(layer, w, layer.k, layer.stride, layer.p, ceil=layer.ceil))
        return _check_nonempty(layer, shape, out)
    if t is GAP:
        return (_need_map(layer, shape)[0], 1, 1)
    if t is Scale:
        return shape
    if t is ChannelShuffle or t is ChannelSplit:
        c = _need_map(layer, shape)[0]
        parts = layer.g if t is ChannelShuffle else layer.n
        if c % parts:
            raise SpecError(f"{layer.token()}: input channels {c} not divisible by {parts}")
        return shape if t is ChannelShuffle else (c // parts,) + tuple(shape[1:])
    if t is AdaptiveAvgPool:
        return (_need_map(layer, shape)[0], layer.o, layer.o)
    if t is Pick:
        c, h, w = _need_map(layer, shape)
        return (len(layer.indices(c)), h, w)
    if t is SpaceToDepth:
        c, h, w = _need_map(layer, shape)
        if h % layer.r or w % layer.r:
            raise SpecError(f"{layer.token()}: height and width {h}x{w} must be multiples of "
                            f"{layer.r}; use an input resolution divisible by the total "
                            f"downsampling")
        return (c * layer.r ** 2, h // layer.r, w // layer.r)
    if t is DepthToSpace:
        c, h, w = _need_map(layer, shape)
        if c % layer.r ** 2:
            raise SpecError(f"{layer.token()}: input channels {c} not divisible by "
                            f"{layer.r ** 2} (r^2)")
        return (c // layer.r ** 2, h * layer.r, w * layer.r)
    if t is RBF:
        if len(shape) != 1:
            raise SpecError(f"{layer.token()} needs a flat vector but gets a feature map "
                            f"{tuple(shape)}; put 'flatten' before it")
        return (layer.c,)
    if t is Flatten:
        return (math.prod(shape),)
    if t is Linear:
        if len(shape) != 1:
            raise SpecError(f"{layer.token()} needs a flat vector but gets a feature map "
                            f"{tuple(shape)}; put 'flatten' (or 'gap flatten') before it")
        return (layer.c,)
    if t is PadShortcut:
        c, h, w = _need_map(layer, shape)
        if layer.c < c:
            raise SpecError(f"{layer.token()}: cannot pad {c} channels down to {layer.c}")
        return (layer.c, -(-h // layer.s), -(-w // layer.s))
    if t is Seq:
        for i, sub in enumerate(layer.layers):
            try:
                shape = _out_shape(sub, shape)
            except SpecError as e:
                raise SpecError(f"[{i}] {e}") from None
        return shape
    if t is Add or t is Concat or t is Join:
        outs = []
        for i, b in enumerate(layer.branches):
            try:
                outs.append(_out_shape(b, shape))
            except SpecError as e:
                raise SpecError(f"{layer.type} branch {i}: {e}") from None
        if t is Add or t is Join:
            if any(o != outs[0] for o in outs):
                raise SpecError(f"add: branch output shapes differ {outs}; a residual "
                                f"connection needs equal shapes (use a projection shortcut)")
            return outs[0]
        if any(len(o) != 3 or o[1:] != outs[0][1:] for o in outs):
            raise SpecError(f"concat: branch spatial sizes differ {outs}")
        return (sum(o[0] for o in outs),) + outs[0][1:]
    if t is Dag:
        for e, (i, j) in zip(layer.edges, layer.pairs):
            if type(e) is Zero:
                continue
            try:
                o = _out_shape(e, shape)
            except SpecError as err:
                raise SpecError(f"dag edge {i}->{j}: {err}") from None
            if o != tuple(shape):
                raise SpecError(f"dag edge {i}->{j} maps {tuple(shape)} to {o}; every edge of a "
                                f"cell must keep its input's shape")
        return shape
    if t is Aux:
        try:
            _out_shape(layer.branch, shape)
        except SpecError as e:
            raise SpecError(f"aux branch: {e}") from None
        return shape
    if t is Gate:
        g = _out_shape(layer.branch, shape)
        if len(shape) != 3 or g != (shape[0], 1, 1):
            raise SpecError(f"gate: branch must give ({shape[0]}, 1, 1) on {shape}, gives {g}")
        return shape
    if isinstance(layer, Block):
        return _out_shape(lowered(layer, shape), shape)
    raise SpecError(f"unknown layer {layer!r}")


def clear_caches() -> None:
    """Forget every memoised lowering and shape (for timing a cold start)."""
    lowered.cache_clear()
    _out_shape.cache_clear()
