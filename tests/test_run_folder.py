"""The run folder under faults a user meets: every candidate failing, a resume that changes
settings, Ctrl-C, two processes on one folder, corrupt files, bad values."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from nas import run as RF
from nas.commands.search import run_search
from nas.search import SearchError
from tests.conftest import archive_records
from tests.test_search import ROOT, TINY, tiny_cfg


def _status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def _resume(run_dir: Path, *overrides: str) -> dict:
    args = [f"resume={run_dir}", *overrides]
    return run_search(tiny_cfg(*args), run_dir.parent / "unused", overrides=args)


@pytest.fixture(scope="module")
def done_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("done") / "run"
    run_search(tiny_cfg("baselines.names=[]"), run_dir)
    return run_dir


# --------------------------------------------------------------------------------------------
# Every initial candidate fails
# --------------------------------------------------------------------------------------------


def test_all_candidates_failing_ends_cleanly_and_a_fixed_recipe_resumes(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(SearchError) as e:
        run_search(tiny_cfg("train.max_time_s=0.001"), run_dir)
    msg = str(e.value)
    assert msg.startswith("search stopped: 4 of 4 candidates failed, most often: ")
    assert f"resume={run_dir} train.KEY=VALUE" in msg
    st = _status(run_dir)
    assert st["state"] == "failed" and st["reason"].startswith("4 of 4 candidates failed")
    for name in ("evaluated.csv", "pareto.csv", "baselines.csv", "pareto.png"):
        assert (run_dir / name).exists(), name
    assert set(pd.read_csv(run_dir / "evaluated.csv")["status"]) == {"failed"}
    assert not (run_dir / RF.LOCK).exists()

    # the same recipe fails the same way ...
    with pytest.raises(SearchError, match="4 of 4 candidates failed"):
        _resume(run_dir)
    # ... a fixed one trains the failed candidates again and completes the budget
    out = _resume(run_dir, "train.max_time_s=null")
    ev = pd.read_csv(run_dir / "evaluated.csv")
    assert out["evaluations"] == 6 and len(ev) == 6 and ev["arch_id"].is_unique
    assert set(ev["status"]) == {"ok"}
    assert (ev.sort_values("id")["iteration"].tolist() == [0, 0, 0, 0, 1, 1])
    bl = pd.read_csv(run_dir / "baselines.csv")
    assert bl["status"].tolist() == ["ok"]  # the failed baseline was trained again too
    assert _status(run_dir)["state"] == "complete"


def test_initial_budget_below_what_the_surrogate_needs_is_refused(tmp_path):
    with pytest.raises(SearchError, match=r"budget.initial=2 is below the 3 evaluated "
                                          r"architectures .* pass budget.initial=3 or more"):
        run_search(tiny_cfg("budget.initial=2"), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    run_search(tiny_cfg("budget.initial=2", "budget.evaluations=2", "baselines.names=[]"),
               tmp_path / "ok")  # no surrogate is ever fitted: fine


# --------------------------------------------------------------------------------------------
# Resume with overrides
# --------------------------------------------------------------------------------------------


def test_resume_applies_safe_overrides_and_refuses_others(done_run):
    with pytest.raises(SearchError, match=r"^seed cannot change when a run is resumed .*the "
                                          r"run has seed=0, this command gives 3; .* Drop "
                                          r"'seed=3' to resume, or start a new run to change "
                                          r"seed$"):
        _resume(done_run, "seed=3")
    with pytest.raises(SearchError, match="space.resolutions cannot change"):
        _resume(done_run, "space.resolutions=[16]")
    out = _resume(done_run, "budget.evaluations=8")
    assert out["evaluations"] == 8
    assert len(pd.read_csv(done_run / "evaluated.csv")) == 8
    assert "evaluations: 8" in (done_run / "config.yaml").read_text()


# --------------------------------------------------------------------------------------------
# One process per run folder
# --------------------------------------------------------------------------------------------


def test_a_run_folder_in_use_is_refused_and_a_stale_lock_taken_over(tmp_path, done_run):
    lock = RF.RunLock(done_run)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.path.write_text(json.dumps({"pid": child.pid, "host": socket.gethostname(),
                                         "since": "now"}))
        with pytest.raises(SearchError, match=rf"{done_run} is in use by process "
                                              rf"{child.pid} on .* wait for it to end"):
            _resume(done_run)
        with pytest.raises(SearchError, match="is in use by process"):
            run_search(tiny_cfg(), done_run)
    finally:
        child.kill()
        child.wait()
    # its owner is gone: the lock is stale, the run goes on (and leaves no lock behind)
    _resume(done_run)
    assert not lock.path.exists()


def test_a_new_search_in_a_folder_that_holds_one_names_resume(done_run):
    with pytest.raises(SearchError, match=f"already holds a search; resume it with "
                                          f"resume={done_run}"):
        run_search(tiny_cfg(), done_run)


# --------------------------------------------------------------------------------------------
# Corrupt files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"not a pickle"])
def test_a_corrupt_state_is_named_with_the_fix(tmp_path, done_run, content):
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(done_run, run_dir)
    (run_dir / RF.STATE).write_bytes(content)
    p = subprocess.run([sys.executable, "-m", "nas.search", f"resume={run_dir}",
                        f"hydra.run.dir={tmp_path / 'h'}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {run_dir / RF.STATE} is corrupt (")
    assert "delete it to restart the algorithm from the archive's evaluations" in line
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "h").exists()  # no empty run folder left behind


def test_a_corrupt_archive_is_named_by_resume_report_and_export(tmp_path, done_run):
    import shutil

    from nas.commands.export import main as export_main
    from nas.commands.report import main as report_main

    run_dir = tmp_path / "copy"
    shutil.copytree(done_run, run_dir)
    (run_dir / RF.ARCHIVE).write_bytes(b"garbage" * 100)
    with pytest.raises(SearchError, match=rf"{run_dir / RF.ARCHIVE} is corrupt .* restore it "
                                          rf"from a backup, or start a new run"):
        _resume(run_dir)
    assert report_main([str(run_dir), "--quiet"]) == 2
    assert export_main([str(run_dir), "--pick", "knee"]) == 2


# --------------------------------------------------------------------------------------------
# Values checked before anything is written
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("override", "needle"), [
    ("train.epochs=0", "train.epochs=0 is invalid; pass an integer >= 1"),
    ("train.lr=-1", "train.lr=-1 is invalid; pass a number > 0"),
    ("train.batch_size=0", "train.batch_size=0 is invalid; pass an integer >= 1"),
    ("+train.epoch=5", "unknown config key 'train.epoch' (did you mean train.epochs?)"),
    ("+foo=1", "unknown config key 'foo': nothing reads it"),
    ("seed=-1", "seed=-1 is invalid; pass an integer >= 0"),
    ("algorithm.acquisition=ehvi", "algorithm.acquisition must be one of ['front', "
                                   "'improvement', 'hypervolume'], got 'ehvi'"),
    ("algorithm.acquisition=hypervolume objectives=[error,macs,params]",
     "algorithm.acquisition=hypervolume needs two objectives (error and one cost), got "
     "objectives=['error', 'macs', 'params']; use algorithm.acquisition=front or improvement"),
])
def test_bad_values_are_refused_before_any_file(tmp_path, override, needle):
    with pytest.raises(SearchError) as e:
        run_search(tiny_cfg(*override.split()), tmp_path / "run")
    assert needle in str(e.value)
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------------------------
# Ctrl-C
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("evaluator", ["local", "pool"])
def test_ctrl_c_stops_quickly_and_leaves_a_resumable_folder(tmp_path, evaluator):
    run_dir = tmp_path / "run"
    args = [*TINY, "budget.evaluations=40", "budget.per_iteration=4", "baselines.names=[]",
            f"evaluator={evaluator}", f"hydra.run.dir={run_dir}"]
    if evaluator == "pool":
        args.append("evaluator.workers=2")
    # started as a shell starts a command: Ctrl-C's default action, whatever this test
    # process inherited or was left with by earlier tests
    proc = subprocess.Popen([sys.executable, "-m", "nas.search", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while archive_records(run_dir / RF.ARCHIVE) < 2 and time.time() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: to the whole process group
    t0 = time.time()
    _, err = proc.communicate(timeout=60)
    assert time.time() - t0 < 8, f"took {time.time() - t0:.1f} s to stop"
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].endswith(
        f"(nothing finished is lost); continue with: python -m nas.search resume={run_dir}")
    assert _status(run_dir)["state"] == "interrupted"
    assert not (run_dir / RF.LOCK).exists()
    assert (run_dir / "evaluated.csv").exists()
    out = subprocess.run(["pgrep", "-f", "multiprocessing.spawn"], capture_output=True,
                         text=True).stdout.split()
    assert not any(pid for pid in out if _parent_is(int(pid), proc.pid))


def _parent_is(pid: int, parent: int) -> bool:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().split()[3]) == parent
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# The export's train command carries the run's data settings
# --------------------------------------------------------------------------------------------


def test_export_train_command_runs_with_the_runs_data(tmp_path):
    import shlex

    from nas.export import export_run
    from tests.test_data import write_tree

    root = write_tree(tmp_path / "my images", per_class=10, size=16)  # a space in the path
    data = ["data=imagefolder", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}",
            "data.num_workers=1", "data.augment=false"]
    keep = [o for o in TINY if not o.startswith("data")]
    with __import__("hydra").initialize_config_dir(config_dir=str(ROOT / "conf"),
                                                   version_base="1.3"):
        cfg = __import__("hydra").compose(
            config_name="search",
            overrides=keep + data + ["budget.evaluations=4", "baselines.names=[]"])
    run_dir = tmp_path / "run"
    run_search(cfg, run_dir)
    res = export_run(run_dir, "knee")
    cmd = shlex.split(res.train_command)
    assert cmd[:3] == ["python", "-m", "nas.train"]
    assert "data=imagefolder" in cmd and f"data.root='{root}'" in cmd  # Hydra-quoted
    assert "data.augment=false" in cmd and "data.num_workers=1" in cmd
    # the printed command, with a short recipe instead of train=full
    cmd = [sys.executable if c == "python" else "train=fast" if c == "train=full" else c
           for c in cmd]
    p = subprocess.run(cmd + [f"hydra.run.dir={tmp_path / 'trained'}", "progress=false"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    result = json.loads((tmp_path / "trained" / "result.json").read_text())
    assert result["data"] == "imagefolder" and result["accuracy"] is not None


def test_report_names_the_space_and_rounds_the_hypervolume(tmp_path, done_run):
    from nas.commands.report import main as report_main

    assert report_main([str(done_run), "--out", str(tmp_path / "rep"), "--quiet"]) == 0
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "space mobile" in page and "MobileSpace" not in page
    hv = float(pd.read_csv(done_run / "hypervolume.csv")["hypervolume"].iloc[-1])
    assert f"<td>{hv:.4f}</td>" in page and f"<td>{hv!r}</td>" not in page
