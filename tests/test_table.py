"""Tables of known results and the tabular evaluator; K-objective searches end to end."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from nas import pareto
from nas.commands.search import run_search
from nas.config import CONF_DIR
from nas.evaluate import Candidate, TableTask, make_evaluator
from nas.registry import SPACES
from nas.search import SearchError
from nas.table import TableError, load_table, read_user_table

DATA = {"name": "digits"}


@pytest.fixture(scope="module")
def space():
    return SPACES.build("nb201")


def _cand(space, genome) -> Candidate:
    g = space.canonical(genome)
    return Candidate(arch_id=space.arch_id(g), spec=space.decode(g), seed=0, genome=g,
                     space="nb201")


def test_analog_nasbench_lookup(space):
    ev = make_evaluator({"backend": "table", "source": "analog-nasbench",
                         "metric": "baseline_accuracy"}, data=DATA, train={})
    assert isinstance(ev.task, TableTask) and ev.task.scale == 100.0
    best = (2, 2, 0, 2, 2, 2)
    (r,) = ev.evaluate([_cand(space, best)])
    assert r.status == "ok"
    assert r.accuracy == pytest.approx(ev.task.table.frame.loc["2-2-0-2-2-2",
                                                           "baseline_accuracy"] / 100)
    assert set(r.extra["metrics"]) >= {"ptq_accuracy", "analog_accuracy"}
    assert ev.fidelity == {"table": "analog-nasbench", "metric": "baseline_accuracy",
                           "metric_unit": "percent", "dataset": "cifar10"}
    # a candidate without a genome (a baseline) cannot be looked up
    (b,) = ev.evaluate([Candidate(arch_id="baseline:x", spec=space.decode(best), seed=0)])
    assert b.status == "failed" and "not in table" in b.reason


def test_unknown_metric_lists_the_columns():
    with pytest.raises(TableError, match="available: baseline_accuracy, ptq_accuracy"):
        make_evaluator({"backend": "table", "metric": "top1"}, data=DATA, train={})


def test_missing_package_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "analognasbench" else real(name, *a))
    with pytest.raises(TableError, match=r'pip install -e "\.\[bench\]"'):
        load_table("analog-nasbench")


def test_the_package_data_is_read_without_importing_the_package():
    import sys

    load_table("analog-nasbench")
    assert "analognasbench" not in sys.modules  # its __init__ needs pkg_resources


def _user_table(tmp_path, rows: dict, name="t.csv") -> str:
    df = pd.DataFrame({"genome": list(rows), "acc": list(rows.values())})
    path = tmp_path / name
    df.to_csv(path, index=False)
    return str(path)


def test_user_csv_fractions_and_a_missing_genome(space, tmp_path):
    path = _user_table(tmp_path, {"2-2-0-2-2-2": 0.91, "1-1-2-1-1-1": 0.80})
    ev = make_evaluator({"backend": "table", "source": path, "metric": "acc"}, data=DATA,
                        train={})
    assert ev.task.scale == 1.0 and ev.fidelity["metric_unit"] == "fraction"
    ok, missing = ev.evaluate([_cand(space, (2, 2, 0, 2, 2, 2)), _cand(space, (3,) * 6)])
    assert ok.status == "ok" and ok.accuracy == pytest.approx(0.91)
    assert missing.status == "failed"
    assert missing.reason == f"genome 3-3-3-3-3-3 is not in table {path}"


@pytest.mark.parametrize("content, needle", [
    ("arch,acc\n1-1-1-1-1-1,50\n", "has no 'genome' column (columns: arch, acc)"),
    ("genome,acc\n1-1-1-1-1-1,50\n1-1-1-1-1,60\n", "row 3 (genome '1-1-1-1-1'): 5 genes, the "
                                                    "nb201 space has 6"),
    ("genome,acc\n1-1-1-1-1-7,50\n", "row 2 (genome '1-1-1-1-1-7'): gene 5 'edge3<-2' = 7 is "
                                     "out of bounds [0, 4]"),
    ("genome,acc\n1-x-1-1-1-1,50\n", "row 2 (genome '1-x-1-1-1-1'): a genome is dash-separated"),
    ("genome,acc\n1-1-1-1-1-1,fast\n", "column 'acc' is not numeric"),
])
def test_bad_user_tables_name_the_file_row_and_problem(space, tmp_path, content, needle):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(TableError) as e:
        read_user_table(path, space=space)
    assert needle in str(e.value) and str(path) in str(e.value)


def _cfg(tmp_path, *overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="search", overrides=[
            "+space=nb201", "evaluator=table", "progress=false", "budget.evaluations=30",
            "budget.initial=10", "budget.per_iteration=10", "algorithm.generations=5",
            *overrides])


def test_search_on_the_table_writes_the_run(tmp_path):
    out = run_search(_cfg(tmp_path), tmp_path / "run")
    ev = pd.read_csv(tmp_path / "run" / "evaluated.csv")
    assert len(ev) == 30 and ev["arch_id"].is_unique and (ev["status"] == "ok").all()
    assert out["hypervolume"] > 0.8
    assert not (tmp_path / "run" / "baselines.csv").read_text().strip().count("\n")
    from nas.archive import Archive

    with Archive(tmp_path / "run" / "archive.sqlite") as archive:
        fid = archive.records()[0].fidelity
    assert fid == {"table": "analog-nasbench", "metric": "baseline_accuracy",
                   "dataset": "cifar10"}


def test_three_objectives_end_to_end(tmp_path):
    run_search(_cfg(tmp_path, "objectives=[error,macs,params]"), tmp_path / "run")
    pf = pd.read_csv(tmp_path / "run" / "pareto.csv")
    F = pf[["error", "macs", "params"]].to_numpy(float)
    assert len(F) >= 2 and len(pareto.non_dominated(F)) == len(F)  # mutually non-dominated
    ev = pd.read_csv(tmp_path / "run" / "evaluated.csv")
    ok = ev[ev["status"] == "ok"]
    front3 = pareto.non_dominated(ok[["error", "macs", "params"]].to_numpy(float))
    assert len(pf) == len(front3)
    hv = pd.read_csv(tmp_path / "run" / "hypervolume.csv")
    assert hv["objectives"].iloc[0] == "error,macs,params"
    assert (tmp_path / "run" / "pareto.png").stat().st_size > 0


def test_four_objectives_use_nsga3_and_table_metrics(tmp_path):
    run_search(_cfg(tmp_path, "objectives=[error,macs,params,analog_accuracy]",
                    "budget.evaluations=25", "algorithm.enumerate_limit=0"), tmp_path / "run")
    pf = pd.read_csv(tmp_path / "run" / "pareto.csv")
    assert {"analog_accuracy", "analog_accuracy_error"} <= set(pf.columns)
    F = pf[["error", "macs", "params", "analog_accuracy_error"]].to_numpy(float)
    assert len(pareto.non_dominated(F)) == len(F)
    table = load_table("analog-nasbench")
    row = pf.iloc[0]
    assert row["analog_accuracy"] == pytest.approx(
        table.frame.loc[row["genome"], "analog_accuracy"] / 100)


@pytest.mark.parametrize("override, needle", [
    ("objectives=[error,macs,top5]", "metric 'top5' is not a column of table analog-nasbench; "
                                     "available: baseline_accuracy"),
    ("evaluator.metric=top1", "metric 'top1' is not a column"),
    ("evaluator.source=/nonexistent/t.csv", "no such file"),
])
def test_bad_table_configs(tmp_path, override, needle):
    with pytest.raises(SearchError, match=needle):
        run_search(_cfg(tmp_path, override), tmp_path / "run")
    assert not (tmp_path / "run" / "archive.sqlite").exists()


def test_table_of_another_space_is_refused(tmp_path):
    path = _user_table(tmp_path, {"0-1-2": 0.5})
    with pytest.raises(SearchError, match=r"t.csv is keyed by 3-gene genomes, the nb201 space "
                                          r"has 6 genes; use the space the table was made for"):
        run_search(_cfg(tmp_path, f"evaluator.source={path}", "evaluator.metric=acc"),
                   tmp_path / "run")


@pytest.mark.parametrize("algo", ["evolution", "local", "random", "nsga2", "surrogate"])
def test_algorithms_propose_new_canonical_genomes_deterministically(space, algo):
    from nas.algorithms import Context, make_algorithm
    from nas.objectives import Coster

    table = load_table("analog-nasbench")
    coster = Coster(space, ("macs",))

    def run(seed):
        algo_ = make_algorithm({"name": algo}, seed=seed, surrogate={"name": "ridge"})
        X = np.empty((0, 6), np.int64)
        F = np.empty((0, 2))
        seen: set[str] = set()
        for it in range(4):
            ctx = Context(space, coster.cost, lambda g: True, X, F, set(seen), False,
                          coster.info, costs=coster.costs)
            props = algo_.initial(ctx, 10) if it == 0 else algo_.ask(ctx, 5)
            assert len(props) == (10 if it == 0 else 5)
            for g in props:
                assert tuple(space.canonical(g)) == tuple(g)
                assert space.arch_id(g) not in seen
            ids = [space.arch_id(g) for g in props]
            assert len(set(ids)) == len(ids)
            G = np.array(props, dtype=np.int64)
            newF = np.column_stack([1 - table.accuracies(G, "baseline_accuracy"),
                                    [coster.cost(g) for g in props]])
            algo_.tell(ctx, props, newF)
            X, F = np.vstack([X, G]), np.vstack([F, newF])
            seen |= set(ids)
        return X

    assert np.array_equal(run(3), run(3))
