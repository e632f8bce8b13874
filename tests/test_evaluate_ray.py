"""nas.evaluate on Ray: retry decisions, slots, bad addresses, and a search on a multi-node
cluster simulated on this machine (``ray.cluster_utils.Cluster``) that loses a node while it
trains a candidate and gains one mid-run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
import ray.exceptions as rex  # noqa: E402

from nas.evaluate.cluster import (  # noqa: E402
    ray_connect,
    ray_slots,
    ray_system_failure,
    should_retry,
)
from nas.train import CandidateFailed  # noqa: E402

# ---------------------------------------------------------------------------- decisions


def test_infrastructure_failures_are_retried_and_a_candidates_own_are_not():
    own = rex.RayTaskError("run_ray_task", "Traceback ...",
                           CandidateFailed("diverged: loss=nan at step 3"))
    cases = {
        rex.NodeDiedError("Task failed because the node it was running on is dead"):
            "node died",
        rex.WorkerCrashedError(): "worker process died",
        rex.OutOfMemoryError("Task was killed due to the node running low on memory"):
            "worker killed by Ray's memory monitor",
        rex.LocalRayletDiedError(): "node's raylet died",
        own: None,
        rex.TaskCancelledError(): None,  # our own time limit
        ValueError("bad"): None,
    }
    for e, reason in cases.items():
        assert ray_system_failure(e) == reason, type(e).__name__
    # max_retries=2: attempts 0 and 1 fail over to another submission, attempt 2 is the last
    assert [should_retry(a, 2) for a in range(4)] == [True, True, False, False]
    assert not should_retry(0, 0)


def test_slots_follow_the_cluster_and_pack_fractional_gpus():
    assert ray_slots({"CPU": 2.0}, 1, 0) == 2
    assert ray_slots({"CPU": 3.0}, 1, 0) == 3  # a node joined
    assert ray_slots({}, 1, 0) == 1  # no node right now: still one queued
    assert ray_slots({"CPU": 16.0, "GPU": 1.0}, 1, 1) == 1
    assert ray_slots({"CPU": 16.0, "GPU": 1.0}, 1, 0.25) == 4
    assert ray_slots({"CPU": 16.0, "GPU": 2.0}, 1, 0.1) == 16  # 20 GPU slots, 16 CPUs
    assert ray_slots({"CPU": 16.0, "GPU": 1.0}, 2, 0.1) == 8


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1", "nohost"])
def test_unreachable_address_is_one_line_naming_the_fix(address):
    t0 = time.monotonic()
    with pytest.raises(ValueError) as info:
        ray_connect(address, None)
    msg = str(info.value)
    assert "\n" not in msg and f"evaluator.address={address!r}" in msg
    assert "ray start --head" in msg and "evaluator.address=null" in msg
    assert time.monotonic() - t0 < 15
    assert not ray.is_initialized()


def test_bad_ray_options_are_rejected_before_connecting():
    from nas.evaluate import TrainTask
    from nas.evaluate.cluster import RayRunner

    task = TrainTask(data={"name": "digits"})
    for kw, needle in [({"gpus_per_task": -1}, "gpus_per_task=-1"),
                       ({"gpus_per_task": 1.5}, "gpus_per_task=1.5"),
                       ({"max_retries": -1}, "max_retries=-1"),
                       ({"cpus_per_task": 0}, "cpus_per_task=0")]:
        with pytest.raises(ValueError, match=needle):
            RayRunner(task, address="127.0.0.1:1", **kw)


# ---------------------------------------------------------------------------- a cluster


def _running_candidates(raylet_pid: int) -> list[int]:
    """PIDs of the node's worker processes that are executing a candidate (Ray titles a
    worker ``ray::run_ray_task`` while it runs that task)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == raylet_pid and cmd.startswith(b"ray::run_ray_task"):
            pids.append(int(d.name))
    return pids


def _join_node(address: str) -> subprocess.Popen:
    """A one-CPU node joining the cluster mid-run, as on a real cluster (`ray start`), in its
    own process group so that the test ends exactly the processes it started."""
    return subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", f"--address={address}",
         "--num-cpus=1", "--block", "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _fast_cluster():
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    # the head has no CPU (only worker nodes train); a dead node is noticed within a second
    return Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False,
        "_system_config": {"health_check_initial_delay_ms": 0,
                           "health_check_period_ms": 500,
                           "health_check_failure_threshold": 2}})


