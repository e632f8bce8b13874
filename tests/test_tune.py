"""nas.tune: Optuna studies whose trials are whole searches; persistence, resume after
SIGKILL, workers sharing a study, the sweep grammar and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from nas.commands.tune import OBJECTIVES, TuneError, parse_param, parse_params, run_tune
from tests.conftest import archive_records

ROOT = Path(__file__).resolve().parents[1]

# Each trial is a real but tiny search: two 12-pixel networks trained for two batches on
# synthetic data; a fixed cost reference spares sampling the space for it.
TINY = [
    "+space=mobile", "data=synthetic", "data.n_train=96", "data.n_test=32", "data.size=12",
    "train=fast", "train.batch_size=32", "train.limit_train_batches=2", "budget.evaluations=2",
    "budget.initial=2", "budget.per_iteration=1", "baselines.names=[]",
    "space.resolutions=[12]", "algorithm=random", "hypervolume.cost_ref=1e9", "evaluator=local",
]
PARAMS = "+tune.params={train.lr:'tag(log, interval(0.01, 0.5))',train.epochs:'choice(1, 2)'}"


def _trial_hypervolume(run_dir: str) -> float:
    return float(pd.read_csv(Path(run_dir) / "hypervolume.csv")["hypervolume"].iloc[-1])


# --------------------------------------------------------------------------------------------
# The sweep grammar (Hydra's override parser) -> Optuna distributions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "dist"), [
    ("interval(0.01, 0.5)", FloatDistribution(0.01, 0.5)),
    ("interval(2, 8)", FloatDistribution(2.0, 8.0)),  # an interval is real-valued
    ("int(interval(2.0, 8.0))", IntDistribution(2, 8)),
    ("tag(log, interval(1e-5, 1e-3))", FloatDistribution(1e-5, 1e-3, log=True)),
    ("tag(log, int(interval(16, 256)))", IntDistribution(16, 256, log=True)),
    ("range(2, 10, 2)", IntDistribution(2, 8, step=2)),
    ("choice(2, 3, 4)", CategoricalDistribution([2, 3, 4])),
    ("choice(fast, proxy)", CategoricalDistribution(["fast", "proxy"])),
])
def test_sweep_expressions_become_optuna_distributions(text, dist):
    assert parse_param("train.x", text).distribution == dist


def test_suggested_values_become_hydra_overrides():
    p = parse_params({"space": {"resolutions": "choice([12,16], [16])"},
                      "train.lr": "tag(log, interval(0.01, 0.5))"})
    assert [q.key for q in p] == ["space.resolutions", "train.lr"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    res, lr = (q.suggest(trial) for q in p)
    assert res in ("space.resolutions=[12,16]", "space.resolutions=[16]")
    assert lr.startswith("train.lr=") and 0.01 <= float(lr.split("=")[1]) <= 0.5
    assert float(lr.split("=")[1]) == trial.params["train.lr"]  # exact round trip


@pytest.mark.parametrize(("text", "needle"), [
    ("interval(0.5)", "tune.params: train.lr=interval(0.5) cannot be parsed"),
    ("interval(0.5, x)", "cannot be parsed"),
    ("interval(0.5, 0.1)", "the interval is empty; write interval(low, high) with low < high"),
    ("tag(log, interval(0, 1))", "a log-scale interval needs low > 0"),
    ("0.1", "is not a sweep; write interval(a, b)"),
    ("tag(exp, interval(1, 2))", "unknown tag ['exp']"),
])
def test_malformed_sweep_is_one_clear_error(text, needle):
    with pytest.raises(TuneError) as e:
        parse_param("train.lr", text)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------------------------
# Studies in SQLite: run, continue, read back
# --------------------------------------------------------------------------------------------


def test_sweep_into_sqlite_continues_and_reads_back(tmp_path):
    out = run_tune([*TINY, PARAMS, "tune.seed=0", "tune.n_trials=2"], tmp_path)
    url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    assert out["storage"] == url and out["complete"] == 2
    study = optuna.load_study(study_name="tune", storage=url)
    first = [(t.number, t.values, t.params) for t in study.trials]
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    for t in study.trials:
        assert 0.01 <= t.params["train.lr"] <= 0.5 and t.params["train.epochs"] in (1, 2)
        run_dir = t.user_attrs["run_dir"]
        assert Path(run_dir) == tmp_path / "trials" / f"{t.number:04d}"
        assert t.value == pytest.approx(_trial_hypervolume(run_dir))  # what the search wrote
        cfg = (Path(run_dir) / "config.yaml").read_text()
        assert f"lr: {t.params['train.lr']}" in cfg  # the search ran with the trial's values
        assert f"epochs: {t.params['train.epochs']}" in cfg
        assert "tune:" not in cfg
    assert {0, 1} == {b["number"] for b in out["best"]}
    assert len(pd.read_csv(tmp_path / "trials.csv")) == 2

    # the same command with a larger budget continues the same study
    out = run_tune([*TINY, PARAMS, "tune.seed=0", "tune.n_trials=3"], tmp_path)
    study = optuna.load_study(study_name="tune", storage=url)
    assert out["complete"] == 3 and len(study.trials) == 3
    assert [(t.number, t.values, t.params) for t in study.trials[:2]] == first
    assert sorted(p.name for p in (tmp_path / "trials").iterdir()) == ["0000", "0001", "0002"]
    # ... and once it holds n_trials complete trials, running it again trains nothing
    run_tune([*TINY, PARAMS, "tune.seed=0", "tune.n_trials=3"], tmp_path)
    assert len(optuna.load_study(study_name="tune", storage=url).trials) == 3

    # a different sweep under the same study name is refused
    with pytest.raises(TuneError, match="choose another tune.study_name"):
        run_tune([*TINY, "+tune.params={train.lr:'interval(0.1, 0.2)'}", "tune.n_trials=4"],
                 tmp_path)

    # optuna-dashboard (the dev extra) serves the study from the same storage
    dashboard = pytest.importorskip("optuna_dashboard")
    app = dashboard.wsgi(url)

    def get(path: str) -> dict:
        env: dict = {}
        setup_testing_defaults(env)
        env["PATH_INFO"] = path
        status = []
        body = b"".join(app(env, lambda s, h, *a: status.append(s)))
        assert status == ["200 OK"], path
        return json.loads(body)

    (summary,) = get("/api/studies")["study_summaries"]
    assert summary["study_name"] == "tune"
    trials = get(f"/api/studies/{summary['study_id']}")["trials"]
    assert len(trials) == 3 and {t["state"] for t in trials} == {"Complete"}


# --------------------------------------------------------------------------------------------
# Processes: killed and resumed, two workers on one study
# --------------------------------------------------------------------------------------------


def _cli(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "nas.tune", *TINY, PARAMS, f"hydra.run.dir={run_dir}",
            *extra]


def test_killed_sweep_resumes_its_trial_search(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # a trial of four architectures, killed after its first is archived
    cmd = _cli(tmp_path, "tune.seed=0", "tune.n_trials=1", "budget.evaluations=4")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    archive = tmp_path / "trials" / "0000" / "archive.sqlite"
    deadline = time.time() + 240
    while archive_records(archive) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_killed = archive_records(archive)
    assert 1 <= n_killed < 4
    url = f"sqlite:///{tmp_path / 'study.sqlite'}"
    killed = optuna.load_study(study_name="tune", storage=url).trials[0]
    assert killed.state == TrialState.RUNNING  # nobody has noticed yet

    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    trials = optuna.load_study(study_name="tune", storage=url).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    retry = trials[1]
    assert retry.system_attrs["failed_trial"] == 0 and retry.params == killed.params
    assert retry.user_attrs["run_dir"] == str(tmp_path / "trials" / "0000")  # resumed there
    assert not (tmp_path / "trials" / "0001").exists()
    assert archive_records(archive) == 4  # what the killed attempt trained was kept, not retrained
    ev = pd.read_csv(archive.parent / "evaluated.csv")
    assert len(ev) == 4 and ev["arch_id"].is_unique
    assert retry.value == pytest.approx(_trial_hypervolume(retry.user_attrs["run_dir"]))


@pytest.mark.parametrize("backend", ["sqlite", "journal"])
def test_two_workers_share_one_study(tmp_path, backend):
    """Two processes started together on one new storage (the default SQLite file, or a
    journal file): distinct trials of one multi-objective study."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if backend == "journal":
        where = [f"tune.storage={tmp_path / 'study.log'}"]
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log")))
    else:
        where, storage = [], f"sqlite:///{tmp_path / 'runs' / 'study.sqlite'}"
    cmd = _cli(tmp_path / "runs", *where, "tune.n_trials=2",
               "tune.objectives=[hypervolume,wall_time]")
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    study = optuna.load_study(study_name="tune", storage=storage)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    done = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) >= 2
    assert len({t.number for t in study.trials}) == len(study.trials)
    assert len({t.user_attrs["run_dir"] for t in done}) == len(done)
    assert {t.user_attrs["worker"]["pid"] for t in done} == {p.pid for p in procs}  # both
    assert len({tuple(sorted(t.params.items())) for t in done}) == len(done)
    for t in done:
        assert t.values[1] > 0 and t.values[0] == pytest.approx(
            _trial_hypervolume(t.user_attrs["run_dir"]))
    assert "Pareto-optimal trials" in outs[0][0] + outs[1][0]


