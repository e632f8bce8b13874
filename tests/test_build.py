"""nas.build: what the modules of the later primitives compute, and real forward passes of
the later classic nets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nas import cost as C
from nas import spec as S
from nas.build import build
from search_spaces import baselines


def _net(text: str) -> nn.Module:
    return build(S.ArchSpec.from_string(text), seed=0)


def test_prelu_slopes_are_learned_per_channel_and_counted():
    net = _net("3x8x8 conv_c6 prelu gap flatten fc_c2")
    prelus = [m for m in net.modules() if isinstance(m, nn.PReLU)]
    assert len(prelus) == 1 and prelus[0].weight.shape == (6,)
    c = C.cost(net.spec)
    assert c.params == sum(p.numel() for p in net.parameters()) == 6 * 27 + 6 + 6 * 2 + 2


@pytest.mark.parametrize(("fn", "x", "expected"), [
    ("lrelu", [-2.0, 0.0, 3.0], [-0.02, 0.0, 3.0]),  # slope 0.01
    ("elu", [-2.0, 0.0, 3.0], [-0.8646647, 0.0, 3.0]),  # exp(-2) - 1
    # LeNet-5's scaled tanh is built so that f(1) = 1 and f(-1) = -1 (LeCun 1998, app. A)
    ("stanh", [-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]),
])
def test_activation_values(fn, x, expected):
    act = build(S.ArchSpec.from_string(f"1x1x3 {fn}")).layers[0]
    y = act(torch.tensor(x).view(1, 1, 1, 3)).flatten()
    assert torch.allclose(y, torch.tensor(expected), atol=1e-4)


def test_channel_shuffle_and_split():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    shuffled = _net("6x1x1 shuffle_g2").layers[0](x).flatten().tolist()
    assert shuffled == [0, 3, 1, 4, 2, 5]  # (2, 3) -> transpose -> (3, 2)
    assert torch.equal(_net("6x1x1 shuffle_g3").layers[0](x), nn.ChannelShuffle(3)(x))
    second = _net("6x1x1 split_n3_i1").layers[0](x).flatten().tolist()
    assert second == [2, 3]
    with pytest.raises(S.SpecError, match="not divisible by 4"):
        S.ArchSpec.from_string("6x4x4 split_n4")


def test_non_square_kernels_keep_the_map_size():
    spec = S.ArchSpec.from_string("4x9x9 conv_c8_k1_kw7 conv_c8_k7_kw1 cba_c8_k1_kw3_eps0.001")
    assert spec.shapes() == [(8, 9, 9)] * 3
    conv = build(spec).layers[0]
    assert conv.kernel_size == (1, 7) and conv.padding == (0, 3)
    assert C.cost(spec).layers[0].macs == 8 * 81 * 4 * 7


def test_aux_head_runs_only_in_training_and_feeds_aux_outputs():
    spec = S.ArchSpec.from_string("3x8x8 cba_c8 aux[head_c5] head_c5")
    net = build(spec, seed=0)
    x = torch.randn(2, 3, 8, 8)
    net.train()
    assert net(x).shape == (2, 5)
    assert [o.shape for o in net.aux_outputs()] == [(2, 5)]
    net.eval()
    net(x)
    assert net.aux_outputs() == []
    assert C.cost(spec).params == sum(p.numel() for p in net.parameters())


def test_combinator_strings_parse_back():
    spec = baselines.get("inception_v3")
    text = spec.to_string()
    assert "aux[seq[" in text and "concat[" in text
    assert S.ArchSpec.from_string(text) == spec
    for bad, match in (("3x8x8 concat[conv_c4 | conv_c4", "unclosed"),
                       ("3x8x8 conv_c4]", "unbalanced"),
                       ("3x8x8 conv_c4 | conv_c4", "outside a combinator"),
                       ("3x8x8 add[conv_c4 conv_c4 | conv_c4]", "one layer")):
        with pytest.raises(S.SpecError, match=match):
            S.ArchSpec.from_string(bad)


SMALL = ["mobilenet_v3_small", "mobilenet_v3_large", "shufflenet_v2_x0_5", "shufflenet_v1_g3",
         "preact_resnet110", "preact_resnet164", "preact_resnet50", "plain18", "resnet50d",
         "vgg16_c", "lenet5_stanh"]


@pytest.mark.parametrize("name", SMALL)
def test_later_nets_train_a_step_on_real_tensors(name, one_thread):
    """A real forward and backward pass at the CIFAR form: every parameter gets a gradient
    (no dead branch), and the output has the class count."""
    torch.manual_seed(0)
    spec = baselines.get(name, resolution=32, num_classes=7)
    net = build(spec, seed=0).train()
    y = net(torch.randn(2, spec.input[0], 32, 32))
    assert y.shape == (2, 7)
    y.square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_inception_v3_forward_at_299_with_aux_logits(one_thread):
    net = build(baselines.get("inception_v3", num_classes=10), seed=0).train()
    y = net(torch.randn(2, 3, 299, 299))
    assert y.shape == (2, 10) and [a.shape for a in net.aux_outputs()] == [(2, 10)]


@pytest.mark.parametrize("name", ["inception_v4", "inception_resnet_v2", "shufflenet_v2_x2_0",
                                  "wide_resnet50_2"])
def test_large_later_nets_forward_at_their_imagenet_resolution(name, one_thread):
    spec = baselines.get(name, num_classes=10)
    with torch.no_grad():
        y = build(spec, seed=0).eval()(torch.randn(1, *spec.input))
    assert y.shape == (1, 10) and torch.isfinite(y).all()


def test_join_means_branches_and_drops_paths_only_while_training():
    spec = S.ArchSpec.from_string("1x1x1 join_drop0.5[scale_v1 | scale_v2 | scale_v4]")
    join = build(spec).layers[0]
    x = torch.ones(1, 1, 1, 1)
    assert join.eval()(x).item() == pytest.approx(7 / 3)
    join.train()
    torch.manual_seed(0)
    seen = {round(join(x).item(), 4) for _ in range(200)}
    # every non-empty subset's mean can appear; the empty one never does
    subsets = {1.0, 2.0, 4.0, 1.5, 2.5, 3.0, 7 / 3}
    assert seen <= {round(v, 4) for v in subsets} and len(seen) >= 5


def test_fractal_block_has_the_papers_columns():
    # C columns: 2^C - 1 conv units, the deepest column 2^(C-1) long (Larsson 2017, Fig. 1)
    spec = S.ArchSpec.from_string("3x8x8 fractal_c4_cols3_drop0")
    convs = [m for m in build(spec).modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 7

    def depth(layer: S.Layer) -> int:
        if isinstance(layer, S.Conv):
            return 1
        if isinstance(layer, S.Seq):
            return sum(depth(x) for x in layer.layers)
        if isinstance(layer, S.Join):
            return max(depth(b) for b in layer.branches)
        return 0

    assert depth(S.lowered(spec.layers[0], spec.input)) == 4


@pytest.mark.parametrize("name", ["resnet20", "mobilenet_v2", "googlenet", "densenet121"])
def test_bn_folded_keeps_the_outputs_and_puts_everything_back(name, one_thread):
    """Scoring's fast path: inside, every BN right after a convolution is folded into it
    (BN-first nets such as DenseNet keep their pre-activation BNs) and the outputs are the
    eval-mode net's; on exit the net has its BN layers, weights and training mode back."""
    from nas.build import bn_folded

    res = 64 if name in ("googlenet", "densenet121") else 32
    net = build(baselines.get(name, num_classes=10, resolution=res), seed=0)
    g = torch.Generator().manual_seed(0)
    for m in net.modules():  # non-trivial statistics, as after training or recalibration
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
            m.weight.data.uniform_(0.5, 1.5, generator=g)
            m.bias.data.normal_(0, 0.2, generator=g)
    x = torch.randn(4, 3, res, res, generator=g)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    modules = list(net.modules())
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in modules)
    with torch.no_grad():
        ref = net.eval()(x)
        net.train()
        with bn_folded(net) as folded:
            assert folded is net and not net.training
            out = net(x)
            left = sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
        assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4), float((out - ref).abs().max())
        assert net.training and list(net.modules()) == modules
        after = net.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert torch.equal(net.eval()(x), ref)
    assert n_bn > 0 and left < n_bn
    if name != "densenet121":  # every BN of these follows a convolution
        assert left == 0


