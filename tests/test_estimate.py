"""nas.estimate: the bill's arithmetic, its advice, the ETA, and the estimate against the
actual time of a small digits search."""

from __future__ import annotations

import json
import math

import pytest

from nas import estimate as E
from nas.estimate import Bill, Plan, Throughput

TP = Throughput(macs_per_s=1e9, step_s=0.001, eval_step_s=0.0005, candidate_s=2.0)
PLAN = Plan(n_candidates=10, candidate_macs=5e6, candidate_layers=10, epochs=3,
            train_images=1000, val_images=200, batch_size=100,
            baselines={"big": (4e7, 30), "small": (1e5, 8)})


def test_job_seconds_is_the_documented_formula():
    # c + E * (ceil(N/B) L s + ceil(V/B) L v + M (3N + V) / R)
    want = 2.0 + 3 * (10 * 10 * 0.001 + 2 * 10 * 0.0005 + 5e6 * (3 * 1000 + 200) / 1e9)
    got = E.job_seconds(5e6, layers=10, epochs=3, train_images=1000, val_images=200,
                        batch_size=100, tp=TP)
    assert got == pytest.approx(want) and want == pytest.approx(50.33)
    # a partial last batch is a whole step
    assert E.job_seconds(0, layers=10, epochs=1, train_images=101, val_images=0,
                         batch_size=100, tp=TP) == pytest.approx(2.0 + 2 * 10 * 0.001)
    # scored, not trained: forward passes only
    assert E.score_seconds(5e6, layers=10, images=300, batch_size=100,
                           tp=TP) == pytest.approx(2.0 + 3 * 10 * 0.0005 + 5e6 * 300 / 1e9)


def test_total_sums_candidates_and_baselines_over_the_slots():
    per_base = E.baseline_seconds(PLAN, TP)
    assert per_base["big"] == pytest.approx(
        E.job_seconds(4e7, layers=30, epochs=3, train_images=1000, val_images=200,
                      batch_size=100, tp=TP))
    work = 10 * E.candidate_seconds(PLAN, TP) + sum(per_base.values())
    assert E.work_seconds(PLAN, TP) == pytest.approx(work)
    assert E.total_seconds(PLAN, TP) == pytest.approx(work)
    from dataclasses import replace

    assert E.total_seconds(replace(PLAN, parallel=4), TP) == pytest.approx(work / 4)
    # a baseline timed on its own runs at its own MAC rate
    own = E.baseline_seconds(PLAN, replace(TP, rates={"big": 4e9}))
    assert own["big"] == pytest.approx(E.job_seconds(
        4e7, layers=30, epochs=3, train_images=1000, val_images=200, batch_size=100, tp=TP,
        rate=4e9)) and own["big"] < per_base["big"]
    assert own["small"] == per_base["small"]
    # per-candidate epochs are an argument: a schedule that stops candidates early
    half = replace(PLAN, epochs=1.5, baselines={})
    assert E.candidate_seconds(half, TP) - TP.candidate_s == pytest.approx(
        (E.candidate_seconds(PLAN, TP) - TP.candidate_s) / 2)


def test_successive_halving_mean_epochs():
    # rungs 1, 3, 9 epochs, eta 3: everyone 1 epoch, a third 2 more, a ninth 6 more
    assert E.sha_mean_epochs([1, 3, 9], 3) == pytest.approx(1 + 2 / 3 + 6 / 9)
    assert E.sha_mean_epochs([5], 2) == 5


