"""Zero-cost proxies: scores of an *untrained* network from one mini-batch.

Each proxy follows its paper and the reference code of NASLib / NAS-Bench-Suite-Zero
(Krishnakumar et al. 2022) and zero-cost-nas (Abdelfattah et al. 2021); where the two
differ, or where this module differs, the proxy's docstring says so. Every proxy is
oriented so that **higher means predicted better**.

================  =======================================================================
proxy             definition (network-level value = sum over conv and linear weights)
================  =======================================================================
``synflow``       sum |theta * dR/dtheta|, R = sum of the output of the net with |theta|,
                  no BN, one all-ones input, float64 (Tanaka et al. 2020)
``naswot``        log det K, K_ij = number of rectifier units on which inputs i and j
                  agree (Mellor et al. 2021, second version)
``jacov``         -sum_i log(l_i + k) + 1 / (l_i + k), l = eigenvalues of the correlation
                  of the per-input Jacobians dy/dx, k = 1e-5 (Mellor et al. 2020, v1)
``snip``          sum |theta * dL/dtheta| (Lee et al. 2019)
``grad_norm``     sum over layers of ||dL/dW||_2 (Abdelfattah et al. 2021)
``fisher``        sum over channels of 1/2 mean_n (sum_hw a * dL/da)^2, a = the layer's
                  output, times the channel's weight count (Turner et al. 2020; NASLib)
``grasp``         sum -theta * (H g), g = dL/dtheta, H the Hessian (Wang et al. 2020)
``zen``           log E||f(x) - f(x + 0.01 e)||_1 + sum_BN log sqrt(mean var) with Gaussian
                  weights and inputs, f = pre-pooling features (Lin et al. 2021)
``params``        trainable parameters, :func:`nas.cost.totals` (baseline)
``macs``          multiply-accumulates, :func:`nas.cost.totals` (baseline)
================  =======================================================================

L is the cross-entropy of the main output on the caller's batch. **BatchNorm** uses the
batch's statistics (train mode) in every proxy but ``synflow``, which removes it, as the
references do; every other module runs in eval mode, so dropout, drop-path and auxiliary
heads are off and the only random draws are ``zen``'s, from a generator seeded with
``seed``. The caller's tensors and network are never modified (proxies work on a copy).

**Cost** in CPU seconds (``time.process_time``, one thread, build excluded) on NAS-Bench-201
CIFAR-10 networks at the batch sizes of :data:`BATCH`: 10 random networks and the largest
(every edge conv3x3, 220 M MACs), measured with ``python benchmarks/bench_proxy_time.py --networks 10`` on
a 2-core Intel Xeon shared with other jobs (torch 2.13.0 CPU wheel):

=========  =====  ======  =====  =======
proxy      batch  median  max    largest
=========  =====  ======  =====  =======
synflow    1      0.069   0.219  0.414
naswot     64     0.491   0.753  0.668
jacov      32     0.368   0.689  0.687
snip       32     0.446   0.661  0.713
grad_norm  32     0.420   0.658  0.674
fisher     32     0.404   0.645  0.694
grasp      8      0.402   0.601  0.653
zen        16     0.234   0.359  0.370
params     any    0.000   0.000  0.000
macs       any    0.000   0.000  0.000
=========  =====  ======  =====  =======

Forward and backward passes grow linearly with the batch: twice these batches roughly
doubles the seconds. :func:`scores` shares passes (naswot with jacov; snip, grad_norm and
fisher) when they get one batch, so several cost less than the sum of their rows.

A search scores networks one at a time, so proxies are combined per network by
:func:`combine`, against a fixed reference sample of the space (:func:`reference_sample`),
which puts proxies of very different scales on one 0..1 axis and needs no other candidate:
``rank_mean`` averages the network's percentile ranks within the reference, ``z_mean``
its z-scores (:func:`standardised`). :func:`error` is what a search minimises.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import norm, percentileofscore
from torch import nn

from nas.build import AuxHead, build
from nas.cost import totals
from nas.spec import ArchSpec

#: Every proxy this module computes, in the order of the module docstring's table.
PROXIES = ("synflow", "naswot", "jacov", "snip", "grad_norm", "fisher", "grasp", "zen",
           "params", "macs")
#: Ways to combine several proxies of ONE network (see :func:`combine`).
COMBINATIONS = ("rank_mean", "z_mean")
#: The proxies :func:`combine` uses by default. Abdelfattah et al. 2021 vote with synflow,
#: jacov and snip; naswot replaces snip here because NAS-Bench-Suite-Zero reports it ranking
#: NAS-Bench-201 better than snip, and then none of the three reads labels.
DEFAULT_COMBINATION = ("synflow", "naswot", "jacov")
#: initial weights the proxies see (see :func:`scores`)
INITS = ("kaiming", "pytorch")
#: Recommended batch size per proxy: NASLib's 64 where it fits 1 CPU-second on the largest
#: NAS-Bench-201 network (naswot), else the largest power of two that fits; zen takes
#: Zen-NAS's 16. ``synflow``, ``zen``, ``params`` and ``macs`` read only the input's shape.
BATCH = {"synflow": 1, "naswot": 64, "jacov": 32, "snip": 32, "grad_norm": 32, "fisher": 32,
         "grasp": 8, "zen": 16, "params": 1, "macs": 1}
#: Proxies that read the labels (the others accept ``targets=None``).
NEEDS_LABELS = ("snip", "grad_norm", "fisher", "grasp")

_JACOV_K = 1e-5  # eigenvalue offset of jacov (Mellor et al. 2020, v1 code)
_ZEN_GAMMA = 1e-2  # input perturbation scale of zen (Lin et al. 2021, "alpha")
# Activations whose input sign is a unit's binary code for naswot. The references hook
# ReLU; the smooth rectifiers split their input at zero the same way.
_RECTIFIERS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SiLU, nn.GELU,
               nn.Hardswish)
_WEIGHTED = (nn.Conv2d, nn.Linear)


class ProxyError(ValueError):
    """A proxy came out NaN or infinite; the message names the proxy and the value."""


# Validation ------------------------------------------------------------------------------------

def _names(proxies: str | Iterable[str]) -> tuple[str, ...]:
    names = (proxies,) if isinstance(proxies, str) else tuple(proxies)
    if not names:
        raise ValueError(f"proxies is empty; pass one or more of {', '.join(PROXIES)}")
    for name in names:
        if name not in PROXIES:
            raise ValueError(f"unknown proxy {name!r}; known: {', '.join(PROXIES)}")
    return tuple(dict.fromkeys(names))


def _check_batch(names: Sequence[str], shape: tuple[int, ...] | None,
                 inputs: Any, targets: Any) -> None:
    if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point():
        raise TypeError(f"inputs must be a floating-point tensor N x C x H x W, got "
                        f"{type(inputs).__name__} {getattr(inputs, 'dtype', '')}".rstrip())
    if inputs.ndim < 2 or inputs.shape[0] < 1 or (
            shape is not None and tuple(inputs.shape[1:]) != tuple(shape)):
        want = "N x " + " x ".join(map(str, shape)) if shape is not None else "N x ..."
        raise ValueError(f"inputs.shape={tuple(inputs.shape)} is invalid; pass a batch of "
                         f"shape {want} (the network's input)")
    if not any(n in NEEDS_LABELS for n in names):
        return
    if not isinstance(targets, torch.Tensor) or targets.dtype != torch.long or \
            tuple(targets.shape) != (inputs.shape[0],):
        what = (f"{targets.dtype} {tuple(targets.shape)}" if isinstance(targets, torch.Tensor)
                else type(targets).__name__)
        raise ValueError(f"targets={what} is invalid; {', '.join(NEEDS_LABELS)} need the "
                         f"class labels as a long tensor of shape ({inputs.shape[0]},)")


def _finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ProxyError(f"proxy {name} is {value} for this network and batch (not finite)")
    return value


# Network helpers -------------------------------------------------------------------------------

def _main_output(out: Any) -> torch.Tensor:
    """The main output of a network that returns (main, auxiliary, ...) tuples."""
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


def _prepared(net: nn.Module, device: torch.device, *, keep_bn: bool = True) -> nn.Module:
    """A private copy of ``net`` on ``device``: eval mode except BatchNorm (batch statistics),
    or with every BatchNorm replaced by an identity when ``keep_bn`` is false."""
    net = copy.deepcopy(net).to(device)
    net.eval()
    for parent in list(net.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                if keep_bn:
                    child.train()
                else:
                    parent._modules[name] = nn.Identity()
    for p in net.parameters():
        p.requires_grad_(True)
        p.grad = None
    return net


def _main_modules(net: nn.Module, kind: type | tuple[type, ...]) -> list[nn.Module]:
    """Modules of type ``kind`` outside auxiliary heads, in registration order."""
    aux = {id(m) for head in net.modules() if isinstance(head, AuxHead)
           for m in head.modules()}
    return [m for m in net.modules() if isinstance(m, kind) and id(m) not in aux]


def _as_input(net: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """``inputs`` detached, in the dtype of the network's parameters."""
    p = next(net.parameters(), None)
    return inputs.detach().to(p.dtype if p is not None else torch.float32)