# --------------------------------------------------------------------------------------------
# Bad input: one line naming the fix, nothing run
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("extra", "needle"), [
    (["+tune.params={train.lrr:'interval(0.01, 0.5)'}"],
     "tune.params: 'train.lrr' does not override the search config"),
    (["+tune.params={train.lr:'interval(0.01 0.5)'}"],
     "tune.params: train.lr=interval(0.01 0.5) cannot be parsed"),
    ([PARAMS, "tune.storage=sqlite:////nonexistent-dir/x/study.db"],
     "tune.storage=sqlite:////nonexistent-dir/x/study.db: cannot open the storage"),
    ([PARAMS, "tune.storage=/nonexistent-dir/x/study.log"],
     "tune.storage=/nonexistent-dir/x/study.log: cannot open the journal file"),
    ([PARAMS, "tune.objectives=[speed]"], "tune.objectives must be distinct names from"),
    ([PARAMS, "tune.sampler=cma"], "unknown Optuna sampler 'cma'; known: nsga2"),
    (["tune.n_trials=2"], "tune.params is empty: nothing to tune"),
])
def test_bad_input_is_one_line_and_runs_nothing(tmp_path, extra, needle):
    with pytest.raises(TuneError) as e:
        run_tune([*TINY, *extra], tmp_path / "t")
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "t" / "trials").exists()


def test_cli_error_exit_code_and_nothing_left(tmp_path):
    p = subprocess.run(_cli(tmp_path / "t", "tune.storage=postgresql://nobody@127.0.0.1:1/x"),
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("error: tune.storage=postgresql://nobody@127.0.0.1:1/x: cannot open "
                           "the storage (")
    assert "leave tune.storage unset" in line
    assert not (tmp_path / "t").exists()


def test_tune_proxy_experiment_composes_to_a_valid_sweep():
    from nas.commands.tune import check_params, check_tune, compose_config

    base = ["+space=mobile", "+experiment=tune_proxy"]
    cfg = compose_config(base)
    check_tune(cfg.tune)
    assert cfg.tune.study_name == "tune_proxy" and cfg.budget.evaluations == 12
    params = parse_params(cfg.tune.params)
    assert {p.key for p in params} == {"train.lr", "train.weight_decay", "train.epochs"}
    check_params(base, params)
    assert set(OBJECTIVES) >= set(cfg.tune.objectives)
