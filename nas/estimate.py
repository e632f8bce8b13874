"""Know the bill before paying it: a search's training time, estimated before it trains.

The model (per candidate, with ``E`` epochs of ``N`` training and ``V`` validation images in
batches of ``B``, a network of ``M`` forward MACs per image)::

    seconds = c + E * (ceil(N/B) * L * s + ceil(V/B) * L * v
                       + (M / R) * (3N + V) + A * q * (N + V / 3))

with ``L`` the network's layers (leaf modules: each costs kernel launches and Python work
per batch whatever its size) and ``A`` its activations per image (every layer's output
elements: the memory-bound work of BN, activations, pooling and additions, which MACs do not
count; NAS-Bench-201's cells are full of it). ``R`` (forward-MAC equivalents per second),
``q`` (training seconds per activation per image), ``s`` and ``v`` (fixed seconds per layer
of a training step and of a validation batch) are measured on this machine in a few seconds
by timing training steps of four sampled networks of the space (its smallest, quartiles and
median by MACs) and of LeNet-5 with the recipe's thread count at two batch sizes (at most 8
and 32; each timing the fastest step of two passes over all probes): the difference between
the two gives each network's seconds per image, fitted by non-negative least squares on MACs
and activations, and what remains of a step its fixed part, fitted on layers (timing one
small batch alone lets the fixed part absorb compute, which a full batch then lacks). ``c``
(trainer, data module, first batches) by one real, two-batch `nas.train.train_spec` run of
LeNet-5. Each baseline's training step is timed too and gives it its own ``R`` (dense
convolutions run at several times the MAC rate of a space of depthwise ones). A training
step costs about three forward passes: the backward pass computes the gradients with respect
to the activations and to the weights, each about one forward's MACs (Kaplan et al. 2020,
"Scaling Laws for Neural Language Models", sec. 2.1: training compute ~ 6N per token against
2N forward). MACs are exact (`nas.cost`); candidates count at the mean MACs of feasible
samples of the space, baselines at their own. The run takes the sum over candidates and
baselines divided by the evaluator's concurrent slots.

`estimate_search` builds the bill of a `nas.search.Search`; `Bill.report` prints it and,
above `ADVICE_ABOVE_S`, the settings that would bring it down with their estimated effect;
`Bill.remaining_s` is the progress bar's ETA (the same model, scaled by how long the
finished candidates actually took against their estimate).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from scipy.optimize import nnls

from nas import registry
from nas.build import build
from nas.config import CONF_DIR
from nas.cost import human, totals
from nas.objectives import Coster
from nas.spec import ArchSpec
from nas.train import TrainConfig, accelerator_of, torch_threads, train_spec
from search_spaces import baselines as zoo

#: forward-MAC multiples of one training step (forward + backward; see the module docstring)
TRAIN_MACS_FACTOR = 3.0
#: above this estimate (seconds) the report says which settings bring it down
ADVICE_ABOVE_S = 3600.0
#: sampled genomes that stand for the search's candidates
SAMPLES = 200
#: the two batch sizes the throughput probes time (at most; the recipe's if smaller)
MEASURE_BATCHES = (8, 32)
#: seconds the training-step probes take per network and batch size, split over
#: ``PROBE_ROUNDS`` passes over all of them (each timing is its fastest pass)
PROBE_BUDGET_S = 0.5
PROBE_ROUNDS = 2
#: the ETA's pace (actual / estimated) starts as if this share of the run had gone as estimated
ETA_PRIOR_SHARE = 0.1


# --------------------------------------------------------------------------------------------
# Throughput on this machine
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Throughput:
    """What one candidate slot achieves on this machine (see the module docstring)."""

    macs_per_s: float  # R: forward-MAC equivalents per second while training
    step_s: float  # s: fixed seconds per layer of a training step
    eval_step_s: float  # v: fixed seconds per layer of a validation batch
    candidate_s: float  # c: fixed seconds per candidate
    act_s: float = 0.0  # q: training seconds per activation per image (memory-bound work)
    measured_s: float = 0.0  # how long measuring took
    #: R of named networks timed on their own (baselines: dense convolutions run at
    #: several times the MAC rate of depthwise ones)
    rates: Mapping[str, float] = field(default_factory=dict)
    note: str = ""  # how it was measured, where not by the probes (zero-cost scores)

    def describe(self) -> str:
        if self.note:
            return self.note
        parts = []  # a term the fit left at zero is not printed (an infinite MAC rate)
        if math.isfinite(self.macs_per_s):
            parts.append(f"{human(self.macs_per_s)}MAC/s")
        if self.act_s > 0 or not parts:
            parts.append(f"{self.act_s * 1e9:.2f} ns/activation")
        parts.append(f"{self.step_s * 1e3:.2f} ms/layer/step")
        return f"{' + '.join(parts)}, {self.candidate_s:.1f} s/candidate"


def _step_seconds(net: Any, x: Any, y: Any, *, train: bool, budget_s: float = 1.0,
                  clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds of one training step (forward, backward, SGD) or one evaluation forward of
    ``net`` on the batch ``(x, y)``: the fastest of up to 8 after one warm-up step, read on
    ``clock`` (``time.thread_time`` for one CPU thread: what the step costs, whatever else
    runs). The fastest, not the median: interruptions only add time, and a step inside
    training runs warm (the median of a few isolated steps priced MBConv networks' training
    1.3-1.4x above its measured time; RESULTS section 16)."""
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        if train:
            out = net(x)
            out = out[0] if isinstance(out, (tuple, list)) else out
            loss = F.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        else:
            with torch.no_grad():
                net(x)

    net.train(train)
    t_end = time.perf_counter() + budget_s
    step()  # warm-up: allocations, kernel selection
    times: list[float] = []
    while not times or (len(times) < 8 and time.perf_counter() < t_end):
        t0 = clock()
        step()
        times.append(clock() - t0)
    return float(np.min(times))