def _weights(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, _WEIGHTED)]


def _sum(tensors: Iterable[torch.Tensor]) -> float:
    """Sum of tensors' elements, in float64 so that large networks do not round."""
    total = 0.0
    for t in tensors:
        total += float(t.detach().double().sum())
    return total


# Proxies ---------------------------------------------------------------------------------------

def _synflow(net: nn.Module, inputs: torch.Tensor) -> float:
    """Synaptic flow (Tanaka et al. 2020): the net with every parameter made positive
    (|theta|) and BatchNorm removed sees one all-ones input in float64; R = sum of its
    output; score = sum over conv and linear weights of |theta * dR/dtheta|. The batch's
    values are never read, only its per-sample shape. Very deep nets can overflow float64
    (ProxyError)."""
    net = _prepared(net, inputs.device, keep_bn=False).double()
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.abs_()
    ones = torch.ones((1, *inputs.shape[1:]), dtype=torch.float64, device=inputs.device)
    with torch.enable_grad():
        _main_output(net(ones)).sum().backward()
    return _sum((m.weight * m.weight.grad).abs() for m in _weights(net)
                if m.weight.grad is not None)


def _codes_and_jacobian(net: nn.Module, inputs: torch.Tensor, names: Sequence[str]
                        ) -> dict[str, float]:
    """naswot and jacov from one forward pass of the batch (train-mode BN)."""
    net = _prepared(net, inputs.device)
    n = inputs.shape[0]
    kernel = np.zeros((n, n), dtype=np.float64)

    def count(module: nn.Module, args: tuple, out: Any) -> None:
        x = args[0].detach().reshape(n, -1)
        d = x.shape[1]
        # +-1 codes: s_i . s_j = agreements - disagreements, so agreements = (d + s_i.s_j) / 2;
        # float32 sums of +-1 are exact below 2**24 units.
        s = x.gt(0).to(torch.float32 if d < 2 ** 24 else torch.float64).mul_(2).sub_(1)
        kernel[...] += ((s @ s.T).double().cpu().numpy() + d) / 2

    hooks = [m.register_forward_hook(count) for m in _main_modules(net, _RECTIFIERS)]
    out: dict[str, float] = {}
    try:
        if "jacov" in names:
            for p in net.parameters():
                p.requires_grad_(False)
            x = _as_input(net, inputs).clone().requires_grad_(True)
            with torch.enable_grad():
                y = _main_output(net(x))
                # NASWOT v1's batch Jacobian: d(sum_c y_nc)/dx_n, one row per input
                (grad,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
            out["jacov"] = _jacov_score(grad, n)
        else:
            with torch.no_grad():
                net(_as_input(net, inputs))
    finally:
        for h in hooks:
            h.remove()
    if "naswot" in names:
        out["naswot"] = _logdet_floor(kernel)
    return out


def _logdet_floor(kernel: np.ndarray) -> float:
    """log det of the naswot kernel (Mellor et al. 2021). K is the Gram matrix of
    integer code vectors, so a nonsingular K has det >= 1 and log det >= 0: a singular K
    (identical codes, e.g. identical inputs, or no rectifier in the network) gets the floor
    0.0, the lowest value a nonsingular K can reach. Singular = numerically rank deficient
    (numpy's matrix_rank tolerance on the eigenvalues)."""
    eig = np.linalg.eigvalsh(kernel)
    if not np.all(np.isfinite(eig)):
        return float("nan")
    tol = max(eig[-1], 0.0) * kernel.shape[0] * np.finfo(np.float64).eps
    if eig[0] <= tol:
        return 0.0
    sign, logdet = np.linalg.slogdet(kernel)
    return max(float(logdet), 0.0) if sign > 0 else 0.0


def _jacov_score(grad: torch.Tensor | None, n: int) -> float:
    """-sum_i log(l_i + k) + 1/(l_i + k) over the eigenvalues l of the n x n correlation of
    the Jacobian rows, k = 1e-5 (Mellor et al., arXiv:2006.04647v1, the form NASLib keeps).
    The correlation of a constant row (an input the output does not depend on) is NaN."""
    if grad is None:
        return float("nan")
    rows = grad.detach().reshape(n, -1).double().cpu().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.atleast_2d(np.corrcoef(rows))
    if not np.all(np.isfinite(corr)):
        return float("nan")
    eig = np.linalg.eigvalsh(corr) + _JACOV_K
    return float(-np.sum(np.log(eig) + 1.0 / eig))


def _loss_gradients(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
                    ) -> dict[str, float]:
    """snip, grad_norm and fisher from one forward/backward of the cross-entropy.

    * snip (Lee et al. 2019, unnormalised): sum |theta * dL/dtheta|, the gradient of
      the loss with respect to a multiplicative mask of ones.
    * grad_norm (Abdelfattah et al. 2021): sum over conv/linear layers of ||dL/dW||_2.
    * fisher (Turner et al. 2020): per output channel k of each conv/linear,
      1/2 mean_n (sum_hw a_nkhw dL/da_nkhw)^2 with a the layer's output; as NASLib and
      zero-cost-nas, each channel's value counts once per weight of that channel
      (x C_in/g * k_h * k_w) before the sum.
    """
    net = _prepared(net, inputs.device)
    layers = _weights(net)
    fisher = [0.0] * len(layers)

    def keep(i: int) -> Callable:
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            act = out.detach()

            def on_grad(grad: torch.Tensor) -> None:
                g = act * grad
                if g.ndim > 2:
                    g = g.sum(dim=tuple(range(2, g.ndim)))
                fan_in = module.weight[0].numel()
                fisher[i] += float(g.double().pow(2).mean(0).mul(0.5).sum()) * fan_in
            out.register_hook(on_grad)
        return hook

    hooks = [m.register_forward_hook(keep(i)) for i, m in enumerate(layers)]
    try:
        with torch.enable_grad():
            out = _main_output(net(_as_input(net, inputs)))
            F.cross_entropy(out, targets).backward()
    finally:
        for h in hooks:
            h.remove()
    grads = [(m.weight, m.weight.grad) for m in layers if m.weight.grad is not None]
    return {"snip": _sum((w * g).abs() for w, g in grads),
            "grad_norm": sum(float(g.double().norm()) for _, g in grads),
            "fisher": float(sum(fisher))}


def _grasp(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    """GraSP (Wang et al. 2020): sum over conv/linear weights of -theta * (H g),
    g = dL/dtheta, H g a Hessian-vector product; temperature 1. The sign is NASLib's and
    zero-cost-nas's (higher predicted better; the paper prunes the lowest of theta * H g)."""
    net = _prepared(net, inputs.device)
    weights = [m.weight for m in _weights(net)]
    with torch.enable_grad():
        out = _main_output(net(_as_input(net, inputs)))
        grads = torch.autograd.grad(F.cross_entropy(out, targets), weights,
                                    create_graph=True, allow_unused=True)
        used = [(w, g) for w, g in zip(weights, grads) if g is not None]
        if not used:
            return 0.0
        z = sum((g.detach() * g).sum() for _, g in used)
        hg = torch.autograd.grad(z, [w for w, _ in used], allow_unused=True)
    return _sum(-w.detach() * h for (w, _), h in zip(used, hg) if h is not None)


def _zen(net: nn.Module, inputs: torch.Tensor, seed: int) -> float:
    """Zen-score (Lin et al. 2021): conv and linear weights ~ N(0, 1), BN weight 1 and
    bias 0; x, e ~ N(0, 1) of the batch's shape; score = log mean_n ||f(x) - f(x + 0.01 e)||_1
    + sum over BN layers of log sqrt(mean_c sigma_c^2), f = the features entering the main
    global pooling (or the classifier when there is none). sigma_c^2 is the batch variance
    each BN normalises x with, as the paper defines it; the reference code reads running_var
    after two train-mode passes instead (mostly its initial 1, at momentum 0.1)."""
    gen = torch.Generator(device=inputs.device).manual_seed(int(seed))
    net = _prepared(net, inputs.device)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, _WEIGHTED):
                m.weight.normal_(0.0, 1.0, generator=gen)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                m.weight.fill_(1.0)
                m.bias.zero_()
        shape = tuple(inputs.shape)
        dtype = _as_input(net, inputs[:1]).dtype
        x = torch.randn(shape, generator=gen, device=inputs.device, dtype=dtype)
        e = torch.randn(shape, generator=gen, device=inputs.device, dtype=dtype)
        pools = _main_modules(net, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))
        tap = pools[-1] if pools else (_main_modules(net, nn.Linear) or [None])[-1]
        feats: list[torch.Tensor] = []
        variances: list[float] = []
        record_bn = [True]

        def take(module: nn.Module, args: tuple) -> None:
            feats.append(args[0])

        def bn_var(module: nn.Module, args: tuple) -> None:
            if record_bn[0]:
                v = args[0].double()
                dims = [d for d in range(v.ndim) if d != 1]
                variances.append(float(v.var(dim=dims, unbiased=False).mean()))

        hooks = [] if tap is None else [tap.register_forward_pre_hook(take)]
        hooks += [m.register_forward_pre_hook(bn_var)
                  for m in _main_modules(net, nn.modules.batchnorm._BatchNorm)]
        try:
            out = _main_output(net(x))
            record_bn[0] = False
            out2 = _main_output(net(x + _ZEN_GAMMA * e))
        finally:
            for h in hooks:
                h.remove()
        a, b = (feats[-2], feats[-1]) if tap is not None else (out, out2)
        diff = (a.double() - b.double()).abs().reshape(shape[0], -1).sum(1).mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        bn = float(np.sum(0.5 * np.log(np.asarray(variances, dtype=np.float64))))
        return float(np.log(float(diff))) + bn


