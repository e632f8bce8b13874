"""Grading a run by the table that covers its space (``python -m nas.report RUN --grade``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from nas.commands.report import main as report_main
from nas.commands.search import run_search
from nas.config import CONF_DIR
from nas.grade import grade, true_front
from nas.registry import SPACES
from nas.run import read_run
from nas.table import load_table

# untrained nb201 networks (one 8-channel cell per stage, 16 px) scored by synflow on
# synthetic images: the grade must read the table by genome, whatever scored the rows
SMALL = [
    "+space=nb201", "space.channels=[8]", "space.cells=1", "space.resolution=16",
    "data=synthetic", "data.n_train=128", "data.n_test=32", "data.size=16",
    "evaluator=zero_cost", "evaluator.proxy=synflow", "evaluator.reference=12",
    "budget.evaluations=10", "budget.initial=6", "budget.per_iteration=2",
    "baselines.names=[lenet5]", "progress=false",
]


@pytest.fixture(scope="module")
def table():
    return load_table("analog-nasbench")


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("graded")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="search", overrides=SMALL)
    run_search(cfg, run_dir)
    return run_dir


def test_true_front_is_the_published_one(table):
    # RESULTS section 6: over the 4,930 distinct networks, 16 points, 86.55-94.07%,
    # 7.78M-153.27M MACs
    space = SPACES.build("nb201", num_classes=10, in_channels=3)
    tf = true_front(space, table, "baseline_accuracy")
    assert tf.n == 4930 and len(tf.F) == 16
    assert 100 * (1 - tf.F[:, 0].max()) == pytest.approx(86.55, abs=0.005)
    assert 100 * tf.best_accuracy == pytest.approx(94.07, abs=0.005)
    assert tf.F[:, 1].min() == pytest.approx(7.78e6, rel=1e-3)
    assert tf.F[:, 1].max() == pytest.approx(153.27e6, rel=1e-3)
    assert tf.hv_ratio(tf.F) == pytest.approx(1.0)
    assert tf.found(tf.F).all()
    part = tf.F[::2]  # half the front: less hypervolume, the other half not found
    assert tf.hv_ratio(part) < 1.0
    found = tf.found(part)  # its own points; others only within 0.2 points at no more MACs
    assert found[::2].all() and not found.all()
    assert tf.found(tf.F + [0.0021, 0.0]).sum() == 0  # 0.21 points worse finds none


def test_grade_puts_the_tables_accuracy_beside_the_right_rows(scored_run, table, capsys):
    assert report_main([str(scored_run), "--grade", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "graded by analog-nasbench" in printed
    assert "true hypervolume ratio of the reported front" in printed
    for name in ("evaluated.csv", "pareto.csv"):
        df = pd.read_csv(scored_run / name)
        search = df[df.get("source", pd.Series("search", index=df.index)) != "baseline"]
        expected = [table.accuracy([int(x) for x in g.split("-")], "baseline_accuracy")
                    for g in search["genome"]]
        np.testing.assert_allclose(search["true_accuracy"], expected)
        assert df["score"].notna().all()  # the measured score is kept beside it
    pf = pd.read_csv(scored_run / "pareto.csv")
    assert pf.loc[pf["source"] == "baseline", "true_accuracy"].isna().all()
    html = (scored_run / "pareto.html").read_text()
    assert "true accuracy" in html
    assert (scored_run / "graded.png").stat().st_size > 10_000  # the graded plot
    # the best pick is the front's highest score; its true accuracy is printed
    g = grade(read_run(scored_run))
    search = pf[pf["source"] == "search"]
    best = search.loc[search["score"].idxmax()]
    assert g.best_pick["name"] == best["arch_id"]
    assert g.best_pick["true_accuracy"] == pytest.approx(best["true_accuracy"])
    assert f"{100 * best['true_accuracy']:.2f}%" in printed
    assert 0.0 < g.hv_ratio < 1.0 and 0 <= g.found <= g.true_front_points == 16


def test_no_table_for_the_space_is_one_line(tmp_path, capsys):
    run_dir = tmp_path / "mobile_run"
    run_dir.mkdir()
    pd.DataFrame({"id": [0], "arch_id": ["m-1"], "space": ["mobile"], "genome": ["0-1-2"],
                  "spec": ["3x32x32 conv_c8 head_c10"], "macs": [1e6], "accuracy": [0.5],
                  "error": [0.5], "status": ["ok"]}).to_csv(run_dir / "evaluated.csv",
                                                          index=False)
    assert report_main([str(run_dir), "--grade", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: --grade: no table covers the mobile space; pass --table PATH (a "
                   "CSV/Parquet of known accuracies with a 'genome' column of mobile genomes)")
    assert report_main([str(run_dir), "--table", "x.csv"]) == 2
    assert "add --grade" in capsys.readouterr().err
