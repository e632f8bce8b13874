"""Supernets: extraction equivalence, channel sorting, BN calibration, registry errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from nas.build import build
from nas.search import CONF_DIR
from nas.supernet import SUPERNETS, MobileSupernet, calibrate_bn, make_supernet
from search_spaces import SPACES, get_space

# A small mobile config (three stages, 8-12 px) keeps 50 extractions within seconds; the
# space's own config (conf/space/mobile.yaml with the digits preset) is checked as well.
SMALL = {"widths": [16, 24, 32], "strides": [1, 2, 2], "depths": [1, 2, 3],
         "width_mults": [0.25, 0.5], "resolutions": [8, 12]}


def _randomise(net: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics/affines and kernel maps, so every tensor matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "kernel_maps" in name:
                p.add_(0.2 * torch.randn(p.shape, generator=g))
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.2, generator=g)


def _space_from_conf() -> object:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("search", overrides=["+space=mobile"])
    space_cfg = OmegaConf.to_container(cfg.space, resolve=True)
    return instantiate(space_cfg, num_classes=10, in_channels=1, _convert_="all")


def _check_extraction(sn: MobileSupernet, n: int, seed: int) -> float:
    sn.eval()
    genomes = [sn.largest(), sn.smallest()] + list(sn.space.sample(n - 2, np.random.default_rng(seed)))
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for genome in genomes:
        spec, state = sn.extract(genome)
        assert spec == sn.space.decode(genome)
        net = build(spec)
        net.load_state_dict(state)
        net.eval()
        x = torch.randn(3, sn.space.in_channels, spec.input[1], spec.input[2], generator=g)
        with torch.no_grad():
            ref = sn(x, genome)
            got = net(x)
        assert ref.abs().max() > 1e-3  # a real signal, not a vanishing one
        worst = max(worst, float((got - ref).abs().max()))
    return worst


@pytest.mark.parametrize("width", [0.25, 0.5])
def test_extract_matches_supernet_on_50_genomes(width):
    torch.manual_seed(0)
    space = get_space("mobile", num_classes=10, in_channels=3, **SMALL)
    sn = make_supernet(space, width=width)
    _randomise(sn)
    assert _check_extraction(sn, 50, seed=1) <= 1e-5


def test_extract_matches_on_the_space_config():
    torch.manual_seed(0)
    sn = make_supernet(_space_from_conf())
    _randomise(sn, seed=3)
    assert sn.width == 0.5  # the largest of the digits preset's width multipliers
    assert _check_extraction(sn, 12, seed=2) <= 1e-5


def test_largest_and_smallest_are_the_extremes():
    space = get_space("mobile", num_classes=10, in_channels=3, **SMALL)
    sn = make_supernet(space)
    big, small = sn.space.values(sn.largest()), sn.space.values(sn.smallest())
    assert big["resolution"] == 12 and small["resolution"] == 8
    assert big["stage3.depth"] == 3 and small["stage3.depth"] == 1
    assert big["stage3.block3.kernel"] == 7 and small["stage2.block1.kernel"] == 3
    assert big["stage1.block1.expand"] == 6 and small["stage1.block1.expand"] == 3
    assert big["stage2.se"] == 0.25 and small["stage2.se"] == 0
    # Largest subnet = every supernet weight in use.
    _, state = sn.extract(sn.largest())
    n_sub = sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked"))
    n_maps = sum(p.numel() for n, p in sn.named_parameters() if "kernel_maps" in n)
    n_bn = sum(b.numel() for n, b in sn.named_buffers() if "running" in n)
    assert n_sub == sum(p.numel() for p in sn.parameters()) - n_maps + n_bn


def test_kernel_transformation_changes_small_kernels_only():
    torch.manual_seed(0)
    space = get_space("mobile", num_classes=10, in_channels=3, **SMALL)
    sn = make_supernet(space)
    slot = sn.stages[1][0]
    # Identity maps at initialisation: a small kernel is the centre of the largest.
    assert torch.equal(slot.dw_weight(3, 8), slot.dw.weight[:8, :, 2:5, 2:5])
    with torch.no_grad():
        slot.kernel_maps["5to3"].mul_(2.0)
    assert torch.allclose(slot.dw_weight(3, 8), 2 * slot.dw.weight[:8, :, 2:5, 2:5])
    assert torch.equal(slot.dw_weight(7, 8), slot.dw.weight[:8])


def test_sort_channels_keeps_the_largest_subnet_and_orders_by_importance():
    torch.manual_seed(0)
    space = get_space("mobile", num_classes=10, in_channels=3, **SMALL)
    sn = make_supernet(space)
    _randomise(sn)
    sn.eval()
    x = torch.randn(2, 3, 12, 12)
    params = [p for p in sn.parameters()]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    sn(x, sn.largest()).sum().backward()
    opt.step()
    slot = sn.stages[2][1]
    buf_before = opt.state[slot.project.weight]["momentum_buffer"].clone()
    with torch.no_grad():
        before = sn(x, sn.largest())
        some = sn.space.sample(1, np.random.default_rng(0))[0]
        before_some = sn(x, some)
    sn.sort_channels(opt)
    with torch.no_grad():
        after = sn(x, sn.largest())
        after_some = sn(x, some)
    assert torch.allclose(before, after, atol=1e-5)
    assert not torch.allclose(before_some, after_some, atol=1e-5)  # subnets share new channels
    imp = slot.project.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(imp[:-1] >= imp[1:])
    # The momentum buffer moved with its weights.
    buf = opt.state[slot.project.weight]["momentum_buffer"]
    assert torch.allclose(torch.sort(buf.abs().sum(dim=(0, 2, 3)))[0],
                          torch.sort(buf_before.abs().sum(dim=(0, 2, 3)))[0])


def test_calibration_then_extraction_matches_calibrating_the_extracted_net():
    torch.manual_seed(0)
    space = get_space("mobile", num_classes=10, in_channels=3, **SMALL)
    sn = make_supernet(space)
    _randomise(sn)
    genome = sn.space.sample(1, np.random.default_rng(5))[0]
    res = sn.space.values(genome)["resolution"]
    batches = [torch.randn(8, 3, res, res) for _ in range(3)]
    # Extract with stale statistics, then calibrate the standalone net ...
    spec, state = sn.extract(genome)
    net = build(spec)
    net.load_state_dict(state)
    assert calibrate_bn(net, batches) == 24
    # ... or calibrate the supernet set to the subnet, then extract: the same network.
    calibrate_bn(sn, batches, forward=lambda x: sn(x, genome))
    _, state2 = sn.extract(genome)
    net2 = build(spec)
    net2.load_state_dict(state2)
    net2.eval()
    x = torch.randn(4, 3, res, res)
    with torch.no_grad():
        assert float((net(x) - net2(x)).abs().max()) <= 1e-5
        assert float((net(x) - sn(x, genome)).abs().max()) <= 1e-5


def test_errors_name_the_problem():
    for name in sorted(set(SPACES) - set(SUPERNETS)):
        space = get_space(name, num_classes=10, in_channels=3)
        with pytest.raises(ValueError, match=rf"the {name} space has no supernet; spaces "
                                             rf"with one: mobile"):
            make_supernet(space)
    space = get_space("mobile", num_classes=10, in_channels=3, **SMALL)
    with pytest.raises(ValueError, match=r"width=0.75 is not a width multiplier choice"):
        make_supernet(space, width=0.75)
    sn = make_supernet(space, width=0.5)
    other = list(sn.largest())
    other[space.gene("width").position] = 1  # a width choice the supernet's space lacks
    with pytest.raises(ValueError, match=r"width multiplier 0.5 only"):
        sn.extract(other)
    with pytest.raises(ValueError, match=r"expected 1 channel|genes"):
        sn.extract([0, 0])
    with pytest.raises(ValueError, match="calibration got no batches"):
        calibrate_bn(build(sn.space.decode(sn.smallest())), [])