# Public API ------------------------------------------------------------------------------------

def measure(proxies: str | Iterable[str], net: nn.Module, inputs: torch.Tensor,
            targets: torch.Tensor | None, *, seed: int = 0) -> dict[str, float]:
    """Network proxies (every proxy but ``params`` and ``macs``, which need the spec: use
    :func:`scores`) of a built ``net`` on one batch; ``net``, ``inputs`` and ``targets`` are
    left unchanged. Proxies that share a pass (naswot and jacov; snip, grad_norm and fisher)
    are computed together, with the same values as alone.

    Raises:
        ValueError: an unknown proxy, or a batch of the wrong shape or labels.
        ProxyError: a proxy came out NaN or infinite.
    """
    names = _names(proxies)
    spec_only = [n for n in names if n in ("params", "macs")]
    if spec_only:
        raise ValueError(f"proxies {spec_only} are computed from the spec; call scores(..., "
                         f"spec, ...) instead of measure(..., net, ...)")
    spec = getattr(net, "spec", None)
    _check_batch(names, spec.input if isinstance(spec, ArchSpec) else None, inputs, targets)
    values: dict[str, float] = {}
    if "synflow" in names:
        values["synflow"] = _synflow(net, inputs)
    if "naswot" in names or "jacov" in names:
        values.update(_codes_and_jacobian(net, inputs, names))
    if any(n in names for n in ("snip", "grad_norm", "fisher")):
        values.update(_loss_gradients(net, inputs, targets))
    if "grasp" in names:
        values["grasp"] = _grasp(net, inputs, targets)
    if "zen" in names:
        values["zen"] = _zen(net, inputs, seed)
    return {n: _finite(n, values[n]) for n in names}


