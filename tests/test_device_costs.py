"""Device costs from a table (``costs.table``): ``min:COL`` objectives, ``max:COL`` accuracy
columns, ``constraints.max.COL`` limits, with the table evaluator or beside any other; the
errors name the column or genome and what exists. Device data: HW-NAS-Bench's columns in
``../shared/data/nb201_devices.csv`` (see its README) where present, else a table written
here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from nas.commands.search import run_search
from nas.config import CONF_DIR
from nas.objectives import check_objectives, column_label
from nas.registry import SPACES
from nas.search import SearchError
from nas.table import load_table

DEVICES = Path(__file__).resolve().parents[2] / "shared" / "data" / "nb201_devices.csv"


@pytest.fixture(scope="module")
def devices(tmp_path_factory) -> Path:
    """Every nb201 genome with two device columns: the shared HW-NAS-Bench file, or a
    synthetic one (latency grows with the convolutions, energy with the 3x3 ones)."""
    if DEVICES.is_file():
        return DEVICES
    G = np.array(np.meshgrid(*[range(5)] * 6, indexing="ij")).reshape(6, -1).T
    path = tmp_path_factory.mktemp("dev") / "devices.csv"
    pd.DataFrame({"genome": ["-".join(map(str, g)) for g in G],
                  "raspi4_latency_ms": [10 + 4 * np.isin(g, (2, 3)).sum() for g in G],
                  "edgegpu_energy_mj": [0.5 + (g == 3).sum() for g in G]}).to_csv(path)
    return path


def cfg_of(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="search", overrides=[
            "+space=nb201", "evaluator=table", "budget.evaluations=20", "budget.initial=10",
            "budget.per_iteration=5", "progress=false", *overrides])


def test_a_device_column_is_an_objective_kept_in_every_csv(tmp_path, devices):
    out = run_search(cfg_of(f"costs.table={devices}",
                            "objectives=[error,min:raspi4_latency_ms]"), tmp_path / "run")
    ev = pd.read_csv(tmp_path / "run" / "evaluated.csv")
    table = load_table(str(devices), key="costs.table")
    space = SPACES.build("nb201", num_classes=10, in_channels=3)
    for _, r in ev.iterrows():  # each row carries its genome's device latency
        g = tuple(int(x) for x in r["genome"].split("-"))
        assert r["raspi4_latency_ms"] == pytest.approx(table.lookup(g)["raspi4_latency_ms"])
        assert space.arch_id(g) == r["arch_id"]
    pf = pd.read_csv(tmp_path / "run" / "pareto.csv")
    F = pf[["error", "raspi4_latency_ms"]].to_numpy(float)
    for i in range(len(F)):  # the front is non-dominated in (error, device latency)
        assert not (np.all(F <= F[i], axis=1) & np.any(F < F[i], axis=1)).any()
    assert 0.0 < out["hypervolume"] <= 1.0
    html = (tmp_path / "run" / "pareto.html").read_text()
    assert "raspi4 latency (ms)" in html


def test_a_constraint_on_a_device_column_holds_for_every_candidate(tmp_path, devices):
    run_search(cfg_of(f"costs.table={devices}", "+constraints.max.raspi4_latency_ms=16",
                      "algorithm=random"), tmp_path / "run")
    ev = pd.read_csv(tmp_path / "run" / "evaluated.csv")
    assert len(ev) == 20 and (ev["raspi4_latency_ms"] <= 16).all()


def test_direction_prefixes():
    check_objectives(["error", "min:raspi4_latency_ms"], cost_table=True)
    check_objectives(["error", "macs", "max:analog_accuracy"], table=True)
    check_objectives(["error", "macs", "analog_accuracy"], table=True)  # bare: maximised
    with pytest.raises(ValueError, match=r"'min:raspi4_latency_ms' reads a column of a "
                                         r"table: pass costs.table=PATH"):
        check_objectives(["error", "min:raspi4_latency_ms"])
    with pytest.raises(ValueError, match=r"objective 'max:x' is an accuracy column"):
        check_objectives(["error", "macs", "max:x"])
    with pytest.raises(ValueError, match="has no cost"):
        check_objectives(["error", "max:x"], table=True)
    assert column_label("raspi4_latency_ms") == "raspi4 latency (ms)"
    assert column_label("edgegpu_energy_mj") == "edgegpu energy (mJ)"


def test_max_prefix_is_the_bare_accuracy_column(tmp_path):
    a = run_search(cfg_of("objectives=[error,macs,max:analog_accuracy]", "seed=3"),
                   tmp_path / "a")
    b = run_search(cfg_of("objectives=[error,macs,analog_accuracy]", "seed=3"), tmp_path / "b")
    assert a["hypervolume"] == pytest.approx(b["hypervolume"])
    ea = pd.read_csv(tmp_path / "a" / "evaluated.csv")
    assert "analog_accuracy" in ea and (ea["analog_accuracy"] <= 1).all()


def test_an_unknown_column_names_those_that_exist(tmp_path, devices):
    with pytest.raises(SearchError) as e:
        run_search(cfg_of(f"costs.table={devices}", "objectives=[error,min:raspi_latency]"),
                   tmp_path / "run")
    assert "objective min:raspi_latency: no column 'raspi_latency' in the cost table" in \
        str(e.value) and "raspi4_latency_ms" in str(e.value)
    with pytest.raises(SearchError) as e:
        run_search(cfg_of(f"costs.table={devices}", "+constraints.max.energy=2"),
                   tmp_path / "run2")
    assert "constraints.max.energy: no column 'energy'" in str(e.value)
    assert "edgegpu_energy_mj" in str(e.value)
    assert not (tmp_path / "run" / "archive.sqlite").exists()


def test_a_genome_missing_from_the_cost_table_is_named(tmp_path):
    path = tmp_path / "few.csv"
    pd.DataFrame({"genome": ["2-2-2-2-2-2", "0-0-0-0-0-0"],
                  "pi_latency_ms": [5.0, 1.0]}).to_csv(path, index=False)
    with pytest.raises(SearchError, match=r"genome \d-\d-\d-\d-\d-\d is not in the cost table "
                                          r".*few.csv \(2 genomes\); every network the nb201 "
                                          r"space may propose needs a row"):
        run_search(cfg_of(f"costs.table={path}", "objectives=[error,min:pi_latency_ms]"),
                   tmp_path / "run")


def test_device_costs_beside_a_training_evaluator(tmp_path, devices):
    from tests.test_search import TINY

    over = [o for o in TINY if not o.startswith(("+space", "space.", "algorithm."))]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="search", overrides=[
            "+space=nb201", "space.channels=[4]", "space.cells=1", "space.resolution=8",
            *[o for o in over if not o.startswith(("data.size", "budget."))],
            "data.size=8", "budget.evaluations=4", "budget.initial=4",
            f"costs.table={devices}", "objectives=[error,min:raspi4_latency_ms]"])
    run_search(cfg, tmp_path / "run")
    ev = pd.read_csv(tmp_path / "run" / "evaluated.csv")
    assert len(ev) == 4 and ev["accuracy"].notna().all()  # trained here, cost from the table
    assert ev["raspi4_latency_ms"].notna().all()
    bl = pd.read_csv(tmp_path / "run" / "baselines.csv")
    assert bl.empty  # a zoo network has no row in a device table of the space


def _carried_table(path: Path, space, *, drop: str | None = None) -> dict:
    """A latency table as `python -m nas.latency` writes it on a device (batch 1, one
    thread), every layer of every network of ``space`` at 0.001 ms per thousand MACs plus
    0.05 ms, the harness overhead 0.01 ms; no entry for layers whose token holds ``drop``."""
    import json

    from nas.cost import cost
    from nas.latency import LatencyTable

    keys = LatencyTable(path.with_suffix(".unused.json"), batch=1, threads=1)
    entries = {"__empty_module__|b1|cpu|t1": {"ms": 0.01}}
    for g in space.all_canonical(limit=10**6):
        spec = space.decode(g)
        shapes = [spec.input] + spec.shapes()
        for layer, row, shape in zip(spec.layers, cost(spec).layers, shapes):
            if drop is None or drop not in layer.token():
                entries[keys.key(layer, shape)] = {"ms": 0.05 + row.macs * 1e-6}
    path.write_text(json.dumps({"device_key": "phone-t1", "entries": entries}))
    return {k: v["ms"] for k, v in entries.items()}


SMALL_NB201 = ["space.channels=[8]", "space.cells=1", "space.resolution=16"]


def test_a_latency_table_carried_from_a_device_predicts_and_measures_nothing(tmp_path):
    from nas.cost import cost

    space = SPACES.build("nb201", num_classes=10, in_channels=3, channels=[8], cells=1,
                         resolution=16)
    entries = _carried_table(tmp_path / "phone.json", space)
    run_search(cfg_of(*SMALL_NB201, f"latency.table={tmp_path / 'phone.json'}",
                      "objectives=[error,latency]"), tmp_path / "run")
    ev = pd.read_csv(tmp_path / "run" / "evaluated.csv")
    assert len(ev) == 20
    for _, r in ev.iterrows():  # sum of the device's entries less the overhead between them
        spec = space.decode(tuple(int(x) for x in r["genome"].split("-")))
        layers = cost(spec).layers
        want = sum(0.05 + row.macs * 1e-6 for row in layers) - 0.01 * (len(layers) - 1)
        assert r["latency_ms"] == pytest.approx(want)
    assert not (Path("runs") / "latency" / "phone-t1.json").exists()
    assert len(entries) > 100


def test_a_carried_latency_table_missing_a_layer_is_named_before_any_file(tmp_path):
    space = SPACES.build("nb201", num_classes=10, in_channels=3, channels=[8], cells=1,
                         resolution=16)
    _carried_table(tmp_path / "phone.json", space, drop="nor_conv_3x3")
    with pytest.raises(SearchError, match=r"has no entry for layer .*nor_conv_3x3.* on input "
                                          r"8x16x16; measure the space on the device: "
                                          r"python -m nas.latency SPACE"):
        run_search(cfg_of(*SMALL_NB201, f"latency.table={tmp_path / 'phone.json'}",
                          "objectives=[error,latency]"), tmp_path / "run")
    assert not [p.name for p in (tmp_path / "run").glob("*") if not p.name.startswith(".")]
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SearchError, match="is not a latency table"):
        run_search(cfg_of(f"latency.table={tmp_path / 'bad.json'}",
                          "objectives=[error,latency]"), tmp_path / "run2")
    with pytest.raises(SearchError, match="no such file"):
        run_search(cfg_of(f"latency.table={tmp_path / 'none.json'}",
                          "objectives=[error,latency]"), tmp_path / "run3")
