"""ArchSpec: the one description of a network that everything else reads.

A spec is an input shape plus an ordered tuple of typed, frozen layer specs. Layers come in
three kinds:

* **primitives** (conv, bn, activations, pooling, lrn, dropout, flatten, fc, channel
  shuffle / split / ``pick``, space-to-depth ``s2d`` and depth-to-space ``d2s``, scale, zero,
  the RBF output layer ``rbf``, ...), which ``nas.build`` turns into one ``nn.Module`` each
  and ``nas.cost`` prices with a formula;
* **combinators** (``seq``, ``add``, ``concat``, ``gate``, ``join``, ``aux``, ``dag``), which
  wire sub-layers together;
* **blocks** (MBConv ``ir``, residual ``basic`` / ``bottle`` / ``preact``, ``incep``,
  ``dense``, ``trans``, ``dws``, ``cba``, ``head``, those of the later classic nets:
  ``bneck``, ``shuf1``, ``shuf2``, ``prebottle``, ``fractal``, MUXNet's ``mux``, the
  NASNet-style ``cell`` of NSGA-Net, and NAS-Bench-201's ``nb201`` / ``nb201r``), which
  *lower* to primitives and
  combinators given their input shape. Blocks never build modules or compute costs
  themselves, so the builder and the cost model cannot drift apart.

Shapes are ``(C, H, W)`` for feature maps and ``(F,)`` for flat feature vectors (after
``flatten``); a layer given the wrong kind, or producing an empty output, raises
:class:`SpecError` naming the layer and the shapes.

String form (timm-style tokens, documented here where it is parsed)::

    3x224x224 cba_c32_k3_s2_arelu6 ir_c16_e1 ir_c24_e6_s2*2 ... head_c1000_p0.2

The first token is the input shape ``CxHxW``. Every other token is ``type`` followed by
``_<key><value>`` for each field that differs from its default (keys are field names, matched
longest first; booleans are ``0``/``1``). ``incep`` writes its six branch widths positionally,
dash-separated. ``*N`` repeats a token N times. Combinators print as ``type[a b | c d]`` with
``|`` between branches (``gate[...]``, ``aux[...]`` hold one); specs round-trip through
JSON and through the string form, combinators included. ``nb201`` (the NAS-Bench-201 cell)
carries the benchmark's arch string verbatim after its type:
``nb201_|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|...|``.

The package, by job: :mod:`~nas.spec.layers` (fields, :class:`Layer`, primitives,
combinators, the base of blocks, the registry of layer types), :mod:`~nas.spec.blocks`,
:mod:`~nas.spec.nb201`, :mod:`~nas.spec.shapes` (shape inference), :mod:`~nas.spec.parse`
(the string form) and :mod:`~nas.spec.arch` (:class:`ArchSpec`); every public name is
importable from ``nas.spec``.
"""

from __future__ import annotations

from nas.spec.arch import (
    ArchSpec,
)
from nas.spec.blocks import (
    CELL_OPS,
    MUX_SCALES,
    BasicBlock,
    Bneck,
    Bottleneck,
    Cell,
    ConvBNAct,
    DenseLayer,
    DWSeparable,
    FractalBlock,
    Head,
    Inception,
    MBConv,
    MuxBlock,
    PreActBlock,
    PreActBottleneck,
    ShuffleV1Unit,
    ShuffleV2Unit,
    Transition,
    parse_cell_ops,
    split_channels,
    squeeze_excite,
)
from nas.spec.layers import (
    ACTIVATIONS,
    BN,
    GAP,
    LAYER_TYPES,
    LEARNED_ACTIVATIONS,
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
    dag_pairs,
    layer_from_dict,
    register,
)
from nas.spec.nb201 import (
    NB201_OPS,
    NB201Cell,
    NB201Reduction,
    dag_live_edges,
    nb201_arch_string,
    parse_nb201_arch,
)
from nas.spec.parse import (
    layer_from_token,
    layers_from_words,
)
from nas.spec.shapes import (
    clear_caches,
    lowered,
    out_shape,
)

__all__ = ["clear_caches", "ACTIVATIONS", "Act", "AdaptiveAvgPool", "Add", "ArchSpec", "Aux", "AvgPool", "BN", "BasicBlock", "Block", "Bneck", "Bottleneck", "CELL_OPS", "Cell", "ChannelShuffle", "ChannelSplit", "Concat", "Conv", "ConvBNAct", "DWSeparable", "Dag", "DenseLayer", "DepthToSpace", "Dropout", "Flatten", "FractalBlock", "GAP", "Gate", "Head", "Identity", "Inception", "Join", "LAYER_TYPES", "LEARNED_ACTIVATIONS", "LRN", "Layer", "Linear", "MBConv", "MUX_SCALES", "MaxPool", "MuxBlock", "NB201Cell", "NB201Reduction", "NB201_OPS", "PadShortcut", "Pick", "PreActBlock", "PreActBottleneck", "RBF", "Scale", "Seq", "Shape", "ShuffleV1Unit", "ShuffleV2Unit", "SpaceToDepth", "SpecError", "Transition", "Zero", "dag_live_edges", "dag_pairs", "layer_from_dict", "layer_from_token", "layers_from_words", "lowered", "nb201_arch_string", "out_shape", "parse_cell_ops", "parse_nb201_arch", "register", "split_channels", "squeeze_excite"]