def scores(proxies: str | Iterable[str], spec: ArchSpec, inputs: torch.Tensor,
           targets: torch.Tensor | None, *, seed: int = 0,
           init: str = "kaiming") -> dict[str, float]:
    """Several proxies of ``spec`` from one build (``nas.build.build(spec, seed=seed)``) and
    one batch (``inputs`` N x C x H x W float, ``targets`` N long; ``None`` when no proxy in
    :data:`NEEDS_LABELS` is asked for). Same ``spec``, batch, ``seed`` and ``init``: the
    same floats.

    ``init`` (:data:`INITS`): ``kaiming``, the weights training starts from (``build``'s
    initialisation); ``pytorch``, each layer's own ``reset_parameters`` (PyTorch's default
    initialisation, which the frameworks behind the published proxy scores use; the
    gradient-based proxies, grasp most, rank differently under it: RESULTS section 14).

    Raises:
        ValueError: an unknown proxy, or a batch that does not fit the spec.
        ProxyError: a proxy came out NaN or infinite (the message names it).
    """
    names = _names(proxies)
    if not isinstance(spec, ArchSpec):
        raise TypeError(f"spec must be an ArchSpec, got {type(spec).__name__}; decode a "
                        f"genome with SearchSpace.decode")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed={seed!r} is invalid; pass an integer")
    if init not in INITS:
        raise ValueError(f"init={init!r} is invalid; pass one of {', '.join(INITS)}")
    _check_batch(names, spec.input, inputs, targets)
    values: dict[str, float] = {}
    if "params" in names or "macs" in names:
        macs, params, _ = totals(spec)
        values.update(params=float(params), macs=float(macs))
    network = [n for n in names if n not in ("params", "macs")]
    if network:
        # Constructing the modules draws PyTorch's default initialisation from the global
        # generator before build() re-initialises them from the seed: keep the caller's state.
        with torch.random.fork_rng(devices=[]):
            net = build(spec, seed=int(seed))
            if init == "pytorch":
                torch.manual_seed(int(seed))
                for m in net.modules():
                    if callable(getattr(m, "reset_parameters", None)):
                        m.reset_parameters()
        values.update(measure(network, net, inputs, targets, seed=int(seed)))
    return {n: values[n] for n in names}


