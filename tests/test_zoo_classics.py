"""The classic and multi-objective NAS networks added to the zoo (LeNet-5 as published,
GoogLeNet's auxiliary classifiers, pre-activation ResNet-200, FractalNet's global drop-path,
MUXNet, NSGA-Net) against their publications. The layers they brought (``pick``, ``s2d``,
``d2s``, ``rbf``, ``mux``, ``cell``, ``join`` with global drop-path) are drawn by
``nas.fuzz`` and so checked against PyTorch's counters with every other layer in
test_cost.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nas import cost as C
from nas import spec as S
from nas.build import build
from nas.commands.cost import main as cost_main
from search_spaces import baselines

# --------------------------------------------------------------------------------------------
# LeNet-5 as published (LeCun et al. 1998, section II.B and Table I)
# --------------------------------------------------------------------------------------------

# Per layer, the paper's trainable parameters and connections (section II.B): C1 156 /
# 122,304; S2 12 / 5,880; C3 1,516 / 151,600; S4 32 / 2,000; C5 48,120 (a convolution, as
# many connections); F6 10,164; the RBF output 840 connections, fixed parameters. In all
# 60,000 trainable parameters and 340,908 connections.
LENET5_PAPER = [("C1", 156, 122_304), ("S2", 12, 5_880), ("C3", 1_516, 151_600),
                ("S4", 32, 2_000), ("C5", 48_120, 48_120), ("F6", 10_164, 10_164),
                ("output", 0, 840)]


def test_lenet5_1998_has_the_papers_parameters_and_connections():
    spec = baselines.get("lenet5_1998")
    c = C.cost(spec)
    assert c.params == 60_000
    rows = [r for r in c.layers if r.type not in ("act", "flatten")]
    # C1, S2 (pool + coefficient), C3, S4 (pool + coefficient), C5, F6, output
    groups = [rows[0:1], rows[1:3], rows[3:4], rows[4:6], rows[6:7], rows[7:8], rows[8:9]]
    for (name, params, connections), group in zip(LENET5_PAPER, groups, strict=True):
        assert sum(r.params for r in group) == params, name
        biases = sum(r.out_shape[0] * (r.out_shape[1] * r.out_shape[2] if len(r.out_shape) == 3
                                       else 1) for r in group if r.params and r.type != "rbf")
        if name.startswith("S"):  # four inputs summed per unit, plus the bias
            got = sum(r.pool_ops for r in group) + biases
        else:  # one multiply-accumulate per input, plus the bias
            got = sum(r.macs for r in group) + biases
        assert got == connections, name
    assert c.macs == 328_096  # the connections less biases and subsampling sums, plus the
    # 1,576 coefficient multiplications of S2 and S4


def test_lenet5_1998_c3_reads_the_s2_maps_of_table_1():
    spec = baselines.get("lenet5_1998")
    net = build(spec, seed=0)
    c3 = net.layers[5]
    x = torch.randn(1, 6, 14, 14, requires_grad=True)
    table = [m for group in baselines.LENET5_C3 for m in group]
    assert len(table) == 16 and sum(map(len, table)) == 60
    for j, maps in enumerate(table):
        (grad,) = torch.autograd.grad(c3(x)[0, j].sum(), x)
        read = {i for i in range(6) if grad[0, i].abs().sum() > 0}
        assert read == set(maps), j


def test_lenet5_1998_trains_with_cross_entropy_on_its_rbf_outputs(one_thread):
    net = build(baselines.get("lenet5_1998"), seed=0).train()
    x, y = torch.randn(8, 1, 32, 32), torch.randint(0, 10, (8,))
    loss = nn.functional.cross_entropy(net(x), y)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in net.parameters())


# --------------------------------------------------------------------------------------------
# GoogLeNet's auxiliary classifiers, pre-activation ResNet-200, FractalNet's drop-path
# --------------------------------------------------------------------------------------------


def test_googlenet_aux_heads_add_parameters_not_inference_macs():
    # Szegedy et al. 2015, section 5: two auxiliary classifiers on 4a (512 channels) and 4d
    # (528), each 5x5/3 average pool -> 1x1 conv 128 -> fc 1024 -> dropout 0.7 -> fc. With
    # torchvision's 3x3 "5x5" branch and conv-BN units this is torchvision's GoogLeNet with
    # aux_logits=True: 6,624,904 + 3,188,968 + 3,191,016 = 13,004,888 parameters ("about
    # 13M" in the notes); with the paper's 5x5 branches 13.39M.
    def head(cin: int) -> int:
        return cin * 128 + 2 * 128 + (128 * 16 * 1024 + 1024) + (1024 * 1000 + 1000)

    assert (head(512), head(528)) == (3_188_968, 3_191_016)
    for name, trunk in (("googlenet_k3", 6_624_904), ("googlenet", 7_005_832)):
        a, b = C.cost(baselines.get(f"{name}_aux")), C.cost(baselines.get(name))
        assert b.params == trunk and a.params == trunk + head(512) + head(528)
        assert a.macs == b.macs
    assert C.cost(baselines.get("googlenet_k3_aux")).params == 13_004_888
    assert round(C.cost(baselines.get("googlenet_aux")).params / 1e6) == 13
    spec = baselines.get("googlenet_aux")
    where = [spec.shapes()[i - 1] for i, x in enumerate(spec.layers) if x.type == "aux"]
    assert where == [(512, 14, 14), (528, 14, 14)]


def test_googlenet_aux_logits_in_training(one_thread):
    net = build(baselines.get("googlenet_aux", resolution=32, num_classes=7), seed=0).train()
    y = net(torch.randn(2, 3, 32, 32))
    assert y.shape == (2, 7) and [a.shape for a in net.aux_outputs()] == [(2, 7), (2, 7)]


def test_preact_resnet200_has_200_layers_and_resnet200s_convolutions():
    # He et al. 2016b, Table 5 (ResNet-200, pre-activation): stages of 3, 24, 36, 3
    # bottlenecks (the paper's Torch code); the paper gives no parameter or FLOP count:
    # 64,666,280 parameters and 15.01 GMACs at 224 here.
    spec = baselines.get("preact_resnet200")
    net = build(spec)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    # the stem and 3 x 66 bottleneck convs, the fc: 200 layers; plus 4 projection shortcuts
    assert len(convs) == 1 + 3 * (3 + 24 + 36 + 3) + 4
    c = C.cost(spec)
    assert (c.params, c.macs) == (64_666_280, 15_007_481_856)
    # The same convolutions as a post-activation ResNet-200 (stride on the 3x3, as
    # torchvision's): equal MACs; the BN layers sit elsewhere (input BN of each block, a
    # final BN-ReLU, none on the projections).
    post = baselines._spec("resnet200", 3, 224, baselines.resnet_stem(224) + baselines.resnet_stages(
        "bottle", (3, 24, 36, 3), (64, 128, 256, 512)) + [S.Head(c=1000)])
    p = C.cost(post)
    assert p.macs == c.macs

    def bns(kind: str) -> int:
        total, cin = 0, 64
        for n, w in zip((3, 24, 36, 3), (64, 128, 256, 512)):
            for j in range(n):
                proj = j == 0
                total += (2 * (cin + 2 * w) if kind == "pre"
                          else 2 * (2 * w + 4 * w) + (2 * 4 * w if proj else 0))
                cin = 4 * w
        return total + (2 * 2048 if kind == "pre" else 0)

    assert c.params - p.params == bns("pre") - bns("post")


def test_fractalnet_trains_with_local_and_global_drop_path():
    # Larsson et al. 2017, section 3.1: "we use a 50% mixture of local and global
    # sampling"; local joins drop each input with probability 0.15.
    spec = baselines.get("fractalnet")
    joins = [m for m in build(spec).modules() if type(m).__name__ == "JoinBranches"]
    # per block of 3 columns: the outer join and the inner one of each copy of f_2
    assert len(joins) == 5 * 3 and {(j.drop, j.glob) for j in joins} == {(0.15, 0.5)}
    assert {j.col for j in joins} == {1, 2}  # 3 columns
    local = baselines.fractalnet(global_path=0.0)
    assert (C.cost(spec).params, C.cost(spec).macs) == (C.cost(local).params,
                                                         C.cost(local).macs)


# --------------------------------------------------------------------------------------------
# MUXNet (Lu, Deb & Boddeti, CVPR 2020) and NSGA-Net (Lu et al., GECCO 2019)
# --------------------------------------------------------------------------------------------

# MUXConv paper, ImageNet table (and abstract: MUXNet-m "218M" multiply-adds): MUXNet-m 3.4M
# parameters / 218M MAdds, MUXNet-l 4.0M / 318M, at 224. Parameters match to the printed
# precision (3,354,276 and 4,041,178). The MACs here (conv and fc) are 0.55% / 0.49% under:
# the published figures come from the authors' counter (torchprofile), which also counts
# element-wise multiplications such as the SE gating (1.66M / 2.25M here).
MUXNET_PAPER = {"muxnet_m": (3.4e6, 218e6), "muxnet_l": (4.0e6, 318e6)}


@pytest.mark.parametrize("name", sorted(MUXNET_PAPER))
def test_muxnet_matches_the_papers_figures(name):
    params, macs = MUXNET_PAPER[name]
    c = C.cost(baselines.get(name))
    assert round(c.params / 1e5) * 1e5 == params
    assert abs(c.macs - macs) / macs < 0.006


# The authors' published models (README of ianwhale/nsga-net, "Pretrained models on
# CIFAR-10", micro search space): C=26 +4 with SE 1.97M parameters / 417M multiply-adds,
# C=34 +4 2.20M / 550M, C=36 +6 with SE 4.05M / 817M. Their parameter count leaves the
# auxiliary head out (it is a training device); their multiply-adds come from their
# counter, which adds to the conv and fc multiply-accumulates counted here (and a conv's
# bias) the elements of every BN (twice), ReLU and pooling input: with that convention the
# networks count 417.7M / 548.5M / 816.6M; without it 398.6M / 527.8M / 789.4M.
NSGANET_PAPER = {"nsganet_c26_se": (1.97e6, 417e6), "nsganet_c34": (2.20e6, 550e6),
                 "nsganet_c36_se": (4.05e6, 817e6)}


def _nsganet_counter(net: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds by the NSGA-Net authors' counting convention (see above)."""
    total = [0]

    def conv(m, i, o):
        total[0] += o[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * \
            m.kernel_size[1] + (o[0].numel() if m.bias is not None else 0)

    hooks = {nn.Conv2d: conv,
             nn.BatchNorm2d: lambda m, i, o: total.__setitem__(0, total[0] + 2 * i[0][0].numel()),
             nn.ReLU: lambda m, i, o: total.__setitem__(0, total[0] + o[0].numel()),
             nn.Linear: lambda m, i, o: total.__setitem__(0, total[0] + m.weight.numel()),
             nn.MaxPool2d: lambda m, i, o: total.__setitem__(0, total[0] + i[0][0].numel()),
             nn.AvgPool2d: lambda m, i, o: total.__setitem__(0, total[0] + i[0][0].numel()),
             nn.AdaptiveAvgPool2d: lambda m, i, o: total.__setitem__(0, total[0] + i[0][0].numel())}
    for m in net.modules():
        if type(m) in hooks:
            m.register_forward_hook(hooks[type(m)])
    with torch.no_grad():
        net.eval()(x)
    return total[0]


@pytest.mark.parametrize("name", sorted(NSGANET_PAPER))
def test_nsganet_matches_the_authors_published_models(name, one_thread):
    params, madds = NSGANET_PAPER[name]
    spec = baselines.get(name)
    aux = sum(C.layer_cost(x, shape)[1] for x, shape in zip(spec.layers, [spec.input,
                                                                        *spec.shapes()])
              if x.type == "aux")
    assert round((C.cost(spec).params - aux) / 1e4) * 1e4 == params
    counted = _nsganet_counter(build(spec, seed=0), torch.randn(1, 3, 32, 32))
    assert abs(counted - madds) / madds < 0.005


def test_nsganet_cells_follow_the_genotype():
    spec = baselines.get("nsganet_c34")
    cells = [x for x in spec.layers if x.type == "cell"]
    assert len(cells) == 20
    assert [i for i, x in enumerate(cells) if x.red] == [6, 13]
    assert [x.rp for x in cells].count(True) == 2 and cells[7].rp and cells[14].rp
    assert [x.c for x in cells] == [34 + 4 * i for i in range(20)]
    assert spec.shapes()[-3][1:] == (8, 8)  # the last cell at 8x8


@pytest.mark.parametrize(("name", "resolution"), [("muxnet_m", 64), ("nsganet_c26_se", 32)])
def test_moea_nets_train_a_step(name, resolution, one_thread):
    spec = baselines.get(name, resolution=resolution, num_classes=5)
    net = build(spec, seed=0).train()
    y = net(torch.randn(2, 3, resolution, resolution))
    loss = y.square().mean() + sum(a.square().mean() for a in net.aux_outputs())
    loss.backward()
    assert y.shape == (2, 5) and all(p.grad is not None for p in net.parameters())


def test_cost_list_names_the_new_nets_with_their_sources(capsys):
    assert cost_main(["--list"]) == 0
    out = capsys.readouterr().out
    for name, source in (("muxnet_m", "Lu, Deb & Boddeti 2020"), ("nsganet_c34", "Lu 2019"),
                         ("lenet5_1998", "LeCun 1998"), ("googlenet_aux", "Szegedy 2015"),
                         ("preact_resnet200", "He 2016")):
        line = next(x for x in out.splitlines() if x.split()[0] == name)
        assert source in line, line
