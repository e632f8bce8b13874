"""The analytic cost model against PyTorch's own counters and against published figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nas import cost as C
from nas.build import build
from nas.commands.cost import main as cost_main
from nas.fuzz import random_spec
from nas.spec import ArchSpec
from search_spaces import baselines


def torch_counts(spec: ArchSpec, *, device: str = "meta") -> tuple[int, int, tuple]:
    """(params, FlopCounterMode total / 2, output shape) of the built module.

    On the meta device the module is built and run without allocating or computing
    anything, so the counts come from PyTorch's dispatcher exactly as on real tensors."""
    with torch.device(device):
        net = build(spec).eval()
        x = torch.randn(2, *spec.input)
    params = sum(p.numel() for p in net.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        y = net(x)
    flops = fc.get_total_flops()
    assert flops % 4 == 0  # batch 2, 2 FLOPs per MAC
    return params, flops // 4, tuple(y.shape)


CASES = [(name, res) for name, info in baselines.BASELINES.items() for res in info.resolutions]


@pytest.mark.parametrize(("name", "resolution"), CASES, ids=[f"{n}@{r}" for n, r in CASES])
def test_baseline_cost_equals_pytorch_counters(name, resolution):
    spec = baselines.get(name, resolution=resolution)
    c = C.cost(spec)
    params, macs, out = torch_counts(spec)
    assert c.params == params
    assert c.macs == macs
    assert out == (2, spec.num_classes)
    assert c.flops == 2 * macs


@pytest.mark.parametrize("seed", range(120))
def test_random_spec_cost_equals_pytorch_counters(seed):
    spec = random_spec(np.random.default_rng(seed))
    c = C.cost(spec)
    params, macs, out = torch_counts(spec)
    assert (c.params, c.macs) == (params, macs), spec.to_string()
    assert out == (2, spec.num_classes)


@pytest.mark.parametrize("seed", range(6))
def test_random_spec_real_forward(seed):
    """The same equality on real CPU tensors (not only the meta device)."""
    spec = random_spec(np.random.default_rng(1000 + seed))
    c = C.cost(spec)
    params, macs, out = torch_counts(spec, device="cpu")
    assert (c.params, c.macs) == (params, macs)


# Published figures. torchvision: the "Params" and "GFLOPS" columns of the model tables at
# https://pytorch.org/vision/stable/models.html (weights' meta `num_params` and `_ops`);
# torchvision's "GFLOPS" are GMACs. Parameters must match exactly (same architecture),
# MACs within 0.5% of the 2-decimal figure.
TORCHVISION = {
    "resnet18": (11_689_512, 1.81), "resnet34": (21_797_672, 3.66),
    "resnet50": (25_557_032, 4.09), "resnet101": (44_549_160, 7.80),
    "resnet152": (60_192_808, 11.51),
    "vgg11": (132_863_336, 7.61), "vgg13": (133_047_848, 11.31),
    "vgg16": (138_357_544, 15.47), "vgg19": (143_667_240, 19.63),
    "vgg11_bn": (132_868_840, 7.61), "vgg13_bn": (133_053_736, 11.31),
    "vgg16_bn": (138_365_992, 15.47), "vgg19_bn": (143_678_248, 19.63),
    "mobilenet_v2": (3_504_872, 0.30), "resnext50_32x4d": (25_028_904, 4.23),
    "densenet121": (7_978_856, 2.83),
    # torchvision's GoogLeNet has a 3x3 conv in its "5x5" branch (documented in its source).
    "googlenet_k3": (6_624_904, 1.50),
}


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_published_figures(name):
    params, gmacs = TORCHVISION[name]
    c = C.cost(baselines.get(name, resolution=224, num_classes=1000))
    assert c.params == params
    assert abs(c.macs / 1e9 - gmacs) / gmacs < 0.005


# Figures from the papers, to the precision the paper prints.
PAPERS = {
    # He et al. 2016, Table 6: 0.27M / 0.46M / 0.66M / 0.85M / 1.7M parameters.
    "resnet20": (0.27e6, 0.01e6), "resnet32": (0.46e6, 0.01e6), "resnet44": (0.66e6, 0.01e6),
    "resnet56": (0.85e6, 0.01e6), "resnet110": (1.7e6, 0.1e6),
    # Zagoruyko & Komodakis 2016, Table 1 / text: WRN-28-10 has 36.5M parameters.
    "wrn28_10": (36.5e6, 0.1e6),
    # Howard et al. 2017, Table 8: 4.2M parameters (569M mult-adds checked below).
    "mobilenet_v1": (4.2e6, 0.1e6),
    # Hu et al. 2018, Table 2 (SE-ResNet-50): 28.09M parameters.
    "se_resnet50": (28.09e6, 0.01e6),
    # Krizhevsky et al. 2012 (section 1): 60 million parameters; one tower gives 62.4M.
    "alexnet": (62.4e6, 0.1e6),
}


@pytest.mark.parametrize("name", sorted(PAPERS))
def test_paper_parameter_counts(name):
    target, tol = PAPERS[name]
    info = baselines.BASELINES[name]
    c = C.cost(baselines.get(name, num_classes=info.num_classes))
    assert abs(c.params - target) <= tol / 2 + 1


def test_mobilenet_v1_mult_adds_match_paper():
    # Howard et al. 2017, Table 8: 569 million mult-adds at 224.
    c = C.cost(baselines.get("mobilenet_v1"))
    assert round(c.macs / 1e6) == 569


def test_lenet5_classic_parameter_count():
    assert C.cost(baselines.get("lenet5")).params == 61_706


def test_memory_rule_of_thumb():
    spec = baselines.get("resnet20")
    c = C.cost(spec)
    assert c.memory_bytes(128) == 2 * 128 * c.stored * 4 + 3 * c.params * 4
    assert c.memory_bytes(128, inplace=False) == 2 * 128 * c.activations * 4 + 3 * c.params * 4
    assert sum(r.memory_bytes(128) for r in c.layers) == c.memory_bytes(128)
    assert C.training_memory(spec, 128) == c.memory_bytes(128)
    assert C.training_memory(spec, 128, inplace=False) == c.memory_bytes(128, inplace=False)


def test_stored_activations_leave_out_in_place_layers():
    # conv 4x5x5 (100) -> BN (100) -> ReLU (in place) -> dropout (in place) -> scale (in
    # place) -> max-pool (4x2x2) -> LRN (a new tensor) -> flatten (a view) -> fc (3)
    spec = ArchSpec.from_string("3x5x5 conv_c4 bn relu dropout scale_v2 maxpool_k2 lrn "
                                "flatten fc_c3")
    c = C.cost(spec)
    assert c.stored == 100 + 100 + 16 + 16 + 3
    assert c.activations == c.stored + 3 * 100
    assert [r.stored for r in c.layers] == [100, 100, 0, 0, 0, 16, 16, 0, 3]


# The CS231n-style VGG-16 walk-through (the course notes' memory table): per CONV/POOL/FC
# layer at 224x224 its output volume, counted once forward and once backward at 4 bytes;
# the notes print the rounded element counts and, at batch 128, 14,733 MB (MiB) for these
# outputs and 1,584 MB for the 138M parameters, their gradients and momentum (16.3 GB).
VGG16_NOTES = [
    ("CONV3-64", (224, 224, 64), 3.2e6), ("CONV3-64", (224, 224, 64), 3.2e6),
    ("POOL2", (112, 112, 64), 800e3),
    ("CONV3-128", (112, 112, 128), 1.6e6), ("CONV3-128", (112, 112, 128), 1.6e6),
    ("POOL2", (56, 56, 128), 400e3),
    *[("CONV3-256", (56, 56, 256), 800e3)] * 3, ("POOL2", (28, 28, 256), 200e3),
    *[("CONV3-512", (28, 28, 512), 400e3)] * 3, ("POOL2", (14, 14, 512), 100e3),
    *[("CONV3-512", (14, 14, 512), 100e3)] * 3, ("POOL2", (7, 7, 512), 25e3),
    ("FC", (1, 1, 4096), 4096), ("FC", (1, 1, 4096), 4096), ("FC", (1, 1, 1000), 1000),
]
NOTES_ACTIVATIONS_MIB, NOTES_PARAMS_MIB = 14_733, 1_584
MIB = 2**20


def test_vgg16_training_memory_matches_the_notes_table_row_by_row():
    c = C.cost(baselines.get("vgg16"))
    batch = 128
    rows = [r for r in c.layers if r.stored]
    # torchvision's adaptive 7x7 average pool after the last max-pool is one row the notes'
    # table does not have: at 224 it copies the 7x7x512 map (25,088 elements, +0.17%).
    extra = [r for r in rows if r.type == "aap"]
    assert [r.stored for r in extra] == [7 * 7 * 512]
    rows = [r for r in rows if r.type != "aap"]
    kinds = {"conv": "CONV", "maxpool": "POOL", "fc": "FC"}
    assert len(rows) == len(VGG16_NOTES)
    for r, (name, (h, w, ch), printed) in zip(rows, VGG16_NOTES):
        assert name.startswith(kinds[r.type]), (r.name, name)
        assert r.stored == h * w * ch, (r.name, name)  # the notes' output volume, exactly
        assert abs(r.stored - printed) <= 0.02 * printed, (r.name, name)  # its rounded figure
        notes_mib = 2 * batch * 4 * h * w * ch / MIB
        assert abs(r.memory_bytes(batch) - 3 * r.params * 4 - notes_mib * MIB) <= 0.02 * (
            notes_mib * MIB)
    acts = 2 * batch * 4 * c.stored / MIB
    params = 3 * 4 * c.params / MIB
    assert abs(acts - NOTES_ACTIVATIONS_MIB) <= 0.02 * NOTES_ACTIVATIONS_MIB  # 14,758 MiB
    assert abs(params - NOTES_PARAMS_MIB) <= 0.02 * NOTES_PARAMS_MIB  # 1,583 MiB
    total = c.memory_bytes(batch) / MIB
    assert abs(total - (NOTES_ACTIVATIONS_MIB + NOTES_PARAMS_MIB)) <= 0.02 * 16_317
    # Counting every ReLU and dropout output as stored nearly doubles it: 31.0 GB.
    assert round(c.memory_bytes(batch, inplace=False) / 1e9, 1) == 31.0


def test_activation_count_of_a_small_net():
    # conv 3->4 k3 on 1x3x5x5 -> 4x5x5 = 100; bn 100; relu 100; gap 4; flatten 0; fc 2.
    spec = ArchSpec.from_string("3x5x5 conv_c4 bn relu gap flatten fc_c2")
    c = C.cost(spec)
    assert c.activations == 100 * 3 + 4 + 2
    assert c.macs == 4 * 25 * 3 * 9 + 4 * 2
    assert c.params == 4 * 3 * 9 + 2 * 4 + 4 * 2 + 2
    assert c.pool_ops == 4 * 25


def test_per_layer_rows_sum_to_totals():
    spec = baselines.get("googlenet")
    c = C.cost(spec)
    assert sum(r.macs for r in c.layers) == c.macs
    assert sum(r.params for r in c.layers) == c.params
    assert [r.out_shape for r in c.layers] == spec.shapes()
    assert C.totals(spec) == (c.macs, c.params, c.activations)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def test_cli_table(capsys):
    assert cost_main(["resnet18", "--resolution", "224"]) == 0
    out = capsys.readouterr().out
    assert "total" in out and "1.81G" in out and "11.69M" in out
    assert "11,689,512 params" in out


def test_cli_json_keys(capsys):
    assert cost_main(["mobilenet_v2", "--json", "--batch", "8"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {"name", "type", "out_shape", "activations", "macs", "flops", "params"} <= set(
        d["layers"][0])
    assert {"macs", "flops", "params", "activations"} <= set(d["total"])
    assert d["total"]["macs"] == 300_774_272
    assert d["total"]["params"] == 3_504_872
    assert sum(r["macs"] for r in d["layers"]) == d["total"]["macs"]


def test_cli_list(capsys):
    assert cost_main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in ("lenet5", "alexnet", "resnet50", "densenet121", "mobilenet_v2", "wrn28_10"):
        assert name in out
    listed = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert listed == set(baselines.BASELINES)


def test_cli_convolutional_head_at_448(capsys):
    assert cost_main(["vgg16", "--resolution", "448", "--head", "conv", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["total"]["params"] == 138_357_544
    assert d["total"]["macs"] == C.cost(baselines.get("vgg16", resolution=448,
                                                      head="conv")).macs
    assert cost_main(["vgg16", "--resolution", "448"]) == 0  # fc head: adaptive pool to 7x7
    assert cost_main(["resnet18", "--head", "conv"]) == 2
    assert "no 'head' option" in capsys.readouterr().err


def test_cli_spec_file_and_string(tmp_path, capsys):
    spec = baselines.get("resnet20")
    path = tmp_path / "spec.json"
    path.write_text(spec.to_json())
    assert cost_main([str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["params"] == 269_722
    assert cost_main([spec.to_string(), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["params"] == 269_722


def test_cli_unknown_name_lists_known(capsys):
    assert cost_main(["resnet19"]) == 2
    err = capsys.readouterr().err
    assert "unknown baseline 'resnet19'" in err and "resnet18" in err and "lenet5" in err


def test_cli_resolution_too_small_names_layer(capsys):
    assert cost_main(["alexnet", "--resolution", "32"]) == 2
    err = capsys.readouterr().err
    assert "layers[" in err and "empty output" in err


# --------------------------------------------------------------------------------------------
# Published figures of the later classic nets
# --------------------------------------------------------------------------------------------

# (resolution, exact params, published GMACs). Sources:
# torchvision's model tables (https://pytorch.org/vision/stable/models.html, "Params" and
# "GFLOPS" columns, which are GMACs): inception_v3 (its 27,161,264 include the auxiliary
# head), wide_resnet50_2, mobilenet_v3_*, shufflenet_v2_*.
TORCHVISION_LATER = {
    "inception_v3": (299, 27_161_264, 5.71), "wide_resnet50_2": (224, 68_883_240, 11.40),
    "mobilenet_v3_large": (224, 5_483_032, 0.22), "mobilenet_v3_small": (224, 2_542_856, 0.06),
    "shufflenet_v2_x0_5": (224, 1_366_792, 0.04), "shufflenet_v2_x1_0": (224, 2_278_604, 0.14),
    "shufflenet_v2_x1_5": (224, 3_503_624, 0.30), "shufflenet_v2_x2_0": (224, 7_393_996, 0.58),
}


def _within_published(value: float, published: float, decimals: int) -> bool:
    """Within 0.5% of the published figure, or within the rounding of the printed figure
    where that is coarser (0.04 GMACs printed with two decimals means 0.035-0.045)."""
    return abs(value - published) <= max(0.005 * published, 0.5 * 10 ** -decimals + 1e-12)


@pytest.mark.parametrize("name", sorted(TORCHVISION_LATER))
def test_torchvision_published_figures_of_later_nets(name):
    resolution, params, gmacs = TORCHVISION_LATER[name]
    c = C.cost(baselines.get(name, resolution=resolution, num_classes=1000))
    assert c.params == params
    assert _within_published(c.macs / 1e9, gmacs, 2)


def test_mobilenet_v3_macs_match_torchvision_weight_metadata():
    # torchvision's weights metadata `_ops` (3 decimals): 0.217 / 0.057 GFLOPS (= GMACs).
    for name, gmacs in (("mobilenet_v3_large", 0.217), ("mobilenet_v3_small", 0.057)):
        assert _within_published(C.cost(baselines.get(name)).macs / 1e9, gmacs, 3)


# (resolution, params in millions, GMACs) from timm's model cards on the Hugging Face hub
# ("Params (M)", "GMACs", one decimal): timm/inception_v4.tf_in1k,
# timm/inception_resnet_v2.tf_in1k, timm/resnet50d.ra2_in1k (parameters only: its card's
# 4.4 GMACs come from a counter that also counts normalisation; the paper's figure is
# checked in test_resnet_variants_match_bag_of_tricks_table_5).
TIMM = {
    "inception_v4": (299, 42.7, 12.3), "inception_resnet_v2": (299, 55.8, 13.2),
    "resnet50d": (224, 25.6, None),
}


@pytest.mark.parametrize("name", sorted(TIMM))
def test_timm_published_figures(name):
    resolution, mparams, gmacs = TIMM[name]
    c = C.cost(baselines.get(name, resolution=resolution, num_classes=1000))
    assert _within_published(c.params / 1e6, mparams, 1)
    if gmacs is not None:
        assert _within_published(c.macs / 1e9, gmacs, 1)


def test_resnet_variants_match_bag_of_tricks_table_5():
    # He et al. 2019 ("Bag of Tricks"), Table 5: ResNet-50-B 4.1 GFLOPs, -C 4.3, -D 4.3
    # (multiply-adds; 25M parameters each). Its 3.8 for the original ResNet-50 ("A") is the
    # ResNet paper's figure, printed truncated: 3.86G here.
    for variant, gmacs in (("b", 4.1), ("c", 4.3), ("d", 4.3)):
        c = C.cost(baselines.resnet(50, variant=variant))
        assert _within_published(c.macs / 1e9, gmacs, 1), variant
        assert int(c.params / 1e6) == 25
    assert 3.8 <= C.cost(baselines.resnet(50, variant="a")).macs / 1e9 < 3.9


# Figures from the papers (and the authors' code), to the precision they print.
PAPERS_LATER = {
    # Simonyan & Zisserman 2015, Table 2: A-LRN 133M, C 134M parameters.
    "vgg11_lrn": (224, 133e6, 0.5e6), "vgg16_c": (224, 134e6, 0.5e6),
    # He et al. 2016b (Identity Mappings), Table 3: ResNet-110 and -164 (pre-act) 1.7M.
    "preact_resnet110": (32, 1.7e6, 0.05e6), "preact_resnet164": (32, 1.7e6, 0.05e6),
    # ShuffleNet-Series README (the authors' code, megvii-model): ShuffleNetV1 1.0x g=3,
    # 1.86M parameters, 137.46M FLOPs (multiply-adds).
    "shufflenet_v1_g3": (224, 1.86e6, 0.005e6),
}


@pytest.mark.parametrize("name", sorted(PAPERS_LATER))
def test_paper_parameter_counts_of_later_nets(name):
    resolution, target, tol = PAPERS_LATER[name]
    info = baselines.BASELINES[name]
    c = C.cost(baselines.get(name, resolution=resolution, num_classes=info.num_classes))
    assert abs(c.params - target) <= tol


def test_shufflenet_v1_macs_match_the_authors_table():
    c = C.cost(baselines.get("shufflenet_v1_g3"))
    assert abs(c.macs - 137.46e6) / 137.46e6 < 0.005


def test_plain_nets_match_resnet_table_1():
    # He et al. 2016, Table 1: 1.8 and 3.6 x 10^9 FLOPs (multiply-adds) for 18 and 34 layers,
    # plain and residual alike; the plain nets lack exactly the three projection shortcuts.
    for d, gmacs in ((18, 1.8), (34, 3.6)):
        p, r = C.cost(baselines.get(f"plain{d}")), C.cost(baselines.get(f"resnet{d}"))
        assert _within_published(p.macs / 1e9, gmacs, 1)
        shortcuts = sum(cin * cout + 2 * cout for cin, cout in ((64, 128), (128, 256),
                                                                  (256, 512)))
        assert r.params - p.params == shortcuts


def test_resnet_variants_differ_as_bag_of_tricks_describes():
    b, a = C.cost(baselines.get("resnet50")), C.cost(baselines.resnet(50, variant="a"))
    c, d = C.cost(baselines.resnet(50, variant="c")), C.cost(baselines.get("resnet50d"))
    assert a.params == b.params and a.macs < b.macs  # stride moved to the first 1x1
    # C replaces the 7x7x3x64 stem conv with 3x3 convs 3->32->32->64 (and two more BNs)
    stem = 9 * 3 * 32 + 9 * 32 * 32 + 9 * 32 * 64 + 2 * 2 * 32
    assert c.params - b.params == stem - 7 * 7 * 3 * 64
    # D: the same parameters and MACs (a stride-1 1x1 after a 2x2 pool), only pooling added
    assert (d.params, d.macs) == (c.params, c.macs) and d.pool_ops > c.pool_ops
    with pytest.raises(ValueError, match="variant must be one of"):
        baselines.resnet(50, variant="e")


def test_inception_v3_aux_head_counts_parameters_not_inference_macs():
    with_aux, without = baselines.get("inception_v3"), baselines.get("inception_v3_noaux")
    a, b = C.cost(with_aux), C.cost(without)
    assert a.macs == b.macs and a.params - b.params == 27_161_264 - 23_834_568


def test_convolutional_classifier_keeps_parameters_and_slides_at_448():
    fc, conv = baselines.get("vgg16"), baselines.get("vgg16", head="conv")
    assert C.cost(conv).params == C.cost(fc).params
    assert C.cost(conv).macs == C.cost(fc).macs  # 7x7 map at 224: one window
    big = baselines.get("vgg16", head="conv", resolution=448)
    assert big.shapes()[-4][1:] == (8, 8)  # an 8x8 map of class scores, then averaged
    params, macs, out = torch_counts(big)
    assert (params, macs) == (C.cost(big).params, C.cost(big).macs)
    assert out == (2, 1000)
    alex = baselines.get("alexnet", head="conv", resolution=454)
    assert C.cost(alex).params == C.cost(baselines.get("alexnet")).params
    with pytest.raises(ValueError, match="head='mlp'.*'fc', 'conv'"):
        baselines.get("vgg16", head="mlp")
    with pytest.raises(ValueError, match="no 'head' option.*vgg16"):
        baselines.get("resnet18", head="conv")
