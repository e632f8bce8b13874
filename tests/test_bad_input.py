"""Bad input and faults on every surface a user passes files or values to: nothing in a file
runs as code, nothing wrong passes silently, a refused command leaves no files, and the
message is one line naming the problem and the fix."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nas import run as RF
from nas.checkpoints import read_checkpoint, read_weights
from nas.commands.export import main as export_main
from nas.commands.schema import OverrideOrderError, check_override_order
from nas.commands.search import run_search
from nas.config import CONF_DIR
from nas.safe_load import UnsafeFileError, load_state_bytes
from nas.search import SearchError
from nas.spec import ArchSpec
from nas.table import TableError, read_user_table
from nas.train import train_spec
from tests.conftest import archive_records
from tests.test_search import ROOT, TINY, tiny_cfg

NET = "1x16x16 cba_c8 basic_c8 head_c10"
SYNTH = ["data=synthetic", "data.channels=1", "data.n_train=128", "data.n_test=32",
         "data.size=16"]


def cli(module: str, *args: str, cwd: Path, timeout: float = 240, env=None):
    """Run ``python -m <module> args`` as a user does; the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def _arch(tmp_path: Path) -> str:
    """``arch=`` a spec file of NET (1 channel, 10 classes, 16 px)."""
    path = tmp_path / "net.json"
    path.write_text(ArchSpec.from_string(NET).to_json())
    return f"arch={path}"


def one_line_error(p: subprocess.CompletedProcess, rc: int = 2) -> str:
    """The last line of stderr, checked to be the command's one-line error."""
    assert p.returncode == rc, (p.returncode, p.stderr[-3000:])
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), p.stderr[-2000:]
    return line


# --------------------------------------------------------------------------------------------
# 1. Nothing in a file a user passes runs as code
# --------------------------------------------------------------------------------------------