def score(proxy: str, spec: ArchSpec, inputs: torch.Tensor, targets: torch.Tensor | None,
          *, seed: int = 0, init: str = "kaiming") -> float:
    """One proxy of ``spec`` on one batch; see :func:`scores` and the module docstring."""
    if not isinstance(proxy, str):
        raise TypeError(f"proxy={proxy!r} is invalid; pass one name of {', '.join(PROXIES)}")
    return scores((proxy,), spec, inputs, targets, seed=seed, init=init)[proxy]


def _reference(reference: Mapping[str, Sequence[float]], values: Mapping[str, float]
               ) -> list[tuple[str, np.ndarray, float]]:
    """``(name, reference values, the network's value)`` per proxy of ``reference``."""
    if not reference:
        raise ValueError("reference is empty; pass {proxy: values of a reference sample}, "
                         "e.g. from reference_sample(...)")
    out = []
    for name, sample in reference.items():
        if name not in values:
            raise ValueError(f"values has no {name!r}; compute every proxy of the reference "
                             f"({', '.join(reference)})")
        ref = np.asarray(sample, dtype=np.float64).ravel()
        if ref.size == 0 or not np.all(np.isfinite(ref)):
            raise ValueError(f"reference[{name!r}] must be a non-empty sequence of finite "
                             f"floats, got {len(ref)} values")
        v = float(values[name])
        if not math.isfinite(v):
            raise ValueError(f"values[{name!r}]={v} is invalid; pass a finite score")
        out.append((name, ref, v))
    return out


