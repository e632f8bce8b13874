"""Random valid ArchSpecs, for property tests of the builder and the cost model and for
benchmarks: every layer type, block and combinator appears with random settings (the tests
check that every registered type is drawn)."""

from __future__ import annotations

import numpy as np

from nas import spec as S


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _random_layer(rng: np.random.Generator, shape: S.Shape) -> S.Layer:
    c = int(shape[0])
    small = min(shape[1], shape[2])
    widths = [8, 12, 16, 24, 32]
    kind = _pick(rng, ["cba", "ir", "ir", "basic", "bottle", "incep", "dense", "trans", "dws",
                       "preact", "maxpool", "avgpool", "conv", "act", "lrn", "dropout", "seq",
                       "add", "concat", "gate", "bneck", "shuf2", "shuf1", "prebottle",
                       "shuffle", "split", "scale", "aux", "convkw", "join", "fractal",
                       "pick", "s2d", "mux", "mux_split", "mux_scales", "cell", "joinglob",
                       "aap"])
    s = 2 if (small >= 8 and rng.random() < 0.3) else 1
    if kind == "cba":
        g = _pick(rng, [g for g in (1, 2, 4) if c % g == 0])
        return S.ConvBNAct(c=g * int(rng.integers(2, 9)), k=_pick(rng, [1, 3, 5]), s=s, g=g,
                           a=_pick(rng, list(S.ACTIVATIONS) + [""]))
    if kind == "ir":
        return S.MBConv(c=_pick(rng, [c] + widths), k=_pick(rng, [3, 5, 7]),
                        e=float(_pick(rng, [1, 3, 4, 6])), s=s, se=_pick(rng, [0.0, 0.25]),
                        a=_pick(rng, ["relu6", "hswish", "silu"]))
    if kind == "basic":
        return S.BasicBlock(c=_pick(rng, [c] + widths), s=s, se=_pick(rng, [0.0, 1 / 16]),
                            sc=_pick(rng, ["A", "B"]) if _pick(rng, [c] + widths) >= c else "B")
    if kind == "bottle":
        g = _pick(rng, [1, 2, 4])
        return S.Bottleneck(c=_pick(rng, [c] + widths), m=g * int(rng.integers(2, 7)), s=s, g=g,
                            se=_pick(rng, [0.0, 0.25]))
    if kind == "incep":
        return S.Inception(b1=_pick(rng, [0, 8]), r3=_pick(rng, [0, 8]), b3=_pick(rng, [8, 16]),
                           r5=_pick(rng, [0, 4]), b5=_pick(rng, [4, 8]), pp=_pick(rng, [0, 8]),
                           k=_pick(rng, [3, 5]), f=bool(rng.random() < 0.3),
                           r=bool(rng.random() < 0.3))
    if kind == "dense":
        return S.DenseLayer(g=_pick(rng, [4, 8]), b=_pick(rng, [2, 4]))
    if kind == "trans" and small >= 2:
        return S.Transition(c=max(4, c // 2))
    if kind == "dws":
        return S.DWSeparable(c=_pick(rng, widths), k=_pick(rng, [3, 5]), s=s)
    if kind == "preact":
        return S.PreActBlock(c=_pick(rng, [c] + widths), s=s, drop=_pick(rng, [0.0, 0.2]))
    if kind in ("maxpool", "avgpool") and small >= 3:
        cls = S.MaxPool if kind == "maxpool" else S.AvgPool
        k = _pick(rng, [2, 3])
        return cls(k=k, s=_pick(rng, [1, 2]), p=_pick(rng, [0, 1]) if k == 3 else 0,
                   ceil=bool(rng.random() < 0.5))
    if kind == "conv":
        return S.Conv(c=_pick(rng, widths), k=_pick(rng, [1, 3]), s=s, d=_pick(rng, [1, 2]),
                      bias=bool(rng.random() < 0.5))
    if kind == "act":
        return S.Act(_pick(rng, list(S.ACTIVATIONS)))
    if kind == "lrn":
        return S.LRN(n=_pick(rng, [3, 5]))
    if kind == "dropout":
        return S.Dropout(p=0.1)
    if kind == "seq":
        return S.Seq((S.Conv(c=_pick(rng, widths), k=3), S.BN(), S.Act("relu")))
    if kind == "add":
        w = _pick(rng, widths)
        return S.Add((S.Seq((S.Conv(c=w, k=3), S.BN())), S.Seq((S.Conv(c=w, k=1), S.BN()))))
    if kind == "concat":
        return S.Concat((S.Identity(), S.Conv(c=_pick(rng, widths), k=3), S.MaxPool(k=3, s=1,
                                                                                     p=1)))
    if kind == "gate":
        return S.squeeze_excite(c, max(1, c // 4))
    if kind == "bneck":
        return S.Bneck(c=_pick(rng, [c] + widths), x=_pick(rng, [c, 2 * c, 3 * c]),
                       k=_pick(rng, [3, 5]), s=s, se=bool(rng.random() < 0.5),
                       a=_pick(rng, ["relu", "hswish"]))
    if kind == "shuf2":
        return S.ShuffleV2Unit(c=c if c % 2 == 0 and s == 1 else _pick(rng, widths), s=s)
    if kind == "shuf1":
        g = _pick(rng, [1, 2, 4])
        if s == 1:
            return S.ShuffleV1Unit(c=c, g=g if c % (4 * g) == 0 else 1, s=1)
        return S.ShuffleV1Unit(c=c + 8 * g, g=g, s=2, g1=bool(c % g == 0))
    if kind == "prebottle":
        return S.PreActBottleneck(c=_pick(rng, [c] + widths), m=_pick(rng, [4, 8]), s=s)
    if kind == "shuffle" and c % 2 == 0:
        return S.ChannelShuffle(g=2)
    if kind == "split" and c % 2 == 0:
        return S.Concat((S.ChannelSplit(n=2, i=1), S.Seq((S.ChannelSplit(n=2, i=0),
                                                           S.Conv(c=_pick(rng, widths), k=1)))))
    if kind == "scale":
        return S.Add((S.Seq((S.Conv(c=c, k=3), S.Scale(v=0.2))), S.Identity()))
    if kind == "aux":
        return S.Aux(S.Head(c=int(rng.integers(2, 10))))
    if kind == "join":
        w = _pick(rng, widths)
        return S.Join((S.Conv(c=w, k=3), S.Seq((S.Conv(c=w, k=1), S.BN()))),
                      drop=_pick(rng, [0.0, 0.5]))
    if kind == "fractal":
        return S.FractalBlock(c=_pick(rng, widths), cols=_pick(rng, [1, 2, 3]),
                              p=_pick(rng, [0.0, 0.1]))
    if kind == "pick":
        items = [str(int(rng.integers(c))) for _ in range(int(rng.integers(1, 6)))]
        if rng.random() < 0.5:
            a = int(rng.integers(c))
            items = [f"{a}:{int(rng.integers(a + 1, c + 1))}:{int(rng.integers(1, 3))}"]
        return S.Seq((S.Pick("-".join(items)), S.Conv(c=int(rng.integers(4, 17)), k=1)))
    if kind == "s2d" and shape[1] % 2 == 0 and shape[2] % 2 == 0:
        return S.Seq((S.SpaceToDepth(2), S.Conv(c=4 * c, k=3, g=_pick(rng, [1, c])),
                      S.DepthToSpace(2)))
    if kind == "mux":
        return S.MuxBlock(c=_pick(rng, [c, 8, 16]), k=_pick(rng, ["3", "5", "3.5", "3.5.7"]),
                          e=float(_pick(rng, [1, 3, 4])), s=s, se=_pick(rng, [0.0, 0.25]),
                          a=_pick(rng, ["silu", "relu", "hswish"]))
    if kind == "mux_split" and c % 2 == 0:
        return S.MuxBlock(c=c, k=_pick(rng, ["3", "5"]), e=float(_pick(rng, [2, 4])),
                          se=_pick(rng, [0.0, 0.75]), r=0.5, dg=2, g=2)
    if kind == "mux_scales" and shape[1] % 2 == 0:
        return S.MuxBlock(c=_pick(rng, [c, 8]), k=_pick(rng, ["3", "3.5.7"]), e=4.0,
                          sc=_pick(rng, ["dnu", "dn", "nu", "du"]), se=_pick(rng, [0.0, 0.5]))
    if kind == "cell" and c >= 4 and shape[1] % 2 == 0:
        ops = [f"{_pick(rng, S.CELL_OPS)}~{int(rng.integers(2 + n // 2))}" for n in range(6)]
        # the cell's two input states travel as one tensor: p channels of the first
        return S.Cell(c=2 * int(rng.integers(2, 5)), p=c // 2, ops="-".join(ops),
                      out=_pick(rng, ["2-3-4", "4", "3-2"]), red=bool(rng.random() < 0.4),
                      se=bool(rng.random() < 0.3))
    if kind == "joinglob":
        w = _pick(rng, [8, 16])
        return S.Join((S.Conv(c=w, k=3), S.Seq((S.Conv(c=w, k=1), S.BN()))),
                      drop=_pick(rng, [0.0, 0.15]), glob=_pick(rng, [0.5, 1.0]),
                      col=int(rng.integers(3)))
    if kind == "aap":  # adaptive pooling to a fixed size, growing or shrinking the map
        return S.AdaptiveAvgPool(o=_pick(rng, [1, 2, 3, small, small + 1]))
    if kind == "convkw":
        k = _pick(rng, [3, 5, 7])
        if rng.random() < 0.5:
            return S.ConvBNAct(c=_pick(rng, widths), k=1, kw=k, eps=1e-3)
        return S.Conv(c=_pick(rng, widths), k=k, kw=1, s=s)
    return S.BN()


def random_spec(rng: np.random.Generator, *, resolution: int | None = None,
                in_channels: int | None = None, num_classes: int | None = None,
                max_layers: int = 8) -> S.ArchSpec:
    """A random, shape-consistent spec (layers that would not fit are redrawn)."""
    res = resolution or int(_pick(rng, [8, 12, 16, 24, 32]))
    cin = in_channels or int(_pick(rng, [1, 3]))
    shape: S.Shape = (cin, res, res)
    layers: list[S.Layer] = [S.ConvBNAct(c=int(_pick(rng, [8, 16])), k=3)]
    shape = S.out_shape(layers[0], shape)
    for _ in range(int(rng.integers(1, max_layers + 1))):
        for _attempt in range(20):
            try:  # settings that do not fit (widths, kernels for the scales) are redrawn
                layer = _random_layer(rng, shape)
                new = S.out_shape(layer, shape)
            except S.SpecError:
                continue
            layers.append(layer)
            shape = new
            break
    classes = num_classes or int(rng.integers(2, 20))
    end = rng.random()
    if end < 0.4:
        layers.append(S.Head(c=classes, p=_pick(rng, [0.0, 0.2])))
    elif end < 0.55:  # LeNet-5's RBF output layer
        layers += [S.GAP(), S.Flatten(), S.RBF(c=classes, learn=bool(rng.random() < 0.5))]
    else:
        layers += [S.Flatten(), S.Linear(c=int(_pick(rng, [16, 32]))), S.Act("relu"),
                   S.Linear(c=classes, bias=bool(rng.random() < 0.8))]
    return S.ArchSpec(input=(cin, res, res), layers=tuple(layers), name="random")
