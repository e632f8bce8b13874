"""Searching with zero-cost proxies (``evaluator=zero_cost``): the archive and CSVs keep the
proxy's value as ``score`` (never as an accuracy), the search minimises its percentile in
the space, the summary and the report say what scored the networks, a proxy that is NaN or
infinite fails its candidate with the reason, and bad options are refused before any file
is written."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from nas import zero_cost as Z
from nas.commands.search import run_search
from nas.config import CONF_DIR
from nas.report import write_report
from nas.run import read_run
from nas.search import SearchError

ROOT = Path(__file__).resolve().parents[1]

# A small but real search: untrained nb201 networks at 16 px on synthetic images, every
# candidate and baseline scored by the proxy on a real batch.
SMALL = [
    "+space=nb201", "space.channels=[8]", "space.cells=1", "space.resolution=16",
    "data=synthetic", "data.n_train=128", "data.n_test=32", "data.size=16",
    "evaluator=zero_cost", "evaluator.reference=12", "budget.evaluations=10",
    "budget.initial=6", "budget.per_iteration=2", "baselines.names=[lenet5]",
    "progress=false",
]


def cfg_of(*extra: str):
    overrides = [o for o in SMALL if o.split("=")[0] not in {e.split("=")[0] for e in extra}]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="search", overrides=overrides + list(extra))


@pytest.fixture(scope="module")
def synflow_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("zc")
    out = run_search(cfg_of("evaluator.proxy=synflow"), run_dir)
    return run_dir, out


def test_scores_are_kept_as_score_not_accuracy(synflow_run):
    run_dir, out = synflow_run
    ev = pd.read_csv(run_dir / "evaluated.csv")
    assert len(ev) == 10 and (ev["status"] == "ok").all()
    assert ev["accuracy"].isna().all()  # a proxy's value is never an accuracy
    assert np.isfinite(ev["score"]).all() and (ev["score"] > 0).all()  # synflow > 0
    # the search minimises 1 - percentile: exactly the proxy's order, in (0, 1)
    order = ev.sort_values("score")
    assert order["error"].is_monotonic_decreasing
    assert ((ev["error"] > 0) & (ev["error"] < 1)).all()
    bl = pd.read_csv(run_dir / "baselines.csv")  # baselines scored like the candidates
    assert bl["accuracy"].isna().all() and np.isfinite(bl["score"]).all()
    pf = pd.read_csv(run_dir / "pareto.csv")
    assert "score" in pf.columns and pf["accuracy"].isna().all() and len(pf) >= 1
    with sqlite3.connect(run_dir / "archive.sqlite") as con:
        fid = {json.loads(f)["proxy"] for (f,) in con.execute("SELECT fidelity FROM records")}
    assert fid == {"synflow"}  # the proxy's name in every row's fidelity
    assert out["accuracy"] == 0.0 and 0.0 < out["quality"] <= 1.0


def test_the_summary_and_the_report_say_score_not_accuracy(synflow_run, tmp_path, capsys):
    run_dir, _ = synflow_run
    run = read_run(run_dir)
    assert run.quality_label == "score (synflow)"
    page = write_report([run], tmp_path / "report").read_text()
    assert "score (synflow)" in page and "accuracy (%)" not in page
    assert "best score (synflow)" in page
    html = (run_dir / "pareto.html").read_text()
    assert "score (synflow): percentile in the space (%)" in html
    assert "validation accuracy" not in html


def test_same_seed_same_scores(synflow_run, tmp_path):
    run_dir, _ = synflow_run
    run_search(cfg_of("evaluator.proxy=synflow"), tmp_path / "again")
    a = pd.read_csv(run_dir / "evaluated.csv")[["arch_id", "score", "error"]]
    b = pd.read_csv(tmp_path / "again" / "evaluated.csv")[["arch_id", "score", "error"]]
    pd.testing.assert_frame_equal(a, b)


def test_a_non_finite_proxy_fails_its_candidate_with_the_reason(tmp_path, monkeypatch):
    real = Z._codes_and_jacobian
    calls = {"n": 0}

    def sometimes_nan(net, inputs, names):
        calls["n"] += 1
        out = real(net, inputs, names)
        # the reference sample (12 networks) is scored first: then every third is NaN
        if calls["n"] > 12 and calls["n"] % 3 == 0:
            out["naswot"] = float("nan")
        return out

    monkeypatch.setattr(Z, "_codes_and_jacobian", sometimes_nan)
    run_search(cfg_of("evaluator.proxy=naswot"), tmp_path / "run")
    ev = pd.read_csv(tmp_path / "run" / "evaluated.csv")
    failed = ev[ev["status"] == "failed"]
    assert len(ev) == 10 and 1 <= len(failed) < 10  # the search went on
    assert failed["reason"].str.contains("proxy naswot is nan").all()
    assert failed["score"].isna().all() and failed["error"].isna().all()


def test_pytorch_init_scores_other_weights_and_is_recorded(tmp_path):
    runs = {}
    for init in ("kaiming", "pytorch"):
        run_search(cfg_of("evaluator.proxy=grasp", f"evaluator.init={init}",
                          "budget.evaluations=4", "budget.initial=4"), tmp_path / init)
        with sqlite3.connect(tmp_path / init / "archive.sqlite") as con:
            fid = dict(con.execute("SELECT arch_id, fidelity FROM records").fetchall())
        ev = pd.read_csv(tmp_path / init / "evaluated.csv")
        runs[init] = {a: (s, json.loads(fid[a])) for a, s in zip(ev["arch_id"], ev["score"])}
    assert runs["kaiming"].keys() == runs["pytorch"].keys()  # the same networks, other scores
    assert all(runs["kaiming"][a][0] != runs["pytorch"][a][0] for a in runs["kaiming"])
    assert all(f.get("init") == "pytorch" for _, f in runs["pytorch"].values())
    assert all("init" not in f for _, f in runs["kaiming"].values())  # archives as before


def test_combination_scores_every_proxy_and_keeps_them(tmp_path):
    run_search(cfg_of("evaluator.proxy=z_mean", "evaluator.combine=[synflow,macs]",
                      "budget.evaluations=6", "budget.initial=6"), tmp_path / "run")
    with sqlite3.connect(tmp_path / "run" / "archive.sqlite") as con:
        extras = [json.loads(e) for (e,) in con.execute("SELECT extra FROM records")]
    assert all(set(e["proxies"]) == {"synflow", "macs"} for e in extras)
    ev = pd.read_csv(tmp_path / "run" / "evaluated.csv")
    # the combination's value is 1 - the error the search minimises
    np.testing.assert_allclose(ev["score"], 1.0 - ev["error"], rtol=1e-9)


@pytest.mark.parametrize(("override", "needle"), [
    ("evaluator.proxy=synflw", "unknown zero-cost proxy 'synflw' (did you mean synflow?)"),
    ("evaluator.combine=[synflow,jaccov]", "unknown zero-cost proxy 'jaccov'"),
    ("evaluator.combine=[synflow]", "evaluator.combine=['synflow'] goes with a combination"),
    ("evaluator.reference=1", "evaluator.reference=1 is invalid"),
    ("evaluator.init=pytroch", "unknown initialisation 'pytroch' (did you mean pytorch?); "
                               "known: kaiming, pytorch (evaluator.init=NAME)"),
    ("fidelity=sha", "evaluator=zero_cost trains none; drop fidelity=sha"),
])
def test_bad_zero_cost_options_are_refused_before_any_file(tmp_path, override, needle):
    extra = [override] if override != "evaluator.combine=[synflow]" else [
        "evaluator.proxy=synflow", override]
    with pytest.raises(SearchError) as e:
        run_search(cfg_of(*extra), tmp_path / "run")
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "run" / "archive.sqlite").exists()


def test_command_line_prints_score_column(tmp_path):
    p = subprocess.run([sys.executable, "-m", "nas.search", *SMALL, "evaluator.proxy=macs",
                        "budget.evaluations=6", "budget.initial=6", "progress=true",
                        f"hydra.run.dir={tmp_path / 'r'}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    table = p.stdout.split("hypervolume")[0]
    assert "score (macs)" in table and "accuracy" not in table
    # the estimate is timed on the reference sample and printed before the first candidate
    assert "s/network over the reference sample of 12" in p.stderr


# --------------------------------------------------------------------------------------------
# Proxies as surrogate features (surrogate.features)
# --------------------------------------------------------------------------------------------

FEATURES = [
    "+space=nb201", "space.channels=[8]", "space.cells=1", "space.resolution=16",
    "data=synthetic", "data.n_train=128", "data.n_test=32", "data.size=16", "train=fast",
    "train.batch_size=64", "evaluator=local", "budget.evaluations=8", "budget.initial=6",
    "budget.per_iteration=2", "baselines.names=[]", "progress=false",
    "algorithm.enumerate_limit=0", "algorithm.generations=3", "algorithm.pop_size=12",
    "surrogate=gbt", "surrogate.features=[synflow,naswot]",
]


def test_surrogate_features_are_computed_once_per_network_and_shared(tmp_path):
    cache = tmp_path / "proxies.sqlite"
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="search",
                      overrides=FEATURES + [f"surrogate.proxy_cache={cache}"])
    run_search(cfg, tmp_path / "a")
    first = json.loads((tmp_path / "a" / "status.json").read_text())
    # the surrogate ranked its training networks and an NSGA-II population on them
    assert first["proxy_networks"] > 8 and first["proxy_seconds"] > 0
    with sqlite3.connect(cache) as con:
        rows = con.execute("SELECT arch_id, proxy, value FROM proxies").fetchall()
    assert {p for _, p, _ in rows} == {"synflow", "naswot"}
    assert len({a for a, _, _ in rows}) == first["proxy_networks"]
    evaluated = set(pd.read_csv(tmp_path / "a" / "evaluated.csv")["arch_id"])
    assert evaluated <= {a for a, _, _ in rows}
    run_search(cfg, tmp_path / "b")  # the same search again: every proxy read back
    second = json.loads((tmp_path / "b" / "status.json").read_text())
    assert second["proxy_networks"] == 0
    a = pd.read_csv(tmp_path / "a" / "evaluated.csv")[["arch_id", "accuracy"]]
    b = pd.read_csv(tmp_path / "b" / "evaluated.csv")[["arch_id", "accuracy"]]
    pd.testing.assert_frame_equal(a, b)
    # another search seed shares the cache: the proxies are seeded by surrogate.proxy_seed
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        other = compose(config_name="search", overrides=FEATURES + [
            f"surrogate.proxy_cache={cache}", "seed=1"])
    run_search(other, tmp_path / "c")
    with sqlite3.connect(cache) as con:
        assert con.execute("SELECT COUNT(DISTINCT setting) FROM proxies").fetchone()[0] == 1
        n = con.execute("SELECT COUNT(DISTINCT arch_id) FROM proxies").fetchone()[0]
    third = json.loads((tmp_path / "c" / "status.json").read_text())
    assert n == first["proxy_networks"] + third["proxy_networks"]


def test_proxy_features_are_appended_to_the_surrogate_inputs():
    from nas.algorithms import surrogate_inputs
    from nas.registry import SPACES

    space = SPACES.build("nb201", num_classes=10, in_channels=3)
    G = space.sample(5, np.random.default_rng(0))
    base = surrogate_inputs(space, G, "genes+costs")
    cols = np.arange(10, dtype=float).reshape(5, 2)
    X = surrogate_inputs(space, G, "genes+costs", proxies=lambda g: cols[:len(g)])
    assert X.shape == (5, base.shape[1] + 2)
    np.testing.assert_array_equal(X[:, :base.shape[1]], base)
    np.testing.assert_array_equal(X[:, base.shape[1]:], cols)


@pytest.mark.parametrize(("overrides", "needle"), [
    (["surrogate.features=[synflw]"], "unknown zero-cost proxy 'synflw' (did you mean "
                                      "synflow?)"),
    (["surrogate.features=[z_mean]"], "unknown zero-cost proxy 'z_mean'"),
    (["evaluator=table", "data=digits"], "data=digits has 1 channel(s) and the nb201 space's "
                                         "networks take 3; pass the data they were made for"),
])
def test_bad_surrogate_features_are_refused_before_any_file(tmp_path, overrides, needle):
    keys = {o.split("=")[0] for o in overrides}
    base = [o for o in FEATURES if o.split("=")[0] not in keys
            and not (o.startswith(("data.", "space.")) and "evaluator=table" in overrides)]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="search", overrides=base + overrides)
    with pytest.raises(SearchError) as e:
        run_search(cfg, tmp_path / "run")
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "run" / "archive.sqlite").exists()