def _kill_while_training_then_join(cluster, node, events: dict) -> None:
    """Wait until ``node`` runs a candidate, kill the node a second later, start a new one."""
    raylet = node.all_processes["raylet"][0].process.pid
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not _running_candidates(raylet):
        time.sleep(0.05)
    time.sleep(1.0)  # imports done: the candidate is in its training loop
    events["killed_running"] = bool(_running_candidates(raylet))
    cluster.remove_node(node, allow_graceful=False)
    events["killed_at"] = time.time()
    events["joined"] = _join_node(cluster.address)


@pytest.mark.slow
def test_search_survives_a_dead_node_and_uses_a_new_one(tmp_path):
    """Two one-CPU worker nodes; while node A trains a candidate it is killed, and node C
    joins. The search completes; every candidate is archived once and none failed; the
    victim was trained again on another node (its second attempt); node C trained
    candidates; workers imported this checkout's nas (shipped), and the file data set
    reached them through the object store as a content-hashed file."""
    import hashlib

    from hydra import compose, initialize_config_dir

    import nas
    from nas.commands.search import run_search
    from nas.config import CONF_DIR
    from tests.test_data import write_cifar10_pickles

    root = tmp_path / "cifar-10-batches-py"
    write_cifar10_pickles(root, n_per_batch=100, n_batches=2)
    cache = tmp_path / "cache"
    cluster = _fast_cluster()
    events: dict = {}
    try:
        node_a = cluster.add_node(num_cpus=1)
        node_b = cluster.add_node(num_cpus=1)
        watcher = threading.Thread(target=_kill_while_training_then_join,
                                   args=(cluster, node_a, events), daemon=True)
        watcher.start()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="search", overrides=[
                "+space=mobile", "data=cifar10", f"data.root={root}",
                f"data.cache_dir={cache}", "data.num_workers=0", "train=fast",
                "train.batch_size=16", "train.limit_train_batches=null", "train.epochs=2",
                "evaluator=ray", f"evaluator.address={cluster.address}",
                "evaluator.max_retries=2", "evaluator.timeout_s=null", "baselines.names=[]",
                "budget.evaluations=10", "budget.initial=6", "budget.per_iteration=4",
                "progress=false", "algorithm.generations=5", "algorithm.pop_size=16"])
        out = run_search(cfg, tmp_path / "run")
        watcher.join(timeout=60)
        shipped_paths = ray.get(ray.remote(lambda: [
            p for p in __import__("sys").path if "runtime_resources" in p]).remote())
        assert events.get("killed_running"), "node A was not killed during a candidate"
        assert out["evaluations"] == 10
        con = sqlite3.connect(tmp_path / "run" / "archive.sqlite")
        rows = con.execute("SELECT arch_id, status, reason, extra FROM records").fetchall()
        con.close()
        ids = [r[0] for r in rows]
        assert len(ids) == 10 and len(set(ids)) == 10  # every candidate once
        assert all(r[1] == "ok" for r in rows), [r[2] for r in rows]
        extra = [json.loads(r[3]) for r in rows]
        retried = [e for e in extra if e["attempts"] == 2]
        assert len(retried) == 1 and retried[0]["node"] != node_a.node_id
        assert all(e["attempts"] == 1 for e in extra if e not in retried)
        joined = {e["node"] for e in extra} - {node_a.node_id, node_b.node_id}
        assert len(joined) == 1, "the node that joined mid-run trained nothing"
        # code: workers have this checkout's packages, unpacked from the job's runtime_env
        here = Path(nas.__file__).parent / "evaluate" / "cluster.py"
        ours = here.read_bytes()
        assert any((Path(p) / "nas" / "evaluate" / "cluster.py").is_file()
                   and (Path(p) / "nas" / "evaluate" / "cluster.py").read_bytes() == ours
                   for p in shipped_paths), shipped_paths
        # data: written on the node (one shared file system here) under its content hash
        (shipped,) = cache.glob("shipped-*.npz")
        (cached,) = cache.glob("cifar10-*.npz")
        digest = hashlib.sha256(np.fromfile(cached, dtype=np.uint8)).hexdigest()
        assert shipped.name == f"shipped-{digest}.npz"
        assert shipped.read_bytes() == cached.read_bytes()
    finally:
        if ray.is_initialized():
            ray.shutdown()
        _stop(events.get("joined"))
        cluster.shutdown()
