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
