"""Zero-cost proxies: each proxy's defining property, determinism, no side effects, failures
as ProxyError, and the per-network rank combination."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from nas import zero_cost as Z
from nas.build import AuxHead, build
from nas.cost import totals
from nas.registry import SPACES
from nas.spec import ArchSpec

CONV3 = (2,) * 6  # every edge conv3x3
SKIP = (0,) * 6  # every edge skip
NONE = (1,) * 6  # every edge none: the output does not depend on the input
BEST = (2, 2, 0, 2, 2, 2)
NETWORK = tuple(p for p in Z.PROXIES if p not in ("params", "macs"))
LABEL_FREE = tuple(p for p in NETWORK if p not in Z.NEEDS_LABELS)


@pytest.fixture(scope="module")
def space():
    return SPACES.build("nb201", num_classes=10, in_channels=3, channels=[8], cells=1,
                     resolution=8)


def batch(seed: int, n: int = 8, shape=(3, 8, 8)) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((n, *shape), generator=gen), torch.randint(0, 10, (n,), generator=gen)


def test_constants_cover_every_proxy():
    assert set(Z.BATCH) == set(Z.PROXIES)
    assert set(Z.NEEDS_LABELS) <= set(Z.PROXIES)
    assert set(Z.DEFAULT_COMBINATION) <= set(Z.PROXIES)
    assert Z.COMBINATIONS == ("rank_mean", "z_mean")


def test_unknown_proxy_lists_the_known_ones(space):
    x, y = batch(0)
    with pytest.raises(ValueError, match="unknown proxy 'nope'") as info:
        Z.score("nope", space.decode(BEST), x, y)
    assert all(name in str(info.value) for name in Z.PROXIES)
    with pytest.raises(ValueError, match="unknown proxy"):
        Z.scores(["snip", "flops"], space.decode(BEST), x, y)


def test_batch_is_checked_against_the_spec(space):
    x, y = batch(0)
    with pytest.raises(ValueError, match=r"N x 3 x 8 x 8"):
        Z.score("naswot", space.decode(BEST), x[:, :2], y)
    with pytest.raises(ValueError, match="targets"):
        Z.score("snip", space.decode(BEST), x, None)
    with pytest.raises(ValueError, match="targets"):
        Z.score("grasp", space.decode(BEST), x, y[:4])
    assert math.isfinite(Z.score("naswot", space.decode(BEST), x, None))  # label-free


@pytest.mark.parametrize("genome", [CONV3, SKIP, BEST])
def test_params_and_macs_are_the_cost_model(space, genome):
    spec = space.decode(genome)
    macs, params, _ = totals(spec)
    x, y = batch(0)
    assert Z.scores(["params", "macs"], spec, x, y) == {"params": params, "macs": macs}


def test_synflow_does_not_read_the_data(space):
    spec = space.decode(BEST)
    x1, y1 = batch(1)
    x2, _ = batch(2, n=3)
    values = {Z.score("synflow", spec, x, None) for x in (x1, x2, x1 * 100, torch.zeros_like(x1))}
    assert len(values) == 1
    assert Z.score("synflow", spec, x1, y1) in values


def test_synflow_grows_with_the_parameters(space):
    x, _ = batch(0)
    # same family, same seed: the all-conv3x3 cell has many more weights than the all-skip one
    assert totals(space.decode(CONV3))[1] > totals(space.decode(SKIP))[1]
    assert Z.score("synflow", space.decode(CONV3), x, None) > \
        Z.score("synflow", space.decode(SKIP), x, None)


def test_naswot_follows_the_activation_patterns(space):
    spec = space.decode(BEST)
    x1, _ = batch(1)
    x2, _ = batch(2)
    a, b = Z.score("naswot", spec, x1, None), Z.score("naswot", spec, x2, None)
    assert a != b and a > 0 and b > 0  # distinct codes: det K >= 1
    # identical images have identical codes: K has rank one; the documented floor, not NaN
    same = x1[:1].repeat(8, 1, 1, 1)
    assert Z.score("naswot", spec, same, None) == 0.0


def test_naswot_kernel_counts_agreements():
    # one ReLU on 4 units: codes (1,1,0,0), (1,0,1,0), (0,0,0,1) -> K_ij = units that agree
    net = nn.Sequential(nn.Flatten(), nn.ReLU())
    x = torch.tensor([[1.0, 1, -1, -1], [1, -1, 1, -1], [-1, -1, -1, 1]]).reshape(3, 4, 1, 1)
    k = torch.tensor([[4.0, 2, 1], [2, 4, 1], [1, 1, 4]], dtype=torch.float64)
    assert Z.measure("naswot", net, x, None)["naswot"] == pytest.approx(
        float(torch.logdet(k)), rel=1e-12)


def test_jacov_of_identical_images_has_one_eigenvalue(space):
    # identical images -> identical Jacobian rows -> correlation all ones: eigenvalues n, 0...
    n, k = 6, 1e-5
    x = batch(3, n=1)[0].repeat(n, 1, 1, 1)
    expected = -(math.log(n + k) + 1 / (n + k)) - (n - 1) * (math.log(k) + 1 / k)
    assert Z.score("jacov", space.decode(BEST), x, None) == pytest.approx(expected, rel=1e-9)


def test_jacov_changes_with_the_inputs(space):
    spec = space.decode(BEST)
    assert Z.score("jacov", spec, batch(1)[0], None) != Z.score("jacov", spec, batch(2)[0], None)


@pytest.mark.parametrize("proxy", Z.NEEDS_LABELS)
def test_loss_proxies_read_the_labels(space, proxy):
    spec = space.decode(BEST)
    x, y = batch(4)
    assert Z.score(proxy, spec, x, y) != Z.score(proxy, spec, x, (y + 3) % 10)


def test_label_free_proxies_ignore_the_labels(space):
    spec = space.decode(BEST)
    x, y = batch(4)
    assert Z.scores(LABEL_FREE, spec, x, y) == Z.scores(LABEL_FREE, spec, x, (y + 3) % 10)


def test_zen_reads_only_the_batch_shape(space):
    spec = space.decode(BEST)
    x1, _ = batch(1)
    x2, _ = batch(2)
    assert Z.score("zen", spec, x1, None) == Z.score("zen", spec, x2, None)
    assert Z.score("zen", spec, x1, None) != Z.score("zen", spec, x1, None, seed=1)


def test_grad_norm_and_snip_follow_their_definitions(space):
    # snip = sum |w * dL/dw| and grad_norm = sum_layer ||dL/dW||, BN on batch statistics
    spec = space.decode(BEST)
    x, y = batch(5)
    net = build(spec, seed=0)
    net.eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.train()
    nn.functional.cross_entropy(net(x), y).backward()
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
              and m.weight.grad is not None]
    got = Z.scores(["snip", "grad_norm"], spec, x, y)
    assert got["snip"] == pytest.approx(sum(float((m.weight * m.weight.grad).abs().sum().detach())
                                            for m in layers), rel=1e-5)
    assert got["grad_norm"] == pytest.approx(sum(float(m.weight.grad.norm()) for m in layers),
                                             rel=1e-5)


def test_shared_passes_give_the_values_of_single_calls(space):
    spec = space.decode(BEST)
    x, y = batch(6)
    together = Z.scores(Z.PROXIES, spec, x, y, seed=3)
    assert together == {p: Z.score(p, spec, x, y, seed=3) for p in Z.PROXIES}


def test_same_seed_same_floats_other_seed_other_weights(space):
    spec = space.decode(BEST)
    x, y = batch(7)
    first = Z.scores(NETWORK, spec, x, y, seed=0)
    assert Z.scores(NETWORK, spec, x, y, seed=0) == first  # bit for bit
    other = Z.scores(NETWORK, spec, x, y, seed=1)
    assert all(other[p] != first[p] for p in ("synflow", "snip", "grasp", "zen"))


def test_pytorch_init_is_each_layers_default_and_deterministic(space):
    spec = space.decode(BEST)
    x, y = batch(9)
    kaiming = Z.scores(NETWORK, spec, x, y, seed=0)
    pytorch = Z.scores(NETWORK, spec, x, y, seed=0, init="pytorch")
    assert Z.scores(NETWORK, spec, x, y, seed=0, init="pytorch") == pytorch  # bit for bit
    assert pytorch != kaiming
    # the weights the proxies see are PyTorch's: a freshly constructed layer under the seed
    with torch.random.fork_rng(devices=[]):
        net = build(spec, seed=0)
        torch.manual_seed(0)
        for m in net.modules():
            if callable(getattr(m, "reset_parameters", None)):
                m.reset_parameters()
    assert Z.measure(NETWORK, net, x, y, seed=0) == pytorch
    conv = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    bound = 1.0 / math.sqrt(conv.weight[0].numel())  # kaiming_uniform(a=sqrt(5)): U(-b, b)
    assert float(conv.weight.abs().max()) <= bound
    with pytest.raises(ValueError, match="init='xavier' is invalid; pass one of kaiming, "
                                         "pytorch"):
        Z.scores(NETWORK, spec, x, y, init="xavier")


def test_a_call_changes_nothing_of_the_caller(space):
    # no dropout draws from the global generator, default dtype kept, tensors untouched
    spec = ArchSpec.from_string("3x8x8 cba_c8 cba_c8 head_c10_p0.5")
    net = build(spec, seed=0)
    net.train()
    net.layers[0].requires_grad_(False)
    state = copy.deepcopy(net.state_dict())
    x, y = batch(8)
    x.requires_grad_(True)
    x_before, y_before = x.detach().clone(), y.clone()
    rng = torch.get_rng_state()
    dtype = torch.get_default_dtype()
    values = Z.measure(NETWORK, net, x, y)
    again = Z.scores(NETWORK, spec, x, y)
    assert values == again == Z.scores(NETWORK, spec, x, y)
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.get_default_dtype() == dtype
    assert torch.equal(x.detach(), x_before) and x.requires_grad and x.grad is None
    assert torch.equal(y, y_before)
    assert net.training and all(m.training for m in net.modules())
    assert [p.requires_grad for p in net.parameters()][:3] == [False] * 3
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


def test_main_output_of_tuples_and_auxiliary_heads():
    spec = ArchSpec.from_string("3x8x8 cba_c8 aux[head_c10] cba_c8 head_c10")
    net = build(spec, seed=0)
    plain = copy.deepcopy(net)
    for i, m in enumerate(plain.layers):
        if isinstance(m, AuxHead):
            plain.layers[i] = nn.Identity()

    class Pair(nn.Module):
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            y = self.inner(x)
            return y, y.sum(1)

    x, y = batch(9)
    # zen draws Gaussian weights for every layer, the auxiliary head's too: left out here
    names = [p for p in NETWORK if p != "zen"]
    expected = Z.measure(names, plain, x, y)
    assert Z.measure(names, net, x, y) == expected
    assert Z.measure(names, Pair(plain), x, y) == expected
    assert Z.measure("zen", Pair(plain), x, y) == Z.measure("zen", plain, x, y)


@pytest.mark.parametrize("proxy", ["jacov", "snip", "grad_norm", "fisher", "grasp"])
def test_nan_inputs_raise_a_proxy_error(space, proxy):
    x, y = batch(10)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(Z.ProxyError, match=rf"proxy {proxy} is nan"):
        Z.score(proxy, space.decode(BEST), x, y)


def test_degenerate_network_raises_a_proxy_error(space):
    # the all-none cell: constant output, so the Jacobian rows have no correlation
    x, _ = batch(11)
    with pytest.raises(Z.ProxyError, match="proxy jacov is nan"):
        Z.score("jacov", space.decode(NONE), x, None)


def test_infinite_values_raise_a_proxy_error(space, monkeypatch):
    monkeypatch.setattr(Z, "_logdet_floor", lambda kernel: float("inf"))
    with pytest.raises(Z.ProxyError, match="proxy naswot is inf") as info:
        Z.score("naswot", space.decode(BEST), batch(0)[0], None)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_combine_is_the_mean_percentile_rank():
    reference = {"a": [1.0, 2.0, 3.0, 4.0], "b": [10.0, 20.0, 30.0, 40.0]}
    # a=2: 1 below, 1 tie of 4 -> (1 + 0.5) / 4; b=35: 3 below of 4
    assert Z.combine({"a": 2.0, "b": 35.0, "c": 0.0}, reference) == pytest.approx(
        (1.5 / 4 + 3 / 4) / 2)
    assert Z.combine({"a": 0.0, "b": 0.0}, reference) == 0.0
    assert Z.combine({"a": 9.0, "b": 99.0}, reference) == 1.0
    last = -1.0
    for v in [0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0]:  # monotone in every proxy
        now = Z.combine({"a": v, "b": 25.0}, reference)
        assert now >= last
        last = now
    with pytest.raises(ValueError, match="values has no 'b'"):
        Z.combine({"a": 1.0}, reference)
    with pytest.raises(ValueError, match="unknown combination"):
        Z.combine({"a": 1.0, "b": 1.0}, reference, method="borda")
    with pytest.raises(ValueError, match="reference is empty"):
        Z.combine({"a": 1.0}, {})


def test_reference_sample_feeds_combine(space):
    x, y = batch(12)
    reference = Z.reference_sample(space, Z.DEFAULT_COMBINATION, x, y, n=4, seed=0)
    assert set(reference) == set(Z.DEFAULT_COMBINATION)
    assert len({len(v) for v in reference.values()}) == 1 and len(reference["synflow"]) >= 1
    value = Z.combine(Z.scores(Z.DEFAULT_COMBINATION, space.decode(CONV3), x, y), reference)
    assert 0.0 <= value <= 1.0


def test_z_mean_orders_like_the_proxy_and_keeps_networks_beyond_the_reference_apart():
    reference = {"a": [1.0, 2.0, 3.0, 4.0, 5.0], "b": [1e10, 1e12, 1e14, 1e16, 1e18]}
    one = {"a": reference["a"]}
    values = [-3.0, 0.0, 2.5, 4.0, 9.0, 50.0, 1e6]
    errors = [Z.error({"a": v}, one) for v in values]
    # one proxy: the error orders networks exactly as the proxy does, and networks far
    # beyond every reference network stay apart (no rounding to 0 as 1 - combine would)
    assert errors == sorted(errors, reverse=True) and len(set(errors)) == len(errors)
    assert all(0.0 < e < 1.0 for e in errors)
    assert Z.error({"a": 3.0}, one) == pytest.approx(0.5)  # the reference's median
    # symmetric log: synflow's orders of magnitude scale like a normal variable
    z = Z.standardised({"a": 3.0, "b": 1e14}, reference)
    assert z == pytest.approx({"a": 0.0, "b": 0.0}, abs=1e-12)
    assert Z.standardised({"a": 4.0, "b": 1e16}, reference)["b"] > 0
    # monotone in every proxy; combine is 1 - error in (0, 1)
    last = 2.0
    for v in (1e9, 1e11, 1e15, 1e20, 1e30):
        e = Z.error({"a": 3.0, "b": v}, reference)
        assert e < last and Z.combine({"a": 3.0, "b": v}, reference, method="z_mean") == \
            pytest.approx(1.0 - e)
        last = e
    # rank_mean's error is 1 - the mean percentile rank, tied above every reference value
    assert Z.error({"a": 9.0, "b": 1e20}, reference, method="rank_mean") == 0.0
    assert Z.error({"a": 90.0, "b": 1e30}, reference, method="rank_mean") == 0.0
    # equal reference values: the scale falls back to 1, still finite and monotone
    flat = {"a": [2.0, 2.0, 2.0]}
    assert Z.error({"a": 1.0}, flat) > Z.error({"a": 3.0}, flat)
    with pytest.raises(ValueError, match="unknown combination"):
        Z.error({"a": 1.0}, one, method="vote")
