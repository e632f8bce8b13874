"""nas.evaluate: every backend trains candidates and turns failures into failed results."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from nas.evaluate import (
    Candidate,
    LocalRunner,
    PoolRunner,
    Result,
    TrainTask,
    backend_options,
    failure_reason,
    make_evaluator,
)
from nas.spec import ArchSpec
from nas.train import CandidateFailed, TrainConfig
from search_spaces import baselines as zoo

CONF = str(Path(__file__).resolve().parents[1] / "conf")
DATA = {"name": "synthetic", "channels": 1, "n_train": 256, "n_test": 64}
FAST = {"epochs": 1, "batch_size": 32, "limit_train_batches": 4, "num_threads": 1}
# Options per backend for tests: two pool workers, a two-CPU local Ray cluster.
OPTIONS = {"local": {}, "pool": {"workers": 2, "threads_per_worker": 1},
           "ray": {"num_cpus": 2, "cpus_per_task": 1}}

LENET = zoo.get("lenet5", num_classes=10, in_channels=1, resolution=32)
# Three input channels on one-channel data: train_spec raises ValueError.
LENET_RGB = zoo.get("lenet5", num_classes=10, in_channels=3, resolution=32)
# No normalisation, ReLU: a learning rate of 1e3 overflows it to NaN, while LeNet-5's tanh
# keeps its loss finite.
RELU_NET = ArchSpec.from_string(
    "1x32x32 conv_c16_bias1 relu conv_c16_bias1 relu conv_c16_s2_bias1 relu flatten fc_c10")


@pytest.fixture(scope="module", params=["local", "pool", "ray"])
def ev(request):
    """One evaluator per backend for the whole module (workers and clusters start once);
    tests set its recipe and time limit with `configure`."""
    if request.param == "ray":
        pytest.importorskip("ray")
    cfg = {"backend": request.param, **OPTIONS[request.param]}
    with make_evaluator(cfg, data=DATA, train=FAST) as e:
        yield e


def configure(ev, *, timeout_s=None, **train):
    ev.task.train = TrainConfig(**{**FAST, **train})
    ev.timeout_s = timeout_s
    return ev


def test_each_backend_trains_and_isolates_failures(ev):
    cands = [Candidate("good", LENET, seed=0), Candidate("nan", RELU_NET, seed=0),
             Candidate("mismatch", LENET_RGB, seed=0), Candidate("good2", LENET, seed=1)]
    seen: list[str] = []
    results = configure(ev, lr=1e3).evaluate(cands, callback=lambda r: seen.append(r.arch_id))
    assert [r.arch_id for r in results] == ["good", "nan", "mismatch", "good2"]
    assert sorted(seen) == sorted(r.arch_id for r in results)
    good, nan, mismatch, good2 = results
    for r in (good, good2):
        assert r.ok and r.reason is None, r.reason
        assert 0.0 <= r.accuracy <= 1.0
        assert r.train_seconds > 0 and r.extra["macs"] == 416_520
    assert nan.status == "failed" and nan.reason.startswith("diverged: loss=nan at step")
    assert mismatch.status == "failed"
    assert mismatch.reason.startswith("ValueError: spec 'lenet5' does not fit the data")


def test_each_backend_times_out_and_goes_on(ev):
    configure(ev, epochs=1000, limit_train_batches=None, timeout_s=2)
    t0 = time.monotonic()
    (r,) = ev.evaluate([Candidate("slow", LENET, seed=0)])
    assert time.monotonic() - t0 < 120
    assert r.status == "failed" and r.reason.startswith("timeout after 2 s"), r.reason
    (again,) = configure(ev).evaluate([Candidate("after", LENET, seed=0)])
    assert again.ok, again.reason


@pytest.mark.parametrize("ev", ["pool"], indirect=True)
def test_pool_reports_a_dead_worker_and_replaces_it(ev):
    assert isinstance(ev, PoolRunner)
    configure(ev, epochs=1000, limit_train_batches=None)

    def kill_busy_worker():
        while True:
            busy = [w for w in ev._workers if w.task is not None]
            if busy:
                time.sleep(0.5)
                os.kill(busy[0].proc.pid, 9)
                return
            time.sleep(0.1)

    threading.Thread(target=kill_busy_worker, daemon=True).start()
    (r,) = ev.evaluate([Candidate("victim", LENET, seed=0)])
    assert r.status == "failed" and r.reason == "worker died (exit code -9, SIGKILL)"
    (r2,) = configure(ev).evaluate([Candidate("next", LENET, seed=0)])
    assert r2.ok, r2.reason


@pytest.mark.parametrize("ev", ["pool"], indirect=True)
def test_pool_dead_worker_does_not_take_the_queued_candidates_with_it(ev):
    """A worker dies while the other trains and two candidates wait: reporting its failure
    must not hand a queued candidate to the dead worker (that candidate would be lost)."""
    assert isinstance(ev, PoolRunner)
    configure(ev, epochs=3, limit_train_batches=8)
    cands = [Candidate(name, LENET, seed=0) for name in ("victim", "b", "c", "d")]
    killed = threading.Event()

    def kill_victims_worker():
        while not killed.is_set():
            for w in list(ev._workers):
                if w.task == 0:
                    os.kill(w.proc.pid, 9)
                    killed.set()
                    return
            time.sleep(0.005)

    threading.Thread(target=kill_victims_worker, daemon=True).start()
    out: list = []
    runner = threading.Thread(target=lambda: out.extend(ev.evaluate(cands)), daemon=True)
    runner.start()
    runner.join(timeout=120)
    assert killed.is_set()
    assert not runner.is_alive(), "evaluate() never returned: a queued candidate was lost"
    assert [r.arch_id for r in out] == ["victim", "b", "c", "d"]
    assert out[0].reason == "worker died (exit code -9, SIGKILL)"
    assert all(r.ok for r in out[1:]), [r.reason for r in out[1:]]


def test_failure_reasons():
    assert failure_reason(CandidateFailed("diverged: loss=nan at step 3")) == \
        "diverged: loss=nan at step 3"
    assert failure_reason(MemoryError("cannot allocate")) == "out of memory: cannot allocate"
    assert failure_reason(KeyError("x")) == "KeyError: 'x'"


def test_result_keeps_unknown_train_fields_in_extra():
    r = Result.from_train("a", {"status": "ok", "accuracy": 0.5, "macs": 10, "epochs": 2})
    assert r.ok and r.accuracy == 0.5 and r.extra == {"macs": 10, "epochs": 2}


def test_local_timeout_acts_as_max_time():
    ev = LocalRunner(TrainTask(data=DATA, train=FAST), timeout_s=0.001)
    (r,) = ev.evaluate([Candidate("a", LENET, seed=0)])
    assert r.reason == "timeout after 0.001 s"


@pytest.mark.parametrize("name", ["local", "pool", "ray"])
def test_evaluator_yaml_keys_are_backend_options(name):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="train_one", overrides=[f"+evaluator={name}", "arch=x"])
    assert cfg.evaluator.backend == name
    assert set(cfg.evaluator) - {"backend"} <= backend_options(name)
    if name == "local":
        assert isinstance(make_evaluator(cfg.evaluator, data=DATA, train=FAST), LocalRunner)


def test_make_evaluator_rejects_bad_config():
    with pytest.raises(ValueError, match=r"unknown evaluator 'gpu'; known: local, pool, ray"):
        make_evaluator({"backend": "gpu"}, data=DATA, train=FAST)
    with pytest.raises(ValueError, match="evaluator.workers is not an option of the local"):
        make_evaluator({"backend": "local", "workers": 2}, data=DATA, train=FAST)
    with pytest.raises(TypeError, match="Candidate"):
        LocalRunner(TrainTask(data=DATA, train=FAST)).evaluate([LENET])


# --------------------------------------------------------------------------------------------
# Asynchronous evaluation: a feed filled while the evaluator runs
# --------------------------------------------------------------------------------------------


def test_feed_gets_candidates_put_from_the_callback(ev):
    """A freed slot gets what the callback puts; the evaluator returns once the feed is
    closed and done; an open feed with nothing queued or running is an error, not a hang."""
    from nas.evaluate import Feed
    from nas.evaluate.cluster import RayRunner

    if isinstance(ev, RayRunner):
        pytest.skip("the Ray loop's feed handling is exercised by evaluate() above")
    configure(ev)
    feed = Feed([Candidate("c0", LENET, seed=0)])
    got = []

    def on_result(i, r):
        got.append((i, feed.candidate(i).arch_id, r.status))
        if len(feed) < 4:
            feed.put(Candidate(f"c{len(feed)}", LENET, seed=0))
        else:
            feed.close()

    ev.run(feed, on_result)
    assert [g[:2] for g in sorted(got)] == [(i, f"c{i}") for i in range(4)]
    assert {g[2] for g in got} == {"ok"}
    starving = Feed([Candidate("s", LENET, seed=0)])
    with pytest.raises(RuntimeError, match="feed is empty, still open and nothing is in flight"):
        ev.run(starving, lambda i, r: None)


def test_a_freed_slot_starts_the_queued_candidate_before_the_callback_runs(ev):
    """The search asks its algorithm from the result callback (a second or two); a slot
    that frees starts what is already queued first, so it never idles through an ask."""
    from nas.evaluate import Feed, LocalRunner

    if isinstance(ev, LocalRunner):
        pytest.skip("one slot: nothing runs while the callback does")
    configure(ev)
    feed = Feed([Candidate(f"c{i}", LENET, seed=0) for i in range(3)], closed=True)
    idle_with_work = []

    def free_slots() -> int:  # slots that could take a candidate now
        if isinstance(ev, PoolRunner):
            return sum(w.ready and w.task is None for w in ev._workers)
        return ev.slots - len(ev._inflight)

    ev.run(feed, lambda i, r: idle_with_work.append(feed.queued > 0 and free_slots() > 0))
    assert not any(idle_with_work)  # no free slot waited for a callback with work queued


def test_plan_workers_uses_every_core_or_gpu():
    from nas.evaluate.runners import THREADED_STEP_MACS, plan_workers

    assert plan_workers(cores=2, gpus=0) == (2, 1)  # small nets: one thread each
    assert plan_workers(cores=16, gpus=0, step_macs=1e8) == (16, 1)
    assert plan_workers(cores=16, gpus=0, step_macs=THREADED_STEP_MACS) == (4, 4)
    assert plan_workers(cores=2, gpus=0, step_macs=THREADED_STEP_MACS) == (1, 2)
    assert plan_workers(cores=8, gpus=0, threads=2) == (4, 2)  # train.num_threads=2
    assert plan_workers(cores=16, gpus=2) == (2, 8)  # one worker per GPU
    assert plan_workers(cores=16, gpus=2, per_gpu=2) == (4, 4)  # small nets share a GPU


def test_pool_default_fills_the_cores_and_warns_beyond(caplog):
    from nas.evaluate import usable_cores

    with make_evaluator({"backend": "pool"}, data=DATA, train=FAST) as e:
        assert e.slots == e.n_workers == usable_cores() and e.threads == 1
    with pytest.raises(ValueError, match=r"evaluator.workers=0 is invalid; pass an integer "
                                         r">= 1 or null \(every core"):
        make_evaluator({"backend": "pool", "workers": 0}, data=DATA, train=FAST)
    with caplog.at_level("WARNING", logger="nas.evaluate"):
        with make_evaluator({"backend": "pool", "workers": usable_cores() + 1}, data=DATA,
                            train=FAST) as e:
            assert e.slots == usable_cores() + 1
    assert "is more than the" in caplog.text and "cores of this machine" in caplog.text