def test_advice_above_an_hour_names_settings_with_their_effect():
    big = Plan(n_candidates=12, candidate_macs=4e7, candidate_layers=150, epochs=3,
               train_images=45_000, val_images=5_000, batch_size=128,
               baselines={"lenet5": (6.5e5, 12), "resnet20": (4.1e7, 70),
                          "mobilenet_v2": (9.4e7, 150)})
    tp = Throughput(macs_per_s=2e9, step_s=2e-4, eval_step_s=1e-4, candidate_s=2.0)
    total = E.total_seconds(big, tp)
    assert total > E.ADVICE_ABOVE_S
    advice = dict(E.advise(big, tp, train_fraction=1.0, resolution_macs={16: 1e7},
                           sha=([1, 3], 3.0), supernet=(1.2e8, 5e6), supernet_epochs=60,
                           calib_images=1280))
    frac = [k for k in advice if k.startswith("train.train_fraction=")]
    assert len(frac) == 1
    f = float(frac[0].split("=")[1])
    from dataclasses import replace

    assert advice[frac[0]] == pytest.approx(E.total_seconds(
        replace(big, train_images=int(45_000 * f)), tp))
    # validation (5,000 images a epoch) is not cut by a training subset: no subset fits
    # an hour here, so the strongest one is offered
    assert f == 0.02 and advice[frac[0]] > E.ADVICE_ABOVE_S
    assert advice["space.resolutions=[16]"] == pytest.approx(
        E.total_seconds(replace(big, candidate_macs=1e7), tp))
    assert advice["fidelity=sha"] == pytest.approx(
        E.total_seconds(replace(big, epochs=1 + 2 / 3), tp))
    assert "baselines.names=[lenet5,resnet20]" in advice  # drops the costliest
    # training a supernet for 60 epochs (four subnets a step) costs more than 12
    # candidates of 3 epochs: not offered; for 300 candidates it is
    assert not any(k.startswith("evaluator=supernet") for k in advice)
    many = dict(E.advise(replace(big, n_candidates=300), tp, train_fraction=1.0,
                         supernet=(1.2e8, 5e6), supernet_epochs=60, calib_images=1280))
    assert any(k.startswith("evaluator=supernet") for k in many)
    assert all(s < total for s in advice.values())
    text = Bill(big, tp, advice=list(advice.items())).report()
    assert text.startswith(f"estimate: {E.duration(total)} for 12 candidates")
    assert "over 60.0 min" in text and "fidelity=sha" in text
    # under an hour: no advice
    assert "over" not in Bill(PLAN, TP).report()


def test_durations_read_naturally():
    assert E.duration(12.4) == "12 s"
    assert E.duration(252) == "4.2 min"
    assert E.duration(3 * 3600) == "3.0 h"


def test_eta_scales_the_remaining_estimate_by_the_observed_pace(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(E.time, "monotonic", lambda: clock[0])
    bill = Bill(PLAN, TP)
    work = E.work_seconds(PLAN, TP)
    assert bill.remaining_s() == pytest.approx(work)  # nothing done: the estimate
    one = E.candidate_seconds(PLAN, TP)
    clock[0] += one / 2  # the first candidate took half its estimate
    bill.finished(5e6)
    prior = E.ETA_PRIOR_SHARE * work
    assert bill.remaining_s() == pytest.approx((work - one) * (one / 2 + prior) / (one + prior))
    clock[0] += 1000 * one  # a first job that waited long: the ETA grows, not 1000-fold
    assert bill.remaining_s() < (work - one) * 1000 * one / prior
    bill.finished(4e7, baseline="big")
    assert bill.done_estimate_s == pytest.approx(one + E.baseline_seconds(PLAN, TP)["big"])


def test_a_search_records_its_estimate_and_its_time(tmp_path):
    """A real search with progress output records the estimate printed before training and
    the time it took in status.json (how close they are is measured in
    benchmarks/RESULTS.md, not asserted here: the machine's load decides it)."""
    from hydra import compose, initialize_config_dir

    from nas.commands.search import run_search
    from nas.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="search", overrides=[
            "+space=mobile", "data=digits", "train=fast", "train.limit_train_batches=8",
            "evaluator=local",
            "budget.evaluations=4", "budget.initial=4", "baselines.names=[lenet5]",
            "algorithm.generations=5", "algorithm.pop_size=16"])
    run_search(cfg, tmp_path)
    status = json.loads((tmp_path / "status.json").read_text())
    est, wall = status["estimated_s"], status["wall_s"]
    assert est > 0 and wall > 0
    assert math.isfinite(est) and math.isfinite(wall)


def test_successive_halving_is_billed_at_the_schedule_s_mean_epochs(tmp_path, monkeypatch):
    """Under fidelity=sha a candidate costs the schedule's mean epochs and a baseline the
    last rung's (baselines go through every rung), not train.epochs; the throughput is
    measured with the evaluator slot's threads."""
    from hydra import compose, initialize_config_dir

    from nas.archive import Archive
    from nas.config import CONF_DIR
    from nas.search import Search

    seen = {}

    def fake(specs, **kw):
        seen.update(kw)
        return TP

    monkeypatch.setattr(E, "measure_throughput", fake)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="search", overrides=[
            "+space=mobile", "data=digits", "train.epochs=9", "fidelity=sha",
            "fidelity.rungs=[1,3,9]", "fidelity.eta=3", "baselines.names=[lenet5]"])
    search = Search(cfg, tmp_path)
    search.archive = Archive(tmp_path / "archive.sqlite")
    search._rows, search._order = {}, []
    bill = E.estimate_search(search, threads=1)
    assert bill.plan.epochs == pytest.approx(E.sha_mean_epochs([1, 3, 9], 3))
    assert bill.plan.epochs == pytest.approx(1 + 2 / 3 + 6 / 9)
    assert bill.plan.baseline_epochs == 9
    assert seen["threads"] == 1