# --------------------------------------------------------------------------------------------
# Channel picks, space-to-depth, RBF outputs, global drop-path, MUXConv and cells
# --------------------------------------------------------------------------------------------


def test_pick_slices_as_views_and_gathers_index_lists():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    rng = _net("8x1x1 pick_i2:5").layers[0]
    y = rng(x)
    assert y.flatten().tolist() == [2, 3, 4] and y.data_ptr() == x[:, 2:].data_ptr()
    assert _net("8x1x1 pick_i1:8:3").layers[0](x).flatten().tolist() == [1, 4, 7]
    assert _net("8x1x1 pick_i0-3-3-7").layers[0](x).flatten().tolist() == [0, 3, 3, 7]
    spec = S.ArchSpec.from_string("8x2x2 pick_i0-3-3-7 pick_i1 pick_i0:1")
    assert [r.activations for r in C.cost(spec).layers] == [16, 0, 0]  # only the gather copies
    for bad, match in (("8x1x1 pick_i9", "channel 9 does not exist"),
                       ("8x1x1 pick_i4:2", "is empty"), ("8x1x1 pick_ia", "not an index")):
        with pytest.raises(S.SpecError, match=match):
            S.ArchSpec.from_string(bad)


def test_space_to_depth_phases_are_the_factorized_reduction_samples():
    x = torch.randn(2, 3, 8, 8)
    net = _net("3x8x8 s2d d2s")
    y = net.layers[0](x)
    assert y.shape == (2, 12, 4, 4) and torch.equal(net.layers[1](y), x)
    # DARTS' factorized reduction samples x[::2, ::2] and x[1::2, 1::2]: channels 0::4, 3::4
    assert torch.equal(_net("12x4x4 pick_i0:12:4").layers[0](y), x[:, :, ::2, ::2])
    assert torch.equal(_net("12x4x4 pick_i3:12:4").layers[0](y), x[:, :, 1::2, 1::2])
    with pytest.raises(S.SpecError, match="multiples of 2"):
        S.ArchSpec.from_string("3x7x8 s2d")
    with pytest.raises(S.SpecError, match="not divisible by 4"):
        S.ArchSpec.from_string("6x4x4 d2s")


