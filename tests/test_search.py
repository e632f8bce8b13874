"""End-to-end searches on small data: outputs, comparators, resume after SIGKILL, errors."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from nas.commands.search import run_search
from nas.config import CONF_DIR
from nas.cost import totals
from nas.run import EVALUATED_COLUMNS
from nas.search import SearchError
from tests.conftest import kill_after_records

ROOT = Path(__file__).resolve().parents[1]

# A tiny but real search: synthetic 16x16 images, one short epoch per candidate, a narrow
# mobile space. Every run trains real networks.
TINY = [
    "+space=mobile", "data=synthetic", "data.n_train=192", "data.n_test=64", "data.size=16",
    "train=fast", "train.batch_size=64", "budget.evaluations=6", "budget.initial=4",
    "budget.per_iteration=2", "baselines.names=[lenet5]", "progress=false",
    "space.resolutions=[12,16]", "algorithm.generations=5", "algorithm.pop_size=16",
    "evaluator=local",
]


def tiny_cfg(*extra: str):
    overrides = list(TINY)
    for e in extra:
        key = e.split("=")[0]
        # another algorithm has its own options: drop the surrogate's
        overrides = [o for o in overrides if o.split("=")[0] != key
                     and not (key == "algorithm" and o.startswith("algorithm."))]
        overrides.append(e)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="search", overrides=overrides)


def _non_dominated(df: pd.DataFrame) -> bool:
    F = df[["error", "macs"]].to_numpy(float)
    for i in range(len(F)):
        dominated = np.all(F <= F[i], axis=1) & np.any(F < F[i], axis=1)
        if dominated.any():
            return False
    return True


@pytest.fixture(scope="module")
def surrogate_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    out = run_search(tiny_cfg(), run_dir)
    return run_dir, out


def test_outputs_exist_with_documented_columns(surrogate_run):
    run_dir, out = surrogate_run
    for name in ("config.yaml", "archive.sqlite", "state.pkl", "status.json", "evaluated.csv",
                 "pareto.csv", "baselines.csv", "hypervolume.csv", "pareto.png", "pareto.html"):
        assert (run_dir / name).exists(), name
    ev = pd.read_csv(run_dir / "evaluated.csv")
    assert list(ev.columns) == EVALUATED_COLUMNS
    assert len(ev) == 6 and ev["arch_id"].is_unique
    assert set(ev["status"]) <= {"ok", "failed"}
    assert (ev["macs"] > 0).all()
    hv = pd.read_csv(run_dir / "hypervolume.csv")
    assert list(hv.columns) == ["iteration", "evaluations", "hypervolume", "cost", "cost_ref",
                                "objectives", "refs"]
    assert hv["evaluations"].tolist() == [4, 6]
    assert hv["hypervolume"].is_monotonic_increasing
    assert out["hypervolume"] == pytest.approx(hv["hypervolume"].iloc[-1])
    assert '"state": "complete"' in (run_dir / "status.json").read_text()


def test_pareto_rows_are_non_dominated_and_baselines_marked(surrogate_run):
    run_dir, _ = surrogate_run
    pf = pd.read_csv(run_dir / "pareto.csv")
    assert {"rank", "source", "name"} <= set(pf.columns)
    search = pf[pf["source"] == "search"]
    assert len(search) >= 1
    assert _non_dominated(search)
    assert "lenet5" in set(pf.loc[pf["source"] == "baseline", "name"])
    # rank is the Pareto rank among search front and baselines together
    union = pf[["error", "macs"]].to_numpy(float)
    for i, r in enumerate(pf.itertuples()):
        beaten = np.all(union <= union[i], axis=1) & np.any(union < union[i], axis=1)
        assert (r.rank == 0) == (not beaten.any())
    ev = pd.read_csv(run_dir / "evaluated.csv")
    ok = ev[ev["status"] == "ok"]
    # every evaluated architecture not on the front is dominated by one that is
    for _, r in ok[~ok["arch_id"].isin(search["arch_id"])].iterrows():
        dom = (search["error"] <= r["error"]) & (search["macs"] <= r["macs"])
        assert dom.any()


def test_surrogate_quality_is_logged(surrogate_run):
    run_dir, _ = surrogate_run
    s = pd.read_csv(run_dir / "surrogate.csv")
    assert {"surrogate", "train_size"} <= set(s.columns)
    assert s["train_size"].iloc[0] >= 3


def test_surrogate_inputs_are_genes_plus_exact_log_costs():
    import math

    from nas.algorithms import surrogate_inputs
    from nas.cost import totals
    from nas.registry import SPACES

    space = SPACES.build("mobile", num_classes=10, in_channels=1, resolutions=[12, 16],
                      width_mults=[0.25, 0.5])
    G = space.sample(5, np.random.default_rng(0))
    genes = surrogate_inputs(space, G, "genes")
    np.testing.assert_array_equal(genes, space.features(G))
    X = surrogate_inputs(space, G)  # genes+costs by default
    assert X.shape == (5, genes.shape[1] + 3)
    np.testing.assert_array_equal(X[:, :-3], genes)
    for row, g in zip(X, G):
        assert row[-3:].tolist() == [math.log(v) for v in totals(space.decode(g))]
    memo = {}

    def info(g):
        memo[g] = dict(zip(("macs", "params", "activations"), totals(space.decode(g))))
        return memo[g]

    np.testing.assert_array_equal(surrogate_inputs(space, G, info=info), X)
    assert len(memo) == 5
    with pytest.raises(ValueError, match="surrogate.inputs must be one of"):
        surrogate_inputs(space, G, "costs")


def test_coster_memo_is_bounded_and_recomputes_evicted_entries():
    from nas.objectives import Coster
    from nas.registry import SPACES

    space = SPACES.build("mobile", num_classes=10, in_channels=1, resolutions=[12, 16],
                      width_mults=[0.25, 0.5])
    G = [tuple(g) for g in space.sample(8, np.random.default_rng(1))]
    coster = Coster(space, "macs", capacity=5)
    first = [dict(coster.info(g)) for g in G]
    assert len(coster._memo) == 5
    assert space.arch_id(G[0]) not in coster._memo  # least recently used goes first
    again = coster.info(G[0])
    assert {k: again[k] for k in ("macs", "params", "activations")} == {
        k: first[0][k] for k in ("macs", "params", "activations")}
    assert coster.cost(G[0]) == first[0]["macs"]


@pytest.mark.parametrize("algorithm", ["random", "nsga2", "optuna"])
def test_comparators_run_on_the_same_budget(tmp_path, algorithm):
    out = run_search(tiny_cfg(f"algorithm={algorithm}", "baselines.names=[]"), tmp_path)
    ev = pd.read_csv(tmp_path / "evaluated.csv")
    assert len(ev) == 6 and ev["arch_id"].is_unique
    assert out["evaluations"] == 6


@pytest.mark.parametrize(("sampler", "space"), [("nsga2", "mobile"), ("nsga3", "mobile"),
                                              ("tpe", "mobile"), ("gp", "residual")])
def test_optuna_comparator_samplers_ask_tell_with_constraints(sampler, space):
    """Each Optuna sampler proposes new, feasible, distinct architectures; infeasible proposals
    reach the sampler as constraint values (Trial.set_constraint), not as trained results;
    a pickled comparator (the search's saved state) proposes what the live one proposes."""
    import pickle

    from nas.algorithms import CONSTRAINT, Context, make_algorithm
    from nas.registry import SPACES

    kw = (dict(resolutions=[12, 16], width_mults=[0.25, 0.5]) if space == "mobile"
          else dict(depths=[1, 2]))  # gp: 10 genes keep it fast
    sp = SPACES.build(space, num_classes=10, in_channels=1, **kw)
    costs = {}

    def cost(g):
        g = tuple(int(v) for v in g)
        if g not in costs:
            costs[g] = float(totals(sp.decode(g))[0])
        return costs[g]

    limit = float(np.median([cost(g) for g in sp.sample(200, np.random.default_rng(0))]))
    algo = make_algorithm({"name": "optuna", "sampler": sampler, "population_size": 6},
                          seed=0, surrogate={})
    rng = np.random.default_rng(1)
    X, F = np.empty((0, sp.n_var), np.int64), np.empty((0, 2))

    def ctx():
        return Context(sp, cost, lambda g: cost(g) <= limit, X, F,
                       {sp.arch_id(x) for x in X}, True)

    # each GP ask fits a model per objective and constraint: keep its share small
    batch, rounds = (2, 2) if sampler == "gp" else (3, 3)
    for it in range(rounds):
        c = ctx()
        genomes = algo.initial(c, 6) if it == 0 else algo.ask(c, batch)
        assert len(genomes) == (6 if it == 0 else batch)
        ids = [sp.arch_id(g) for g in genomes]
        assert len(set(ids)) == len(ids) and not set(ids) & c.seen
        assert all(cost(g) <= limit for g in genomes)
        f = np.array([[rng.uniform(0.05, 0.5), cost(g)] for g in genomes])
        algo.tell(c, genomes, f)
        X, F = np.vstack([X, np.array(genomes)]), np.vstack([F, f])
    import optuna

    trials = algo.study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(trials) >= len(X)
    for t in trials:
        g = sp.canonical([t.params[f"g{i}"] for i in range(sp.n_var)])
        infeasible = cost(g) > limit
        assert t.constraints == {CONSTRAINT: float(infeasible)}  # what the sampler reads
    again = pickle.loads(pickle.dumps(algo))
    assert again.ask(ctx(), batch - 1) == algo.ask(ctx(), batch - 1)


def test_optuna_comparator_rejects_unknown_sampler():
    from nas.algorithms import make_algorithm

    with pytest.raises(ValueError, match=r"unknown Optuna sampler 'cmaes'; known: nsga2, nsga3, gp, tpe"):
        make_algorithm({"name": "optuna", "sampler": "cmaes"}, seed=0, surrogate={})


def test_constraint_is_respected(tmp_path):
    run_search(tiny_cfg("constraints.max_macs=7000000", "baselines.names=[]",
                        "algorithm=random"), tmp_path)
    ev = pd.read_csv(tmp_path / "evaluated.csv")
    assert len(ev) == 6 and (ev["macs"] <= 7_000_000).all()


def test_latency_objective(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_LATENCY_DIR", str(tmp_path / "latency"))
    # a given reference cost spares measuring 100 sampled architectures for it
    run_search(tiny_cfg("objectives=[error,latency]", "algorithm=random", "baselines.names=[]",
                        "budget.evaluations=4", "hypervolume.cost_ref=100.0"), tmp_path / "run")
    ev = pd.read_csv(tmp_path / "run" / "evaluated.csv")
    assert len(ev) == 4 and (ev["latency_ms"] > 0).all()
    hv = pd.read_csv(tmp_path / "run" / "hypervolume.csv")
    assert hv["cost"].iloc[0] == "latency_ms" and (hv["hypervolume"] > 0).all()
    (table,) = (tmp_path / "latency").glob("*.json")  # the lookup table was persisted
    # Only the layers of the networks it evaluated were timed: sizing the worker pool and
    # the estimate read a sample's MACs, which need no latency.
    from omegaconf import OmegaConf

    from nas import registry
    from nas.latency import LatencyTable

    lat = LatencyTable(table, threads=1)
    cfg = tiny_cfg()
    space = registry.space(OmegaConf.to_container(cfg.space, resolve=True),
                           num_classes=cfg.data.num_classes, in_channels=cfg.data.channels)
    used = {k for g in ev["genome"]
            for k in lat.layer_keys(space.decode(tuple(int(v) for v in g.split("-"))))}
    assert set(lat.entries) - {lat._overhead_key()} == used


# --------------------------------------------------------------------------------------------
# Resume after SIGKILL
# --------------------------------------------------------------------------------------------


def _cli(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "nas.search", *TINY, "budget.evaluations=8",
            "baselines.names=[lenet5]", f"hydra.run.dir={run_dir}", *extra]


def _archive_rows(path: Path) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        rows = con.execute("SELECT arch_id, space, accuracy, status, iteration FROM records "
                           "ORDER BY arch_id").fetchall()
    finally:
        con.close()
    return rows


def test_resume_after_sigkill_gives_the_same_archive(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed = tmp_path / "killed"
    # kill it mid-search: after the baseline and a few candidates are archived
    n_before = kill_after_records(_cli(killed), killed / "archive.sqlite", 4, cwd=ROOT, env=env)
    assert 4 <= n_before < 9
    assert '"state": "complete"' not in (killed / "status.json").read_text()

    subprocess.run([sys.executable, "-m", "nas.search", f"resume={killed}", "progress=false"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    full = tmp_path / "full"
    subprocess.run(_cli(full), cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)

    resumed_rows = _archive_rows(killed / "archive.sqlite")
    full_rows = _archive_rows(full / "archive.sqlite")
    assert len(full_rows) == 9  # 8 candidates + 1 baseline
    assert [r[:2] + r[3:] for r in resumed_rows] == [r[:2] + r[3:] for r in full_rows]
    for a, b in zip(resumed_rows, full_rows):
        assert a[2] == pytest.approx(b[2], abs=1e-6)
    assert '"state": "complete"' in (killed / "status.json").read_text()
    pd.testing.assert_frame_equal(
        pd.read_csv(killed / "pareto.csv")[["arch_id", "macs"]],
        pd.read_csv(full / "pareto.csv")[["arch_id", "macs"]])


@pytest.mark.slow
def test_async_pool_resume_after_sigkill_loses_and_repeats_nothing(tmp_path):
    """Two pool workers, asynchronous asks: a SIGKILLed run resumes with what it had
    proposed, in order, trains what had no result, and ends with every proposal archived
    exactly once and the rows archived before the kill untouched."""
    import pickle

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed = tmp_path / "killed"
    cli = [a for a in _cli(killed) if a != "evaluator=local"] + [
        "evaluator=pool", "evaluator.workers=2", "evaluator.threads_per_worker=1"]
    kill_after_records(cli, killed / "archive.sqlite", 4, cwd=ROOT, env=env)
    con = sqlite3.connect(killed / "archive.sqlite")
    before = con.execute("SELECT id, arch_id, accuracy, fidelity FROM records").fetchall()
    con.close()
    with open(killed / "state.pkl", "rb") as f:
        asked_before = [b["genomes"] for b in pickle.load(f)["batches"]]
    assert 4 <= len(before) < 9

    subprocess.run([sys.executable, "-m", "nas.search", f"resume={killed}", "progress=false"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    con = sqlite3.connect(killed / "archive.sqlite")
    after = con.execute("SELECT id, arch_id, accuracy, fidelity FROM records").fetchall()
    genomes = [tuple(__import__("json").loads(g)) for (g,) in con.execute(
        "SELECT genome FROM records WHERE space != 'baseline'")]
    con.close()
    with open(killed / "state.pkl", "rb") as f:
        asked = [b["genomes"] for b in pickle.load(f)["batches"]]
    assert after[:len(before)] == before  # nothing archived before the kill changed
    ids = [r[1] for r in after]
    assert len(ids) == 9 and len(set(ids)) == 9  # 8 candidates + 1 baseline, each once
    assert asked[:len(asked_before)] == asked_before  # the proposals, in their order
    proposed = [tuple(g) for b in asked for g in b]
    assert len(proposed) == 8 and set(proposed) == set(genomes)
    assert '"state": "complete"' in (killed / "status.json").read_text()


def test_several_slots_ask_a_slot_s_worth_while_every_slot_trains(tmp_path, monkeypatch):
    """With two slots, once the initial sample steers the algorithm, it is asked for two
    candidates whenever nothing is queued while both slots train (not one per result, and
    never with a slot waiting for the ask)."""
    import pickle

    import nas.search.scheduler as search_mod
    from nas.evaluate import LocalRunner, TrainTask

    class TwoSlots(LocalRunner):  # runs one at a time, schedules as two slots
        slots = 2

    busy_at_ask = []

    def make(cfg, **kw):
        return TwoSlots(TrainTask(data=kw["data"], train=kw["train"]))

    monkeypatch.setattr(search_mod, "make_evaluator", make)
    import nas.algorithms as A

    ask = A.SurrogateSearch.ask

    def spy(self, ctx, n):
        busy_at_ask.append(len(ctx.pending))
        return ask(self, ctx, n)

    monkeypatch.setattr(A.SurrogateSearch, "ask", spy)
    # the eager scheduler (reproducible asks wait for fixed results: see the next test)
    run_search(tiny_cfg("budget.evaluations=10", "budget.initial=6", "reproducible=false"),
               tmp_path)
    with open(tmp_path / "state.pkl", "rb") as f:
        sizes = [len(b["genomes"]) for b in pickle.load(f)["batches"]]
    assert sizes == [6, 2, 2]
    assert busy_at_ask == [2, 2]  # asked with both slots training, nothing queued


def test_successive_halving_archives_every_rung_and_promotes_the_best(tmp_path):
    run_search(tiny_cfg("fidelity=sha", "fidelity.rungs=[1,2]", "fidelity.eta=2"), tmp_path)
    rows = pd.read_sql("SELECT * FROM records", sqlite3.connect(tmp_path / "archive.sqlite"))
    rows["epochs"] = rows["fidelity"].map(lambda t: __import__("json").loads(t)["epochs"])
    rows["start"] = rows["extra"].map(lambda t: __import__("json").loads(t).get("start_epoch"))
    search = rows[rows["space"] != "baseline"]
    first, second = search[search["epochs"] == 1], search[search["epochs"] == 2]
    assert len(first) == 6 and first["arch_id"].is_unique
    # the best half (Pareto rank, then error) of the final first rung all went on, each
    # continuing from its saved first-rung state
    from nas import pareto

    ok = first[first["status"] == "ok"].reset_index(drop=True)
    F = ok[["error", "macs"]].to_numpy(float)
    ranks = pareto.pareto_ranks(F)
    top = sorted(range(len(ok)), key=lambda i: (ranks[i], F[i, 0]))[: len(first) // 2]
    assert set(ok["arch_id"][top]) <= set(second["arch_id"])
    assert set(second["arch_id"]) <= set(first["arch_id"])
    assert (second["start"] == 1).all()
    base = rows[rows["space"] == "baseline"]
    assert sorted(base["epochs"]) == [1, 2]  # baselines go through every rung
    ev = pd.read_csv(tmp_path / "evaluated.csv")
    assert len(ev) == 6 and ev["arch_id"].is_unique
    reached = search.groupby("arch_id")["epochs"].max()
    assert (ev.set_index("arch_id")["epochs"] == reached.loc[ev["arch_id"]].values).all()
    pf = pd.read_csv(tmp_path / "pareto.csv")
    assert "epochs" in pf.columns and pf["epochs"].notna().all()


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def _run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas.search", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_missing_space_lists_spaces(tmp_path):
    p = _run_cli(tmp_path, f"hydra.run.dir={tmp_path / 'r'}")
    assert p.returncode == 2
    assert "no search space given: add +space=NAME" in p.stderr
    for s in ("mobile", "residual", "inception"):
        assert s in p.stderr
    assert not (tmp_path / "r").exists()  # nothing left behind


def test_unknown_override_is_rejected(tmp_path):
    p = _run_cli(tmp_path, "+space=mobile", "budget.evaluatons=3",
                 f"hydra.run.dir={tmp_path / 'r'}")
    assert p.returncode != 0
    assert "evaluatons" in p.stderr


@pytest.mark.parametrize(("override", "needle"), [
    ("budget.evaluations=0", "budget.evaluations=0 is invalid; pass an integer >= 1"),
    ("budget.initial=50", "budget.initial=50 exceeds budget.evaluations"),
    ("objectives=[error,flops]", "objective 'flops' is not a cost"),
    ("surrogate.inputs=flops", "surrogate.inputs must be one of"),
    ("constraints.max_macs=10", "no architecture of space 'mobile' satisfies "
                                "constraints.max_macs=10 (the smallest of 2000 samples has "),
])
def test_bad_config_clear_error_and_no_run_folder(tmp_path, override, needle):
    with pytest.raises(SearchError) as e:
        run_search(tiny_cfg(override), tmp_path / "run")
    assert needle in str(e.value)
    assert not (tmp_path / "run" / "archive.sqlite").exists()
    assert not (tmp_path / "run" / "status.json").exists()


@pytest.mark.parametrize(("overrides", "needle"), [
    (["fidelity.rungs=[3,1]"], "fidelity.rungs=[3,1] is invalid: give two or more epoch "
                               "counts in increasing order, e.g. fidelity.rungs=[1,3,9]"),
    (["fidelity.rungs=[2]"], "fidelity.rungs=[2] is invalid"),
    (["fidelity.rungs=[0,2]"], "fidelity.rungs=[0,2] is invalid"),
    (["fidelity.eta=1"], "fidelity.eta=1 is invalid: the reduction factor must be a number > 1"),
])
def test_bad_rung_schedule_is_one_clear_error(tmp_path, overrides, needle):
    with pytest.raises(SearchError) as e:
        run_search(tiny_cfg("fidelity=sha", *overrides), tmp_path / "run")
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "run" / "archive.sqlite").exists()


def test_bad_evaluator_workers_via_cli_is_one_line(tmp_path):
    p = _run_cli(tmp_path, "+space=mobile", "evaluator.workers=0",
                 f"hydra.run.dir={tmp_path / 'r'}")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "error: evaluator.workers=0 is invalid; pass an integer >= 1 or null (every core: "
        "one worker per GPU, else one per core)"]
    assert not (tmp_path / "r").exists()


def test_bad_budget_via_cli_leaves_nothing(tmp_path):
    p = _run_cli(tmp_path, "+space=mobile", "budget.evaluations=0",
                 f"hydra.run.dir={tmp_path / 'r'}")
    assert p.returncode == 2 and "budget.evaluations=0 is invalid; pass an integer >= 1" in p.stderr
    assert not (tmp_path / "r").exists()


def test_resume_path_that_is_not_a_run_folder(tmp_path):
    (tmp_path / "junk").mkdir()
    with pytest.raises(SearchError, match="is not a nas run folder"):
        run_search(tiny_cfg(f"resume={tmp_path / 'junk'}"), tmp_path / "x")
    with pytest.raises(SearchError, match="no such folder"):
        run_search(tiny_cfg(f"resume={tmp_path / 'nope'}"), tmp_path / "x")


# --------------------------------------------------------------------------------------------
# Config composition: multirun sweeps (Optuna studies of whole searches: tests/test_tune.py)
# --------------------------------------------------------------------------------------------


def test_multirun_configs_compose():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="search", overrides=["+space=mobile", "+experiment=compare"],
                      return_hydra_config=True)
        assert cfg.hydra.sweeper.params.algorithm == "surrogate,nsga2,optuna,random"
        for space in ("mobile", "residual", "inception"):
            c = compose(config_name="search", overrides=[f"+space={space}"])
            assert c.space is not None


@pytest.mark.slow
def test_multirun_sweep_runs(tmp_path):
    p = subprocess.run([sys.executable, "-m", "nas.search", "--multirun", *TINY,
                        "budget.evaluations=4", "baselines.names=[]", "seed=0,1",
                        f"hydra.sweep.dir={tmp_path}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (tmp_path / "0" / "pareto.csv").exists() and (tmp_path / "1" / "pareto.csv").exists()


def test_reproducible_asks_give_the_same_search_whatever_order_results_arrive(tmp_path,
                                                                              monkeypatch):
    """Two slots whose results arrive in a different order on every run: with
    ``reproducible: true`` every ask sees the same results, so the same seed proposes the
    same architectures in the same order."""
    import random

    import nas.search.scheduler as search_mod
    from nas.evaluate import LocalRunner, Result, TrainTask, run_task

    def shuffled(order_seed: int):
        class TwoSlotsShuffled(LocalRunner):  # two in flight, finished in a random order
            slots = 2

            def _run(self, tasks, done):
                rng, held = random.Random(order_seed), []
                while True:
                    while len(held) < 2 and tasks.queued:
                        i = tasks.next()
                        held.append((i, Result(**run_task(tasks[i]))))
                    if not held:
                        if tasks.next() is None:
                            return
                        continue
                    i, r = held.pop(rng.randrange(len(held)))
                    done(i, r)

        return lambda cfg, **kw: TwoSlotsShuffled(TrainTask(data=kw["data"], train=kw["train"]))

    orders = []
    for order_seed in (1, 2):
        monkeypatch.setattr(search_mod, "make_evaluator", shuffled(order_seed))
        out = tmp_path / f"run{order_seed}"
        run_search(tiny_cfg("budget.evaluations=12", "budget.initial=6",
                            "baselines.names=[]"), out)
        ev = pd.read_csv(out / "evaluated.csv").sort_values(["iteration", "genome"])
        orders.append(list(zip(ev["iteration"], ev["genome"])))
    assert orders[0] == orders[1]


def test_summary_names_the_run_folder_as_a_path_from_the_shell(tmp_path, monkeypatch, capsys):
    quick = ("progress=true", "estimate=false", "algorithm=random", "baselines.names=[]",
             "budget.evaluations=2", "budget.initial=2")
    monkeypatch.chdir(tmp_path)
    run_search(tiny_cfg(*quick), tmp_path / "runs" / "a")
    out = capsys.readouterr().out
    assert "Pareto front: mobile, 2 evaluated (0 failed)" in out
    assert out.rstrip().splitlines()[-1] == f"run folder: {Path('runs') / 'a'}"
    # a folder outside the shell's directory: its whole path
    monkeypatch.chdir(tmp_path / "runs" / "a")
    run_search(tiny_cfg(*quick), tmp_path / "b")
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == f"run folder: {tmp_path / 'b'}"