class _Payload:
    """Unpickling it would create ``path`` (what an attacker's file would do)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _malicious_weights(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    weights = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _Payload(marker)}, weights)
    return weights, marker


def test_a_crafted_weights_file_runs_nothing_in_init_and_export(tmp_path):
    weights, marker = _malicious_weights(tmp_path)
    with pytest.raises(UnsafeFileError, match=r"holds Python objects other than tensors.*"
                                              r"nothing in it was run"):
        read_weights(weights)
    assert not marker.exists()
    # through the commands: nas.train init= (before any file of the run) and nas.export
    run = tmp_path / "run"
    p = cli("nas.train", "arch=lenet5", *SYNTH, "train=fast", f"init={weights}",
            f"hydra.run.dir={run}", "progress=false", cwd=tmp_path)
    line = one_line_error(p)
    assert "evil.pt holds Python objects other than tensors" in line
    assert not marker.exists() and not run.exists()


def test_a_crafted_search_state_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / RF.STATE).write_bytes(pickle.dumps({"algorithm": _Payload(marker)}))
    with pytest.raises(RF.RunFolderError, match=r"asks to load posix.system, which a search "
                                                r"state never holds.*delete it to restart"):
        RF.load_state(tmp_path)
    assert not marker.exists()
    assert load_state_bytes(pickle.dumps({"f": 1.5, "s": {1}}), where="s") == \
        {"f": 1.5, "s": {1}}

    # a function of the project's own is refused as well (it could write files)
    class Call:
        def __reduce__(self):
            return (RF.atomic_write, (tmp_path / "written", b"1"))

    with pytest.raises(UnsafeFileError, match="nas.run.atomic_write"):
        load_state_bytes(pickle.dumps({"algorithm": Call()}), where="state.pkl")
    assert not (tmp_path / "written").exists()


def test_a_crafted_supernet_checkpoint_runs_nothing(tmp_path):
    from nas.supernet import load_supernet

    weights, marker = _malicious_weights(tmp_path)
    with pytest.raises(ValueError, match="supernet checkpoint .*evil.pt holds Python objects"):
        load_supernet(weights)
    assert not marker.exists()


# --------------------------------------------------------------------------------------------
# 3. Corrupt checkpoints: one line, no traceback
# --------------------------------------------------------------------------------------------


def _corrupt_files(tmp_path: Path, good: Path) -> dict[str, Path]:
    data = good.read_bytes()
    files = {"truncated": data[: len(data) // 2], "empty": b"",
             "random": np.random.default_rng(0).bytes(4096), "text": b"not a checkpoint\n"}
    out = {}
    for name, content in files.items():
        out[name] = tmp_path / f"{name}.ckpt"
        out[name].write_bytes(content)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("trained")
    out = train_spec(ArchSpec.from_string(NET), data={"name": "synthetic", "channels": 1,
                                                      "n_train": 128, "n_test": 32},
                     train={"epochs": 1, "batch_size": 32, "limit_train_batches": 2,
                            "num_threads": 1}, seed=0, run_dir=run)
    return Path(out["checkpoint"])


@pytest.mark.parametrize("kind", ["truncated", "empty", "random", "text"])
def test_corrupt_weights_are_one_line_errors(tmp_path, trained, kind):
    bad = _corrupt_files(tmp_path, trained)[kind]
    with pytest.raises(ValueError) as e:
        read_checkpoint(bad, what="weights file", fix="pass another")
    assert str(bad) in str(e.value) and len(str(e.value).splitlines()) == 1
    assert str(e.value).endswith("pass another")


def test_corrupt_init_and_export_weights_through_the_commands(tmp_path, trained, done_search):
    bad = _corrupt_files(tmp_path, trained)["truncated"]
    run = tmp_path / "run"
    p = cli("nas.train", _arch(tmp_path), *SYNTH, "train=fast",
            f"init={bad}", f"hydra.run.dir={run}", "progress=false", cwd=tmp_path)
    assert "is not a readable PyTorch file (corrupt or truncated?" in one_line_error(p)
    assert not run.exists()
    # nas.export --weights: refused before the export folder gets a file
    out = tmp_path / "export"
    rc = export_main([str(done_search), "--pick=knee", f"--out={out}", f"--weights={bad}"])
    assert rc == 2 and not out.exists()


# --------------------------------------------------------------------------------------------
# 2. A user table's accuracy scale
# --------------------------------------------------------------------------------------------


def _table(tmp_path: Path, values: list[float]) -> Path:
    path = tmp_path / "table.csv"
    pd.DataFrame({"genome": [f"{i}-0-0-0-0-0" for i in range(len(values))],
                  "acc": values}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("values", "message"), [
    ([0.9, -0.1, 0.8], r"row 3 \(genome 1-0-0-0-0-0\): acc=-0.1 is not an accuracy"),
    ([90.0, 120.0, 80.0], r"row 3 \(genome 1-0-0-0-0-0\): acc=120 is not an accuracy"),
    ([90.0, 0.93, 80.0], r"row 3 \(genome 1-0-0-0-0-0\): acc=0.93 looks like a fraction "
                         r"while row 2 \(genome 0-0-0-0-0-0\) holds 90 \(percent\)"),
])
def test_a_table_outside_both_scales_or_mixing_them_is_refused(tmp_path, values, message):
    table = read_user_table(_table(tmp_path, values))
    with pytest.raises(TableError, match=message):
        table.scale("acc")


def test_a_table_scale_is_detected_and_said(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="nas.table")
    assert read_user_table(_table(tmp_path, [0.9, 0.0, 0.5])).scale("acc") == 1.0
    assert read_user_table(_table(tmp_path, [90.0, 10.0, 0.0])).scale("acc") == 100.0
    said = [r.getMessage() for r in caplog.records]
    assert any("acc read as fractions (0 to 0.9)" in m for m in said)
    assert any("acc read as percent (0 to 90)" in m for m in said)


# --------------------------------------------------------------------------------------------
# 4. A refused command writes nothing
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["freeze=999"], ["freeze=-1"], ["freeze=all-but-tail"], ["data.num_classes=4"],
    ["data.channels=3"], ["train.batch_size=100000000"],
], ids=["freeze-999", "freeze-neg", "freeze-word", "classes", "channels", "memory"])
def test_nas_train_refusals_leave_no_run_folder(tmp_path, args):
    run = tmp_path / "run"
    p = cli("nas.train", _arch(tmp_path), *SYNTH, "train=fast",
            f"hydra.run.dir={run}", "progress=false", *args, cwd=tmp_path)
    one_line_error(p)
    assert not run.exists(), sorted(x.name for x in run.iterdir())


def test_freeze_without_init_warns(tmp_path):
    run = tmp_path / "run"
    p = cli("nas.train", _arch(tmp_path), *SYNTH, "train=fast",
            "train.epochs=1", "train.limit_train_batches=1", "freeze=all-but-head",
            "test=false", f"hydra.run.dir={run}", "progress=false", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "without train.init: the frozen layers keep their random initial weights" in \
        p.stdout + p.stderr


def test_supernet_resume_of_a_search_folder_says_what_it_is(tmp_path, done_search):
    from nas.commands.supernet import SupernetError, run_supernet

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="supernet", overrides=[f"resume={done_search}"])
    with pytest.raises(SupernetError) as e:
        run_supernet(cfg, tmp_path / "unused")
    assert str(e.value) == (f"resume={done_search} is not a supernet run folder (a nas.search "
                            f"run folder); pass the folder of a `python -m nas.supernet` run")


def test_a_zero_population_is_refused_before_any_file(tmp_path):
    with pytest.raises(SearchError, match=r"algorithm.pop_size=0 is invalid"):
        run_search(tiny_cfg("algorithm.pop_size=0"), tmp_path / "run")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


# --------------------------------------------------------------------------------------------
# 7. A run whose every candidate fails is a failure
# --------------------------------------------------------------------------------------------


def test_every_candidate_failing_within_the_initial_budget_is_a_failed_run(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(SearchError, match=r"search failed: 4 of 4 candidates failed, most "
                                          r"often: .*found no architecture. Fix the recipe"):
        run_search(tiny_cfg("train.max_time_s=0.001", "budget.evaluations=4",
                            "baselines.names=[]"), run)
    assert json.loads((run / "status.json").read_text())["state"] == "failed"


def test_a_table_run_whose_candidates_all_fail_says_what_to_check(tmp_path):
    table = tmp_path / "table.csv"  # holds none of the genomes the search will propose
    pd.DataFrame({"genome": ["4-4-4-4-4-4"], "acc": [90.0]}).to_csv(table, index=False)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="search", overrides=[
            "+space=nb201", "evaluator=table", f"evaluator.source={table}",
            "evaluator.metric=acc", "budget.evaluations=4", "budget.initial=4",
            "baselines.names=[]", "progress=false"])
    with pytest.raises(SearchError) as e:
        run_search(cfg, tmp_path / "run")
    assert "train.KEY=VALUE" not in str(e.value)
    assert "Check that evaluator.source holds the space's genomes" in str(e.value)


# --------------------------------------------------------------------------------------------
# 8. SIGTERM is Ctrl-C
# --------------------------------------------------------------------------------------------


def test_sigterm_stops_a_search_like_ctrl_c(tmp_path):
    run_dir = tmp_path / "run"
    args = [*TINY, "budget.evaluations=40", "budget.per_iteration=4", "baselines.names=[]",
            f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen([sys.executable, "-m", "nas.search", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + 240
    while archive_records(run_dir / RF.ARCHIVE) < 2 and time.time() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # what timeout, SLURM and Kubernetes send
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].endswith(
        f"continue with: python -m nas.search resume={run_dir}")
    assert json.loads((run_dir / "status.json").read_text())["state"] == "interrupted"
    assert not (run_dir / RF.LOCK).exists()


# --------------------------------------------------------------------------------------------
# 9. Resume as people type it
# --------------------------------------------------------------------------------------------


def test_resume_accepts_the_start_commands_own_values(tmp_path, done_search):
    args = [*TINY, "baselines.names=[]", f"resume={done_search}", "budget.evaluations=7"]
    out = run_search(tiny_cfg(*args[len(TINY):]), tmp_path / "unused", overrides=args)
    assert out["evaluations"] == 7


def test_resume_refuses_a_real_change_naming_both_values(tmp_path, done_search):
    args = ["space.resolutions=[16]", f"resume={done_search}"]
    with pytest.raises(SearchError, match=r"space.resolutions cannot change when a run is "
                                          r"resumed .*the run has space.resolutions=\[12,16\], "
                                          r"this command gives \[16\]"):
        run_search(tiny_cfg(*args), tmp_path / "unused", overrides=args)


@pytest.fixture(scope="module")
def done_search(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("done") / "run"
    run_search(tiny_cfg("baselines.names=[]"), run_dir)
    return run_dir


# --------------------------------------------------------------------------------------------
# 5. Every unknown key of every command is refused; every declared key is accepted
# --------------------------------------------------------------------------------------------


def _compose(command: str, overrides: list[str]):
    from nas.config import COMMANDS

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name=COMMANDS[command], overrides=overrides)


@pytest.mark.parametrize(("command", "overrides", "message"), [
    ("search", ["+space=mobile", "+budget.evalutions=5"],
     r"unknown config key 'budget.evalutions' \(did you mean budget.evaluations\?\)"),
    ("search", ["+space=mobile", "+foo=1"], r"unknown config key 'foo'"),
    ("search", ["+space=mobile", "+train.epoch=5"],
     r"unknown config key 'train.epoch' \(did you mean train.epochs\?\)"),
    ("search", ["+space=mobile", "+space.widthmults=[1]"],
     r"unknown config key 'space.widthmults' \(did you mean space.width_mults\?\)"),
    ("search", ["+space=mobile", "evaluator=table", "+evaluator.workers=2"],
     r"unknown config key 'evaluator.workers'.*keys under evaluator: backend, in_channels"),
    ("search", ["+space=mobile", "+constraints.max_flops=3"],
     r"unknown config key 'constraints.max_flops'"),
    ("search", ["+space=mobile", "+data.sze=3"],
     r"unknown config key 'data.sze' \(did you mean data.size\?\)"),
    ("train", ["arch=lenet5", "+tset=false"],
     r"unknown config key 'tset' \(did you mean test\?\)"),
    ("tune", ["+space=mobile", "+experiment=tune_proxy", "+tune.n_trails=1"],
     r"unknown config key 'tune.n_trails' \(did you mean tune.n_trials\?\)"),
    ("baselines", ["+baselines.nmes=[lenet5]"],
     r"unknown config key 'baselines.nmes' \(did you mean baselines.names\?\)"),
    ("supernet", ["+space=mobile", "+supernet.sandwch=false"],
     r"unknown config key 'supernet.sandwch' \(did you mean supernet.sandwich\?\)"),
])
def test_every_command_refuses_unknown_keys_anywhere(command, overrides, message):
    from nas.commands import CHECKS

    cfg = _compose(command, overrides)
    with pytest.raises(ValueError, match=message):
        CHECKS.get(command)(cfg)


def test_every_key_conf_declares_is_accepted():
    """The schema is conf/ itself: every option of every group, composed into each command
    that reads the group, passes the key check (no false refusal)."""
    from nas.commands.schema import GROUPS, check_keys

    for command, groups in GROUPS.items():
        base = {"train": ["arch=lenet5"], "search": ["+space=mobile"],
                "tune": ["+space=mobile"], "supernet": ["+space=mobile"]}.get(command, [])
        for group in groups:
            if group == "preset":
                continue
            for option in sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")):
                prefix = "+" if group == "space" else ""
                ov = [o for o in base if not o.startswith(f"+{group}=")]
                check_keys(_compose(command, [*ov, f"{prefix}{group}={option}"]), command)
    for path in sorted((CONF_DIR / "experiment").glob("*.yaml")):  # every experiment
        space = "nb201" if path.stem.startswith("nb201") else "mobile"
        for command in ("tune",) if path.stem.startswith("tune") else ("search", "tune"):
            check_keys(_compose(command, [f"+space={space}", f"+experiment={path.stem}"]),
                       command)


def test_hydra_composition_errors_are_one_line(tmp_path):
    cases = [(["budget.evalutions=5"], "unknown config key 'budget.evalutions' (did you mean "
                                       "budget.evaluations?)"),
             (["data=foo"], "data=foo is not an option of the data group; options: cifar10"),
             (["budget.evaluations=["], "cannot parse an override")]
    for args, text in cases:
        p = cli("nas.search", "+space=mobile", *args, f"hydra.run.dir={tmp_path / 'r'}",
                cwd=tmp_path)
        assert text in one_line_error(p), p.stderr
        assert not (tmp_path / "r").exists()


def test_commands_name_a_typo_before_loading_the_training_stack(tmp_path):
    """python -m nas.search (and nas.tune, nas.baselines) compose and key-check the command
    line first: a typo or a wrong group option costs a second, not the 5 s torch, Lightning
    and scikit-learn take to import (what is loaded is checked when the process exits)."""
    probe = ("import atexit, runpy, sys\n"
             "atexit.register(lambda: print('loaded:', sorted(m for m in ('torch', "
             "'pytorch_lightning', 'sklearn') if m in sys.modules), file=sys.stderr))\n"
             "sys.argv = ['nas.search', *sys.argv[1:]]\n"
             "runpy.run_module('nas.search', run_name='__main__', alter_sys=True)\n")
    for command, args, text in [
            ("search", ["+space=mobile", "budget.evalutions=5"],
             "unknown config key 'budget.evalutions'"),
            ("search", ["+space=mobile", "data=foo"],
             "data=foo is not an option of the data group"),
            ("search", ["+space=mobile", "+train.epoch=5"], "unknown config key 'train.epoch'"),
            ("search", ["+space=mobile", "+surrogate.feature=[synflow]"],
             "unknown config key 'surrogate.feature'"),
            ("tune", ["+space=mobile", "+tune.n_trial=3"], "unknown config key 'tune.n_trial'"),
            ("baselines", ["+baselines.name=[lenet5]"],
             "unknown config key 'baselines.name'")]:
        p = subprocess.run([sys.executable, "-c", probe.replace("nas.search", f"nas.{command}"),
                            *args,
                            f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
        assert lines[-2].startswith("error: ") and text in lines[-2], p.stderr[-2000:]
        assert lines[-1] == "loaded: []", p.stderr[-2000:]
        assert not (tmp_path / "r").exists()
    # a bad value is checked by the search's own check, which loads them: same one line
    p = cli("nas.search", "+space=mobile", "budget.evaluations=0",
            f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert one_line_error(p) == "error: budget.evaluations=0 is invalid; pass an integer >= 1"


def test_an_experiment_that_sets_the_space_must_follow_it(tmp_path):
    """Hydra merges +group overrides in order: an experiment's space.* keys placed before
    +space= would be silently overwritten, so that order is refused (for every experiment
    that sets space keys); an experiment without space keys may come first."""
    setting_space = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")
                           if "space" in OmegaConf.load(p))
    assert "nb201_c1r16e2s20" in setting_space
    for exp in setting_space:
        with pytest.raises(OverrideOrderError, match=rf"\+experiment={exp} sets space keys"):
            check_override_order([f"+experiment={exp}", "data.root=x", "+space=nb201"])
        check_override_order(["+space=nb201", f"+experiment={exp}"])  # the working order
    check_override_order(["+experiment=compare", "+space=mobile"])  # no space keys
    p = cli("nas.search", "+experiment=nb201_c1r16e2s20", "+space=nb201",
            f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path)
    assert one_line_error(p) == (
        "error: +experiment=nb201_c1r16e2s20 sets space keys (cells, resolution) and must "
        "come after +space=nb201, which would overwrite them: pass +space=nb201 "
        "+experiment=nb201_c1r16e2s20")
    assert not (tmp_path / "r").exists()
    # in the working order the reductions hold
    cfg = _compose("search", ["+space=nb201", "+experiment=nb201_c1r16e2s20"])
    assert (cfg.space.cells, cfg.space.resolution, cfg.train.epochs) == (1, 16, 2)


# --------------------------------------------------------------------------------------------
# 6. Sweeps: every job checked first, a failed job does not stop the others
# --------------------------------------------------------------------------------------------


def test_a_sweep_checks_every_job_before_the_first_starts(tmp_path):
    p = cli("nas.search", "--multirun", "+space=mobile", "train=fast", "baselines.names=[]",
            "budget.evaluations=4,abc,6", "budget.initial=4",
            f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    line = one_line_error(p)
    assert line.startswith("error: sweep job #1 (") and "budget.evaluations=abc" in line
    assert line.endswith("budget.evaluations='abc' is invalid; pass an integer >= 1; no job "
                         "was started")
    assert not any((tmp_path / "sweep").glob("*/archive.sqlite"))


def test_a_failed_sweep_job_does_not_stop_the_others(tmp_path):
    p = cli("nas.search", "--multirun", "+space=mobile", "train=fast", "baselines.names=[]",
            "budget.evaluations=3", "budget.initial=3", "evaluator=local", "progress=false",
            "data=synthetic", "data.n_train=128", "data.size=16", "space.resolutions=[12]",
            "train.max_time_s=0.001,null", f"hydra.sweep.dir={tmp_path / 'sweep'}",
            cwd=tmp_path)
    assert p.returncode == 2, p.stderr[-3000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("sweep: 1 of 2 failed, 0 not run (") and "max_time_s=0.001" in last
    assert (tmp_path / "sweep" / "1" / "pareto.csv").exists()  # the second job ran


def test_tune_workers_sharing_a_study_run_no_more_than_n_trials(tmp_path):
    """Two workers that start a trial together: the one whose trial would exceed n_trials
    (the complete trials and those running ahead of it) runs nothing and stops."""
    import optuna
    from optuna.trial import TrialState

    from nas.commands.tune import Tuner

    study = optuna.create_study()
    for v in (0.1, 0.2):
        study.add_trial(optuna.trial.create_trial(value=v, state=TrialState.COMPLETE))
    study.ask()  # another worker's trial, running
    tuner = Tuner([], [], ["hypervolume"], tmp_path, retry=lambda *a: None, n_trials=3)
    study.optimize(tuner, n_trials=5)  # would run five: stops at once, running none
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE] * 2 + [TrialState.RUNNING, TrialState.PRUNED]


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", b"plain text, not a checkpoint"])
def test_supernet_resume_of_a_corrupt_checkpoint_is_one_line(tmp_path, content):
    from nas.commands.supernet import CHECKPOINT, run_supernet

    run_dir = tmp_path / "supernet_run"
    (run_dir / CHECKPOINT).parent.mkdir(parents=True)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        saved = compose(config_name="supernet", overrides=["+space=mobile"])
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(saved))
    (run_dir / CHECKPOINT).write_bytes(content)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="supernet", overrides=[f"resume={run_dir}"])
    with pytest.raises(ValueError) as e:
        run_supernet(cfg, tmp_path / "unused")
    msg = str(e.value)
    assert "\n" not in msg and "supernet checkpoint" in msg and msg.endswith("start a fresh run")
    assert str(run_dir / CHECKPOINT) in msg


def test_an_unknown_tune_parameter_says_how_to_add_one(tmp_path):
    p = cli("nas.tune", "+space=mobile", "+experiment=tune_proxy",
            "tune.params.train.wd=\"interval(0, 1)\"", cwd=tmp_path)
    assert one_line_error(p).startswith(
        "error: tune.params.train.wd is not a parameter of this study; add one with a leading +")