def test_rbf_outputs_the_negated_penalties_of_fixed_prototypes():
    net = _net("5x1x1 flatten rbf_c3")
    rbf = net.layers[1]
    assert sum(p.numel() for p in net.parameters()) == 0 == C.cost(net.spec).params
    w = rbf.prototypes
    assert w.shape == (3, 5) and set(w.unique().tolist()) <= {-1.0, 1.0}
    x = torch.randn(4, 5)
    penalty = ((x[:, None, :] - w[None]) ** 2).sum(-1)  # LeCun et al. 1998, eq. 7
    assert torch.allclose(rbf(x), -penalty, atol=1e-5)
    assert C.cost(net.spec).macs == 15
    learned = _net("5x1x1 flatten rbf_c3_learn1")
    assert sum(p.numel() for p in learned.parameters()) == 15 == C.cost(learned.spec).params
    with pytest.raises(S.SpecError, match="put 'flatten' before it"):
        S.ArchSpec.from_string("5x2x2 rbf_c3")


NESTED_JOINS = ("1x1x1 join_glob{g}_col2[scale_v1 | seq[join_glob{g}_col1[scale_v2 | "
                "seq[scale_v3 scale_v3]] join_glob{g}_col1[scale_v2 | seq[scale_v3 scale_v3]]]]")


def test_global_drop_path_keeps_one_column_of_the_whole_network():
    # Columns of a 3-column fractal as scales: the shallowest multiplies by 1, the middle one
    # by 2 x 2, the deepest by 3^4; a global pass keeps exactly one of them everywhere.
    net = build(S.ArchSpec.from_string(NESTED_JOINS.format(g=1)))
    x = torch.ones(1, 1, 1, 1)
    net.train()
    torch.manual_seed(0)
    seen = {net(x).item() for _ in range(60)}
    assert seen == {1.0, 4.0, 81.0}
    net.eval()
    assert net(x).item() == pytest.approx((1 + (2 + 9) / 2 * (2 + 9) / 2) / 2)
    # With glob=0.5 about half the passes are global, the rest mix columns locally.
    mixed = build(S.ArchSpec.from_string(NESTED_JOINS.format(g=0.5).replace(
        "join_", "join_drop0.5_"))).train()
    outs = [mixed(x).item() for _ in range(400)]
    share = sum(v in (1.0, 4.0, 81.0) for v in outs) / len(outs)
    assert 0.45 < share < 0.85  # global passes, plus the local ones that happen to agree
    assert len(set(outs)) > 3
    with pytest.raises(S.SpecError, match="join.glob is a probability"):
        S.ArchSpec.from_string("1x1x1 join_glob2[scale_v1 | scale_v2]")