def _symlog(x: np.ndarray | float) -> np.ndarray:
    """sign(x) log(1 + |x|): proxies spanning many orders of magnitude (synflow) on a scale
    where a normal fits; monotone, so no proxy's order changes."""
    return np.sign(x) * np.log1p(np.abs(x))


def standardised(values: Mapping[str, float], reference: Mapping[str, Sequence[float]]
                 ) -> dict[str, float]:
    """Each proxy of ``reference`` as a z-score within it: the symmetric log of the value,
    centred on the reference's median and scaled by its interquartile range / 1.349 (the
    standard deviation of a normal; the standard deviation where the quartiles tie, 1
    where every reference value is equal). Monotone in the proxy, unbounded: networks
    beyond every reference network keep their order."""
    out = {}
    for name, ref, v in _reference(reference, values):
        t = _symlog(ref)
        q1, med, q3 = np.quantile(t, [0.25, 0.5, 0.75])
        scale = (q3 - q1) / 1.349 or float(np.std(t)) or 1.0
        out[name] = float((_symlog(v) - med) / scale)
    return out


def combine(values: Mapping[str, float], reference: Mapping[str, Sequence[float]], *,
            method: str = "rank_mean") -> float:
    """One network's proxies combined into one number in [0, 1], higher predicted better.
    ``reference`` holds the same proxies of a fixed random sample of the space
    (:func:`reference_sample`), computed once; ``values`` may hold more proxies than
    ``reference`` names.

    * ``rank_mean``: the mean over the proxies of the network's percentile rank within
      that proxy's reference values (``scipy.stats.percentileofscore(kind="mean")`` / 100:
      below every value 0, above every value 1, ties count half). Networks above every
      reference network on every proxy all get 1.
    * ``z_mean``: the normal probability of the mean of the proxies' z-scores
      (:func:`standardised`): about the mean percentile where the proxies are normal after
      the symmetric log, and never tied where the z-scores differ.
    """
    if method not in COMBINATIONS:
        raise ValueError(f"unknown combination {method!r}; known: {', '.join(COMBINATIONS)}")
    if method == "z_mean":
        return 1.0 - error(values, reference, method=method)
    ranks = [percentileofscore(ref, v, kind="mean") / 100.0
             for _, ref, v in _reference(reference, values)]
    return float(np.mean(ranks))