def leaf_modules(spec: ArchSpec) -> int:
    """Layers of ``spec`` as PyTorch runs them: the modules of its network without
    children."""
    return sum(1 for m in build(spec).modules() if next(m.children(), None) is None)


def measure_throughput(specs: Sequence[ArchSpec], *, data: Mapping, train: Any,
                       val_images: int, tiny: ArchSpec,
                       named: Mapping[str, ArchSpec] | None = None,
                       threads: int | None = None) -> Throughput:
    """Time training steps of ``specs`` (networks of the space at several sizes: least
    squares of their seconds per image on MACs and activations give R and q, of their fixed
    seconds per step on layers s) and evaluation batches of the smallest (v), each at the
    two batch sizes of `MEASURE_BATCHES` (each timing the fastest of `PROBE_ROUNDS` passes
    over all of them, `PROBE_BUDGET_S` per network and batch), then one two-batch
    `train_spec` run of ``tiny`` on the real data config with the recipe's batch size (c;
    its validation split has ``val_images``), with ``threads`` (None: the recipe's) torch
    threads, on the CPU or the first GPU as the recipe would. Each of ``named`` (the
    baselines) is timed too, for its own R (``Throughput.rates``).

    With one CPU thread (the pool's workers on small candidates) the timings are CPU time,
    which other processes' work inflates less than wall time (not at all on separate
    physical cores; on two hyperthreads of one core it still does)."""
    t_start = time.perf_counter()
    cfg = TrainConfig.from_any(train)
    device = torch.device("cuda" if accelerator_of(cfg) == "gpu" else "cpu")
    # Steps are timed at two small batches (the fixed part per step does not depend on the
    # batch, the rest is linear in it), so that large networks take a second, not a minute.
    B1, B2 = (min(cfg.batch_size, b) for b in MEASURE_BATCHES)
    specs = sorted(specs, key=lambda sp: totals(sp)[0])
    threads = threads or cfg.num_threads
    cpu_clock = device.type == "cpu" and threads == 1
    clock = time.thread_time if cpu_clock else time.perf_counter

    def timed(spec: ArchSpec, is_train: bool, batch: int) -> float:
        c, h, w = spec.input
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(batch, c, h, w, generator=gen).to(device)
        y = torch.randint(0, spec.num_classes, (batch,), generator=gen).to(device)
        t = _step_seconds(build(spec, seed=0).to(device), x, y, train=is_train,
                          budget_s=PROBE_BUDGET_S / PROBE_ROUNDS, clock=clock)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return t

    named = dict(named or {})
    probes = [*specs, tiny]
    # every (network, train?, batch) timing, the fastest of PROBE_ROUNDS passes over all of
    # them: a slow spell of the machine (seconds long, seen here: 1.5-1.8x on every step
    # of one probe) then costs one pass, not the estimate
    keys = [(i, True, b) for i in range(len(probes)) for b in dict.fromkeys((B1, B2))]
    keys += [(0, False, b) for b in dict.fromkeys((B1, B2))]
    keys += [(name, True, b) for name in named for b in dict.fromkeys((B1, B2))]
    best: dict = {}

    def spec_of(key) -> ArchSpec:
        return named[key] if isinstance(key, str) else probes[key]

    def per_image_and_fixed(key, is_train: bool) -> tuple[float, float]:
        """(seconds per image, fixed seconds per step) of probe ``key`` from two batch
        sizes."""
        t1 = best[(key, is_train, B1)]
        if B2 == B1:
            return t1 / B1, 0.0
        t2 = best[(key, is_train, B2)]
        per_image = max(0.0, (t2 - t1) / (B2 - B1))
        return per_image, max(0.0, t1 - B1 * per_image)

    with torch_threads(threads):
        for _ in range(PROBE_ROUNDS):
            for key in keys:
                t = timed(spec_of(key[0]), key[1], key[2])
                best[key] = min(best.get(key, math.inf), t)
        sizes = [totals(sp) for sp in probes]
        macs = np.array([float(m) for m, _, _ in sizes])
        acts = np.array([float(a) for _, _, a in sizes])
        layers = np.array([float(leaf_modules(sp)) for sp in probes])
        timings = np.array([per_image_and_fixed(i, True) for i in range(len(probes))])
        # seconds per image = 3 MACs / R + activations * q; fixed seconds = layers * s
        (slope, act_s), _ = nnls(np.column_stack([TRAIN_MACS_FACTOR * macs, acts]),
                                 timings[:, 0])
        if slope <= 0 and act_s <= 0:  # noise larger than the differences: all compute
            slope = float(timings[:, 0].sum() / (TRAIN_MACS_FACTOR * macs).sum())
        rate = 1.0 / float(slope) if slope > 0 else float("inf")
        (step,), _ = nnls(layers[:, None], timings[:, 1])
        _, ev_fixed = per_image_and_fixed(0, False)
        eval_step = ev_fixed / layers[0]
        rates = {}
        for name, spec in named.items():
            per_image, _ = per_image_and_fixed(name, True)
            m = float(totals(spec)[0])
            rates[name] = TRAIN_MACS_FACTOR * m / per_image if per_image > 0 and m else rate
        # c: a real candidate of two training batches, minus what the model above says
        # its batches took
        run_clock = time.process_time if cpu_clock else time.perf_counter
        t0 = run_clock()
        train_spec(tiny, data=data, seed=0,
                   train=replace(cfg, epochs=1, limit_train_batches=2, max_time_s=None,
                                 num_threads=threads))
        wall = run_clock() - t0
    tp = Throughput(macs_per_s=rate, step_s=float(step), eval_step_s=float(eval_step),
                    candidate_s=0.0, act_s=float(act_s), rates=rates)
    B = cfg.batch_size
    modelled = (job_seconds(macs[-1], layers=layers[-1], epochs=1, train_images=2 * B,
                            val_images=int(val_images), batch_size=B, tp=tp, acts=acts[-1]))
    return replace(tp, candidate_s=max(0.0, wall - modelled),
                   measured_s=time.perf_counter() - t_start)


