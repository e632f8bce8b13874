"""nas.latency: the lookup table sums its entries, persists, is reused; the CLI runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas import latency as L
from nas.commands.latency import main as latency_main
from nas.spec import ArchSpec

#: quick protocol: the tests check bookkeeping, not speed
FAST = L.Protocol(warmup=1, repeats=3, min_repeat_ms=0.2, cold_bytes=64 << 10, max_copies=3)

SPEC = ArchSpec.from_string("3x16x16 cba_c8_s2 ir_c16_e3*3 ir_c24_k5_s2_se0.25 head_c10")


def _table(path: Path, **kw) -> L.LatencyTable:
    return L.LatencyTable(path, device="cpu", batch=1, threads=1, protocol=FAST, **kw)


def test_prediction_is_the_sum_of_stored_entries_minus_overhead(tmp_path: Path):
    table = _table(tmp_path / "t.json")
    pred = table.predict(SPEC)
    keys = table.layer_keys(SPEC)
    assert len(keys) == len(SPEC.layers)
    stored = json.loads((tmp_path / "t.json").read_text())["entries"]
    assert all(k in stored for k in keys)
    over = table.overhead_ms()
    want = sum(stored[k]["ms"] for k in keys) - (len(keys) - 1) * over
    assert pred == pytest.approx(want, rel=1e-12)
    assert pred > 0 and L.latency_ms(SPEC, table=table) == pred
    # keys carry token, input shape, batch, device and threads
    assert keys[1] == "ir_c16_e3|8x8x8|b1|cpu|t1"


def test_table_persists_and_is_reused(tmp_path: Path):
    table = _table(tmp_path / "t.json")
    first = table.predict(SPEC)
    # the 2nd and 3rd ir_c16_e3 (same input shape) share one entry; +1: the overhead
    assert table.measurements == len(set(table.layer_keys(SPEC))) + 1 == len(SPEC.layers)
    n = table.measurements
    assert table.predict(SPEC) == first and table.measurements == n  # nothing new measured
    again = _table(tmp_path / "t.json")  # a fresh process reading the same file
    assert again.predict(SPEC) == first and again.measurements == 0
    # another batch size is another key: measured anew, stored in the same file
    b2 = L.LatencyTable(tmp_path / "t.json", device="cpu", batch=2, threads=1, protocol=FAST)
    b2.predict(SPEC)
    assert b2.measurements == table.measurements
    assert len(_table(tmp_path / "t.json")) == 2 * len(set(table.layer_keys(SPEC)))


def test_measure_model_and_shared_layers(tmp_path: Path):
    table = _table(tmp_path / "t.json")
    ms = table.measure_model(SPEC)
    assert ms > 0 and table.measurements == 1
    other = ArchSpec.from_string("3x16x16 cba_c8_s2 ir_c16_e3 head_c10")
    table.predict(SPEC)
    n = table.measurements
    table.predict(other)  # stem and first block are known; only the head is new
    assert table.measurements == n + 1


def test_threads_are_restored(tmp_path: Path):
    import torch

    before = torch.get_num_threads()
    L.LatencyTable(tmp_path / "t.json", threads=1, protocol=FAST).predict(SPEC)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("kw, message", [({"batch": 0}, "batch must be a positive integer"),
                                         ({"threads": -1}, "threads must be a positive"),
                                         ({"device": "tpu"}, "device must be 'cpu' or")])
def test_bad_arguments(tmp_path: Path, kw: dict, message: str):
    with pytest.raises(ValueError, match=message):
        L.LatencyTable(tmp_path / "t.json", **kw)


def test_corrupt_table_names_the_fix(tmp_path: Path):
    (tmp_path / "t.json").write_text("{not json")
    with pytest.raises(ValueError, match="delete it to start a fresh table"):
        _table(tmp_path / "t.json")


def test_device_key_and_default_path(monkeypatch, tmp_path: Path):
    key = L.device_key("cpu", 3)
    assert key.startswith("cpu-") and key.endswith("-t3") and " " not in key
    monkeypatch.setenv("NAS_LATENCY_DIR", str(tmp_path))
    assert L.default_table_path("cpu", 3) == tmp_path / f"{key}.json"


def test_cli_two_samples_of_the_mobile_space(tmp_path: Path, capsys):
    table = tmp_path / "lat" / "cpu.json"
    args = ["mobile", "--samples", "2", "--threads", "1", "--table", str(table), "--rounds", "2",
            "--warmup", "1", "--repeats", "3", "--min-repeat-ms", "0.2", "--cold-mib", "0.1"]
    assert latency_main(args) == 0
    out = capsys.readouterr().out
    assert "median absolute percentage error" in out and out.count("predicted") == 2
    rows = (tmp_path / "lat" / "cpu-mobile-b1.csv").read_text().splitlines()
    assert rows[0].startswith("name,spec,macs,layers,predicted_ms,measured_ms,ape_percent")
    assert len(rows) == 3
    assert len(json.loads(table.read_text())["entries"]) > 2


def test_cli_baseline_and_errors(tmp_path: Path, capsys):
    args = ["lenet5", "--threads", "1", "--table", str(tmp_path / "t.json"), "--warmup", "1",
            "--repeats", "3", "--min-repeat-ms", "0.2", "--clock", "thread"]
    assert latency_main(args) == 0
    assert "lenet5" in capsys.readouterr().out
    assert latency_main(["no_such_thing", "--table", str(tmp_path / "t.json")]) == 2
    assert "neither a search space nor a baseline" in capsys.readouterr().err
    assert latency_main(["lenet5", "--batch", "0", "--table", str(tmp_path / "t.json")]) == 2


def test_time_call_rotates_copies():
    calls: list[int] = []
    fns = [lambda x, i=i: calls.append(i) for i in range(3)]
    ms = L.time_call(fns, None, protocol=L.Protocol(warmup=0, repeats=2, min_repeat_ms=0.0))
    assert ms >= 0 and set(calls) == {0, 1, 2}
    assert calls[:6] == [0, 1, 2, 0, 1, 2]  # round-robin, one call per step


def test_thread_clock_needs_one_cpu_thread(tmp_path: Path):
    with pytest.raises(ValueError, match="threads=1"):
        L.LatencyTable(tmp_path / "t.json", threads=2, protocol=L.Protocol(clock="thread"))
    with pytest.raises(ValueError, match="clock must be"):
        L.Protocol(clock="tsc")


def test_fill_interleaves_rounds_and_stores_medians(tmp_path: Path):
    table = _table(tmp_path / "t.json")
    other = ArchSpec.from_string("3x16x16 cba_c8_s2 ir_c16_e3 head_c10")
    measured = table.fill([SPEC, other], rounds=2)
    keys = set(table.layer_keys(SPEC)) | set(table.layer_keys(other))
    assert len(measured) == 2 and all(m > 0 for m in measured)
    assert table.measurements == 2 * (len(keys) + 2) + 1  # + the empty-module overhead
    n = table.measurements
    table.predict(SPEC), table.predict(other)
    assert table.measurements == n  # everything is in the table now
    with pytest.raises(ValueError, match="rounds must be a positive integer"):
        table.fill([SPEC], rounds=0)