def error(values: Mapping[str, float], reference: Mapping[str, Sequence[float]], *,
          method: str = "z_mean") -> float:
    """What a search minimises for a network scored by proxies, in [0, 1]: ``1 -`` the
    combination. For ``z_mean`` it is the normal survival function of the mean z-score,
    computed directly, so that networks far beyond the reference stay apart (``1 -
    combine`` would round them all to 0). With one proxy in ``reference`` it orders
    networks exactly as the proxy does."""
    if method not in COMBINATIONS:
        raise ValueError(f"unknown combination {method!r}; known: {', '.join(COMBINATIONS)}")
    if method == "rank_mean":
        return 1.0 - combine(values, reference, method=method)
    z = standardised(values, reference)
    return float(norm.sf(np.mean(list(z.values()))))


def reference_sample(space: Any, proxies: Iterable[str], inputs: torch.Tensor,
                     targets: torch.Tensor | None, *, n: int = 64, seed: int = 0
                     ) -> dict[str, list[float]]:
    """The reference of :func:`combine`: ``proxies`` of ``n`` networks drawn by
    ``space.sample(n, numpy.random.default_rng(seed))``, each built with ``seed``; a network
    on which a proxy fails (:class:`ProxyError`) is left out of every list."""
    names = _names(proxies)
    out: dict[str, list[float]] = {name: [] for name in names}
    for genome in space.sample(n, np.random.default_rng(seed)):
        try:
            values = scores(names, space.decode(genome), inputs, targets, seed=seed)
        except ProxyError:
            continue
        for name in names:
            out[name].append(values[name])
    return out




__all__ = ["PROXIES", "COMBINATIONS", "DEFAULT_COMBINATION", "BATCH", "NEEDS_LABELS",
           "ProxyError", "combine", "error", "measure", "reference_sample", "score", "scores",
           "standardised"]
