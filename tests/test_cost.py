"""The analytic cost model against PyTorch's own counters and against published figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nas import cost as C
from nas.build import build
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
    assert c.memory_bytes(128) == 2 * 128 * c.activations * 4 + 3 * c.params * 4
    assert sum(r.memory_bytes(128) for r in c.layers) == c.memory_bytes(128)


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
    assert C.main(["resnet18", "--resolution", "224"]) == 0
    out = capsys.readouterr().out
    assert "total" in out and "1.81G" in out and "11.69M" in out
    assert "11,689,512 params" in out


def test_cli_json_keys(capsys):
    assert C.main(["mobilenet_v2", "--json", "--batch", "8"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {"name", "type", "out_shape", "activations", "macs", "flops", "params"} <= set(
        d["layers"][0])
    assert {"macs", "flops", "params", "activations"} <= set(d["total"])
    assert d["total"]["macs"] == 300_774_272
    assert d["total"]["params"] == 3_504_872
    assert sum(r["macs"] for r in d["layers"]) == d["total"]["macs"]


def test_cli_list(capsys):
    assert C.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in ("lenet5", "alexnet", "resnet50", "densenet121", "mobilenet_v2", "wrn28_10"):
        assert name in out


def test_cli_spec_file_and_string(tmp_path, capsys):
    spec = baselines.get("resnet20")
    path = tmp_path / "spec.json"
    path.write_text(spec.to_json())
    assert C.main([str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["params"] == 269_722
    assert C.main([spec.to_string(), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["params"] == 269_722


def test_cli_unknown_name_lists_known(capsys):
    assert C.main(["resnet19"]) == 2
    err = capsys.readouterr().err
    assert "unknown baseline 'resnet19'" in err and "resnet18" in err and "lenet5" in err


def test_cli_resolution_too_small_names_layer(capsys):
    assert C.main(["alexnet", "--resolution", "32"]) == 2
    err = capsys.readouterr().err
    assert "layers[" in err and "empty output" in err