def test_fractal_joins_name_their_columns():
    spec = S.ArchSpec.from_string("3x8x8 fractal_c4_cols3_glob0.5")
    joins = [m for m in build(spec).modules() if type(m).__name__ == "JoinBranches"]
    assert sorted((j.col, j.glob) for j in joins) == [(1, 0.5), (1, 0.5), (2, 0.5)]
    plain = S.ArchSpec.from_string("3x8x8 fractal_c4_cols3")
    assert (C.cost(spec).params, C.cost(spec).macs) == (C.cost(plain).params,
                                                         C.cost(plain).macs)


def test_mux_channel_multiplexing_passes_half_the_channels_through_the_shuffle():
    # r=0.5: the first 8 channels are processed, the last 8 pass; the 2-group shuffle
    # interleaves them, so every odd output channel is an untouched input channel.
    net = _net("16x8x8 mux_c16_k3_e2_se0.25_r0.5_dg2")
    x = torch.randn(2, 16, 8, 8)
    y = net.eval()(x)
    assert torch.equal(y[:, 1::2], x[:, 8:])
    assert not torch.allclose(y[:, 0::2], x[:, :8])
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.groups for c in convs if c.kernel_size == (3, 3)] == [8]  # 16 hidden / 2 per group
    with pytest.raises(S.SpecError, match="keeps the width"):
        S.ArchSpec.from_string("16x8x8 mux_c24_r0.5")


def test_mux_spatial_multiplexing_works_at_three_scales():
    spec = S.ArchSpec.from_string("8x8x8 mux_c8_k3.5.7_e3_scdnu")
    net = build(spec, seed=0)
    kinds = [type(m).__name__ for m in net.modules()]
    assert kinds.count("PixelUnshuffle") == 2 and kinds.count("PixelShuffle") == 2
    dw = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    # 24 hidden channels in 3 groups of 8: 8 -> 32 channels at 4x4 (d), 8 at 8x8 (n),
    # 8 -> 2 channels at 16x16 (u), each depthwise with its own kernel
    assert [(m.in_channels, m.groups, m.kernel_size[0]) for m in dw] == [(32, 32, 3), (8, 8, 5),
                                                                          (2, 2, 7)]
    assert net(torch.randn(2, 8, 8, 8)).shape == (2, 8, 8, 8)
    with pytest.raises(S.SpecError, match="one letter per channel group"):
        S.MuxBlock(c=8, sc="dx")


def test_cell_passes_s1_on_and_reduces_it_space_to_depth():
    ops = "sep3~0-skip~1-max3~2-dil3~0"
    normal = S.ArchSpec.from_string(f"24x8x8 cell_c8_p12_ops{ops}_out2-3")
    x = torch.randn(2, 24, 8, 8)
    y = build(normal, seed=0).eval()(x)
    assert y.shape == (2, 12 + 16, 8, 8) and torch.equal(y[:, :12], x[:, 12:])
    red = S.ArchSpec.from_string(f"24x8x8 cell_c8_p12_ops{ops}_out2-3_red1")
    y = build(red, seed=0).eval()(x)
    assert y.shape == (2, 48 + 16, 4, 4)
    assert torch.equal(y[:, :48], nn.PixelUnshuffle(2)(x[:, 12:]))
    for bad, match in (("sep3~0-skip~2", "state before node 2"), ("sep3~0", "two operations"),
                       ("conv3~0-skip~1", "unknown operation")):
        with pytest.raises(S.SpecError, match=match):
            S.Cell(c=8, p=12, ops=bad, out="2")
    with pytest.raises(S.SpecError, match="distinct nodes from 2 to 2"):
        S.Cell(c=8, p=12, ops="sep3~0-skip~1", out="3")