# --------------------------------------------------------------------------------------------
# The bill
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What a run will train: the inputs of the bill, changed one at a time for advice."""

    n_candidates: int
    candidate_macs: float  # mean forward MACs per image of a candidate
    epochs: float  # per candidate; a mean for schedules that stop some candidates early
    train_images: int  # per epoch, after train_fraction and limit_train_batches
    val_images: int
    batch_size: int
    candidate_layers: float = 1.0  # mean layers (leaf modules) of a candidate
    #: name -> (MACs, layers) or (MACs, layers, activations)
    baselines: dict[str, tuple[float, ...]] = field(default_factory=dict)
    candidate_acts: float = 0.0  # mean activations per image of a candidate
    baseline_epochs: float | None = None  # None: ``epochs``
    scored_images: int | None = None  # candidates scored, not trained (evaluator=supernet)
    baselines_scored: bool = False  # baselines scored like the candidates (zero_cost)
    extra_s: float = 0.0  # one-off work (training a supernet)
    parallel: int = 1


def job_seconds(macs: float, *, layers: float, epochs: float, train_images: int,
                val_images: int, batch_size: int, tp: Throughput,
                rate: float | None = None, acts: float = 0.0) -> float:
    """Seconds to train one network of ``macs`` forward MACs and ``acts`` activations per
    image and ``layers`` leaf modules (module docstring); ``rate``: its own R, if
    measured."""
    rate = tp.macs_per_s if rate is None else rate
    train_steps = math.ceil(train_images / batch_size)
    val_steps = math.ceil(val_images / batch_size) if val_images else 0
    per_epoch = (layers * (train_steps * tp.step_s + val_steps * tp.eval_step_s)
                 + macs * (TRAIN_MACS_FACTOR * train_images + val_images) / rate
                 + acts * tp.act_s * (train_images + val_images / TRAIN_MACS_FACTOR))
    return tp.candidate_s + epochs * per_epoch


def score_seconds(macs: float, *, layers: float, images: int, batch_size: int,
                  tp: Throughput, acts: float = 0.0) -> float:
    """Seconds to score a network without training it (forward passes over ``images``)."""
    return (tp.candidate_s + layers * math.ceil(images / batch_size) * tp.eval_step_s
            + macs * images / tp.macs_per_s + acts * tp.act_s * images / TRAIN_MACS_FACTOR)


def candidate_seconds(plan: Plan, tp: Throughput, macs: float | None = None) -> float:
    """One candidate of ``macs`` (default: the plan's mean) under ``plan``."""
    macs = plan.candidate_macs if macs is None else macs
    # activations scale with the network as MACs do, around the plan's mean
    acts = plan.candidate_acts * (macs / plan.candidate_macs if plan.candidate_macs else 1.0)
    if plan.scored_images is not None:
        return score_seconds(macs, layers=plan.candidate_layers, images=plan.scored_images,
                             batch_size=plan.batch_size, tp=tp, acts=acts)
    return job_seconds(macs, layers=plan.candidate_layers, epochs=plan.epochs,
                       train_images=plan.train_images, val_images=plan.val_images,
                       batch_size=plan.batch_size, tp=tp, acts=acts)


def baseline_seconds(plan: Plan, tp: Throughput) -> dict[str, float]:
    sizes = {name: (b[0], b[1], b[2] if len(b) > 2 else 0.0)
             for name, b in plan.baselines.items()}
    if plan.baselines_scored and plan.scored_images is not None:
        return {name: score_seconds(m, layers=n, images=plan.scored_images,
                                    batch_size=plan.batch_size, tp=tp, acts=a)
                for name, (m, n, a) in sizes.items()}
    epochs = plan.epochs if plan.baseline_epochs is None else plan.baseline_epochs
    # a baseline timed on its own has its own R, which its activations' work is part of
    return {name: job_seconds(m, layers=n, epochs=epochs, train_images=plan.train_images,
                              val_images=plan.val_images, batch_size=plan.batch_size, tp=tp,
                              rate=tp.rates.get(name),
                              acts=0.0 if name in tp.rates else a)
            for name, (m, n, a) in sizes.items()}


def work_seconds(plan: Plan, tp: Throughput) -> float:
    """Slot-seconds of the whole plan (candidates, baselines, one-off work)."""
    return (plan.n_candidates * candidate_seconds(plan, tp)
            + sum(baseline_seconds(plan, tp).values()) + plan.extra_s * plan.parallel)


def total_seconds(plan: Plan, tp: Throughput) -> float:
    """Wall-clock seconds of the plan with ``plan.parallel`` slots kept busy."""
    return work_seconds(plan, tp) / max(1, plan.parallel)


def sha_mean_epochs(rungs: Sequence[float], eta: float) -> float:
    """Mean epochs per candidate under successive halving (Li et al. 2020): all train to
    ``rungs[0]``, the best 1/eta continue to ``rungs[1]`` from their checkpoint, ..."""
    prev, mean = 0.0, 0.0
    for k, r in enumerate(rungs):
        mean += (float(r) - prev) / float(eta) ** k
        prev = float(r)
    return mean


def duration(seconds: float) -> str:
    """12 s, 4.2 min, 3.1 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class Bill:
    """A run's estimated time, its advice, and the progress bar's ETA."""

    plan: Plan
    tp: Throughput
    advice: list[tuple[str, float]] = field(default_factory=list)  # (override, total s)
    started: float = field(default_factory=lambda: time.monotonic())
    done_estimate_s: float = 0.0  # estimated slot-seconds of the finished work
    #: plan -> advice for it (set by `estimate_search`; `parallel` recomputes the advice)
    _advise: Any = field(default=None, repr=False)

    @property
    def total_s(self) -> float:
        return total_seconds(self.plan, self.tp)

    def parallel(self, slots: int) -> None:
        """Spread the plan over ``slots`` concurrent candidates; advice follows."""
        self.plan = replace(self.plan, parallel=max(1, int(slots)))
        if self._advise is not None:
            self.advice = self._advise(self.plan) if self.total_s > ADVICE_ABOVE_S else []
        self.started = time.monotonic()

    def seconds_of(self, macs: float, *, baseline: str | None = None) -> float:
        """Estimated slot-seconds of one finished candidate or baseline."""
        if baseline is not None and baseline in self.plan.baselines:
            return baseline_seconds(self.plan, self.tp)[baseline]
        return candidate_seconds(self.plan, self.tp, macs)

    def finished(self, macs: float, *, baseline: str | None = None) -> None:
        self.done_estimate_s += self.seconds_of(macs, baseline=baseline)

    def remaining_s(self) -> float:
        """Estimated seconds left: the work not done yet, scaled by actual / estimated
        time of the work done so far, shrunk towards 1 by `ETA_PRIOR_SHARE` of the
        estimate (one small first job that waited for workers to start must not multiply
        the whole ETA)."""
        slots = max(1, self.plan.parallel)
        work = work_seconds(self.plan, self.tp)
        left = max(0.0, work - self.done_estimate_s) / slots
        prior = ETA_PRIOR_SHARE * work / slots
        spent = time.monotonic() - self.started if self.done_estimate_s > 0 else 0.0
        return left * (spent + prior) / (self.done_estimate_s / slots + prior)

    def report(self) -> str:
        p, tp = self.plan, self.tp
        what = ("zero-cost scores" if p.baselines_scored
                else f"scored on {p.scored_images:,} images each" if p.scored_images is not None
                else f"{p.epochs:g} epochs of {p.train_images:,} images "
                     f"(+{p.val_images:,} validation)")
        lines = [f"estimate: {duration(self.total_s)} for {p.n_candidates} candidates "
                 f"(mean {human(p.candidate_macs)} MACs, {what}) and {len(p.baselines)} "
                 f"baselines on {p.parallel} slot{'s' * (p.parallel != 1)}; measured "
                 f"{tp.describe()} in {tp.measured_s:.1f} s"]
        per_base = baseline_seconds(p, tp)
        if per_base:
            lines.append("  baselines: " + ", ".join(
                f"{n} {duration(s)}" for n, s in sorted(per_base.items(), key=lambda x: -x[1])))
        if self.advice:
            lines.append(f"  that is over {duration(ADVICE_ABOVE_S)}; each of these brings "
                         f"it down (estimated total):")
            width = max(len(o) for o, _ in self.advice)
            lines += [f"    {o:<{width}}  -> {duration(s)}" for o, s in self.advice]
        return "\n".join(lines)


def advise(plan: Plan, tp: Throughput, *, train_fraction: float,
           resolutions: Sequence[int] | None = None,
           resolution_macs: Mapping[int, float] | None = None,
           sha: tuple[Sequence[float], float] | None = None,
           supernet: tuple[float, float] | None = None,
           supernet_epochs: float | None = None,
           calib_images: int = 0) -> list[tuple[str, float]]:
    """Overrides that shorten ``plan`` and the estimated total after each (each alone).

    Args:
        train_fraction: the current ``train.train_fraction``.
        resolutions: the space's current resolution choices; ``resolution_macs`` maps a
            smaller resolution to the candidates' mean MACs there.
        sha: (rungs, eta) of ``fidelity=sha`` when that config exists.
        supernet: (largest, smallest) subnet MACs, for ``evaluator=supernet``, with the
            supernet's ``supernet_epochs``; ``calib_images`` BN recalibration images.
    """
    now = total_seconds(plan, tp)
    out: list[tuple[str, float]] = []

    def fit(options: Sequence[Any], make) -> None:
        """The mildest option that fits under the threshold, else the strongest."""
        tried = [(o, total_seconds(make(o), tp)) for o in options]
        tried = [(o, s) for o, s in tried if s < now * 0.9]
        if tried:
            under = [t for t in tried if t[1] <= ADVICE_ABOVE_S]
            o, s = under[0] if under else tried[-1]
            out.append((o[0], s))

    if plan.scored_images is None:
        fit([(f"train.train_fraction={f * train_fraction:g}", f)
             for f in (0.5, 0.25, 0.1, 0.05, 0.02)],
            lambda o: replace(plan, train_images=max(1, int(plan.train_images * o[1]))))
        batches = math.ceil(plan.train_images / plan.batch_size)
        fit([(f"train.limit_train_batches={n}", n) for n in (200, 100, 50, 20, 10)
             if n < batches],
            lambda o: replace(plan, train_images=o[1] * plan.batch_size))
    if resolution_macs:
        fit([(f"space.resolutions=[{r}]", m) for r, m in sorted(resolution_macs.items(),
                                                                  reverse=True)],
            lambda o: replace(plan, candidate_macs=o[1]))
    if sha is not None and plan.scored_images is None:
        rungs, eta = sha
        out.append(("fidelity=sha", total_seconds(
            replace(plan, epochs=sha_mean_epochs(rungs, eta)), tp)))
    if supernet is not None and supernet_epochs and plan.scored_images is None:
        big, small = supernet
        # sandwich rule: the largest, the smallest and two random subnets per step
        sn = job_seconds(big + small + 2 * plan.candidate_macs,
                         layers=4 * plan.candidate_layers, epochs=supernet_epochs,
                         train_images=plan.train_images, val_images=plan.val_images,
                         batch_size=plan.batch_size, tp=tp)
        out.append(("evaluator=supernet (after python -m nas.supernet)", total_seconds(
            replace(plan, scored_images=plan.val_images + calib_images,
                    extra_s=sn), tp)))
    per_base = baseline_seconds(plan, tp)
    costly = [n for n, s in per_base.items() if s > 0.1 * work_seconds(plan, tp)]
    if costly:
        keep = {n: m for n, m in plan.baselines.items() if n not in costly}
        out.append((f"baselines.names=[{','.join(keep)}]",
                    total_seconds(replace(plan, baselines=keep), tp)))
    return [(o, t) for o, t in out if t < now * 0.9]  # only what really helps


# --------------------------------------------------------------------------------------------
# A search's bill
# --------------------------------------------------------------------------------------------


def estimate_search(search: Any, parallel: int = 1, threads: int | None = None) -> Bill | None:
    """The bill of a `nas.search.Search` whose archive is open (work already archived is
    not counted); None for looked-up results (evaluator=table), which train nothing.
    ``threads``: torch threads per evaluator slot (None: the recipe's). Under successive
    halving a candidate's epochs are the schedule's mean (`sha_mean_epochs`); baselines
    go through every rung."""
    cfg = search.cfg
    ev = OmegaConf.to_container(cfg.evaluator, resolve=True)
    if ev.get("backend") == "table":
        return None
    train = TrainConfig.from_any(OmegaConf.to_container(cfg.train, resolve=True))
    data = OmegaConf.to_container(cfg.data, resolve=True)
    name = data.pop("name")
    dm = registry.datamodule(name, **data, batch_size=train.batch_size,
                         train_fraction=train.train_fraction, val_fraction=train.val_fraction)
    n_train, n_val = dm.split_size("train"), dm.split_size("val")
    lim = train.limit_train_batches
    if isinstance(lim, int) and not isinstance(lim, bool):
        n_train = min(n_train, lim * train.batch_size)
    elif isinstance(lim, float):
        n_train = int(n_train * lim)

    space = search.space
    genomes = space.sample(SAMPLES, np.random.default_rng(2024))
    feasible = [g for g in genomes if search.feasible(g)] or list(genomes)
    infos = sorted((search.coster.info(g, latency=False) for g in feasible),
                   key=lambda i: i["macs"])
    mean_macs = float(np.mean([i["macs"] for i in infos]))
    # the smallest, the quartiles and the median: the fit spans the candidates' sizes
    probes = [infos[int(q * (len(infos) - 1))]["spec"] for q in (0.0, 0.25, 0.5, 0.75)]
    done = {r.arch_id for r in search.archive.records()}
    base_items = [i for i in search.baseline_items(quiet=True) if i["arch_id"] not in done]
    bases = {i["name"]: (float(i["macs"]), float(leaf_modules(i["spec"])),
                         float(totals(i["spec"])[2])) for i in base_items}
    n_left = max(0, int(cfg.budget.evaluations) - len(search.search_records()))
    rungs = getattr(search, "rungs", None)  # fidelity=sha: epochs per rung
    mean_acts = float(np.mean([i["activations"] for i in infos]))
    plan = Plan(n_candidates=n_left, candidate_macs=mean_macs, candidate_acts=mean_acts,
                candidate_layers=float(np.mean([leaf_modules(sp) for sp in probes])),
                epochs=(float(train.epochs) if rungs is None
                        else sha_mean_epochs(rungs, search.eta)),
                baseline_epochs=None if rungs is None else float(rungs[-1]),
                train_images=n_train, val_images=n_val, batch_size=train.batch_size,
                baselines=bases, parallel=max(1, int(parallel)))
    if ev.get("backend") == "supernet":
        calib = int(ev.get("calib_batches", 10)) * train.batch_size
        plan = replace(plan, scored_images=n_val + calib)
    timed = getattr(getattr(getattr(search, "evaluator", None), "task", None),
                    "reference_seconds", None)
    if ev.get("backend") == "zero_cost" and timed:
        # the reference sample, scored before the estimate, times the proxies directly:
        # seconds = c + MACs / R, least squares over its networks
        plan = replace(plan, scored_images=1, batch_size=1, baselines_scored=True)
        tp = score_throughput(timed)
        bill = Bill(plan, tp)
        bill.parallel(parallel)
        return bill
    res = space.decode(space.xu).input[1]
    tiny = zoo.get("lenet5", num_classes=search.num_classes, in_channels=search.in_channels,
                   resolution=res)
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    tp = measure_throughput(probes, data=data_cfg, train=train, val_images=n_val, tiny=tiny,
                            named={i["name"]: i["spec"] for i in base_items},
                            threads=threads)
    sn = (float(totals(space.decode(space.xu))[0]), float(totals(space.decode(space.xl))[0]))
    res_macs: dict[int, float] = {}

    def advice_for(p: Plan) -> list[tuple[str, float]]:
        if not res_macs:  # only a long run needs the space at smaller resolutions
            res_macs.update(_resolution_macs(search))
        return advise(p, tp, train_fraction=train.train_fraction, resolution_macs=res_macs,
                      sha=_sha_schedule(), supernet=sn, supernet_epochs=_supernet_epochs(cfg),
                      calib_images=10 * train.batch_size)

    bill = Bill(plan, tp, _advise=advice_for)
    bill.parallel(parallel)
    return bill


def score_throughput(timed: Sequence[tuple[float, float]]) -> Throughput:
    """A :class:`Throughput` whose ``score_seconds(M, images=1, batch_size=1)`` is
    ``c + M / R`` fitted (non-negative least squares) to ``(MACs, seconds)`` pairs of
    networks scored without training."""
    macs = np.array([m for m, _ in timed], dtype=float)
    secs = np.array([t for _, t in timed], dtype=float)
    coef, _ = nnls(np.column_stack([np.ones_like(macs), macs / 1e9]), secs)
    c, per_gmac = float(coef[0]), float(coef[1])
    rate = 1e9 / per_gmac if per_gmac > 0 else float("inf")
    return Throughput(macs_per_s=rate, step_s=0.0, eval_step_s=0.0, candidate_s=c,
                      measured_s=float(secs.sum()),
                      note=f"{float(np.mean(secs)):.2f} s/network over the reference sample "
                           f"of {len(secs)}")


def _resolution_macs(search: Any) -> dict[int, float]:
    """Mean candidate MACs at smaller single resolutions than the space's (exact: the space
    rebuilt with ``resolutions=[r]`` and sampled)."""
    space_cfg = OmegaConf.to_container(search.cfg.space, resolve=True)
    current = space_cfg.get("resolutions")
    if not current:
        return {}
    low = min(int(r) for r in current)
    out = {}
    for r in sorted({max(8, low * 3 // 4 // 4 * 4), max(8, low // 2 // 4 * 4)}, reverse=True):
        if r >= low:
            continue
        kw = {k: v for k, v in space_cfg.items() if k != "name"}
        kw["resolutions"] = [r]
        try:
            space = registry.space(kw, num_classes=search.num_classes,
                                   in_channels=search.in_channels)
        except Exception:  # noqa: BLE001 - a space that cannot go that small: no advice
            continue
        coster = Coster(space, ("macs",))
        genomes = space.sample(SAMPLES, np.random.default_rng(2024))
        out[r] = float(np.mean([coster.info(g)["macs"] for g in genomes]))
    return out


def _sha_schedule() -> tuple[list[float], float] | None:
    """(rungs, eta) of conf/fidelity/sha.yaml, when that fidelity exists."""
    path = CONF_DIR / "fidelity" / "sha.yaml"
    if not path.exists():
        return None
    doc = OmegaConf.to_container(OmegaConf.load(path))
    rungs, eta = doc.get("rungs"), doc.get("eta")
    if not isinstance(rungs, list) or not rungs or not isinstance(eta, (int, float)):
        return None
    try:
        return [float(r) for r in rungs], float(eta)
    except (TypeError, ValueError):
        return None


def _supernet_epochs(cfg: Any) -> float:
    """The supernet's epochs as conf/supernet.yaml would set them for this data set."""
    preset = cfg.get("preset") or {}
    return float(preset.get("supernet_epochs") or 60)


__all__ = ["ADVICE_ABOVE_S", "Bill", "Plan", "TRAIN_MACS_FACTOR", "Throughput", "advise",
           "baseline_seconds", "candidate_seconds", "duration", "estimate_search",
           "job_seconds", "measure_throughput", "score_seconds", "score_throughput",
           "sha_mean_epochs",
           "total_seconds", "work_seconds"]
