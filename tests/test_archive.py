"""Tests for nas.archive: round trips, persistence, duplicates, meta, crash safety."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nas.archive import Archive, Record

REPO = Path(__file__).resolve().parents[1]


def make_record(i: int = 0, **changes) -> Record:
    record = Record(
        id=None,
        arch_id=f"mobile-{i:04d}",
        space="mobile",
        genome=(i % 3, 1, 0, 2),
        spec=f"ir_k3_e6_c{16 + i}_s2",
        macs=1_000_000 + i,
        params=50_000 + i,
        activations=20_000 + i,
        latency_ms=1.25,
        accuracy=0.9,
        error=0.1,
        status="ok",
        reason=None,
        fidelity={"epochs": 5, "subset": 0.5},
        seed=0,
        iteration=1,
        train_seconds=12.5,
        created=1_700_000_000.0 + i,
        extra={"val_loss": 0.31, "tags": ["initial"]},
    )
    return dataclasses.replace(record, **changes)


@pytest.fixture
def archive(tmp_path):
    with Archive(tmp_path / "archive.sqlite") as arch:
        yield arch


# ----------------------------------------------------------------------------- records


def test_round_trip_of_every_field(archive):
    record = make_record(7)
    row_id = archive.add(record)
    assert archive.get(record.arch_id) == dataclasses.replace(record, id=row_id)


def test_round_trip_of_a_failed_record(archive):
    failed = make_record(
        1,
        accuracy=None,
        error=None,
        latency_ms=None,
        train_seconds=None,
        genome=None,
        status="failed",
        reason="out of memory",
        extra={},
    )
    row_id = archive.add(failed)
    assert archive.get(failed.arch_id) == dataclasses.replace(failed, id=row_id)
    assert [r.arch_id for r in archive.records(status="failed")] == [failed.arch_id]
    assert archive.records(status="ok") == []


def test_numpy_values_and_nan_are_stored(archive):
    record = make_record(
        2,
        genome=tuple(np.array([1, 2, 3])),
        macs=np.int64(5),
        accuracy=np.float32(0.5),
        error=float("nan"),
    )
    archive.add(record)
    stored = archive.get(record.arch_id)
    assert stored.genome == (1, 2, 3) and stored.macs == 5 and stored.accuracy == 0.5
    assert stored.error is None  # NaN is stored as NULL


def test_persistence_across_reopen(tmp_path):
    path = tmp_path / "archive.sqlite"
    with Archive(path) as arch:
        ids = [arch.add(make_record(i)) for i in range(3)]
        arch.set_meta("iteration", 4)
    with Archive(path) as arch:
        assert len(arch) == 3
        assert [r.id for r in arch.records()] == ids
        assert arch.get_meta("iteration") == 4
        assert "mobile-0001" in arch and "mobile-9999" not in arch and 3 not in arch


def test_duplicates_are_rejected_unless_replaced(archive):
    first = archive.add(make_record(0))
    with pytest.raises(ValueError, match=r"already has arch_id='mobile-0000'.*replace=True"):
        archive.add(make_record(0, accuracy=0.5))
    # Same architecture at another fidelity or seed is a new record.
    archive.add(make_record(0, seed=1))
    archive.add(make_record(0, fidelity={"subset": 0.5, "epochs": 50}))
    assert len(archive) == 3
    # Key order in the fidelity dict does not matter.
    replaced = archive.add(
        make_record(0, accuracy=0.5, fidelity={"subset": 0.5, "epochs": 5}), replace=True
    )
    assert replaced == first and len(archive) == 3
    assert {r.id: r.accuracy for r in archive.records()}[first] == 0.5


def test_get_returns_the_latest_and_filters_by_fidelity(archive):
    archive.add(make_record(0, fidelity={"epochs": 5}))
    latest = archive.add(make_record(0, fidelity={"epochs": 50}, accuracy=0.95))
    assert archive.get("mobile-0000").id == latest
    assert archive.get("mobile-0000", fidelity={"epochs": 5}).accuracy == 0.9
    assert archive.get("mobile-0000", fidelity={"epochs": 1}) is None
    assert archive.get("missing") is None


def test_records_filters_and_order(archive):
    for i in range(6):
        archive.add(make_record(i, iteration=i % 2))
    assert [r.arch_id for r in archive.records(iteration=1)] == [
        "mobile-0001",
        "mobile-0003",
        "mobile-0005",
    ]
    ids = [r.id for r in archive.records()]
    assert ids == sorted(ids) and len(ids) == 6
    with pytest.raises(ValueError, match="status must be one of"):
        archive.records(status="done")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"status": "done"}, "status must be one of"),
        ({"status": "failed", "reason": None}, "needs a reason"),
        ({"arch_id": ""}, "arch_id must be a non-empty str"),
        ({"macs": 1.5}, "macs must be an int"),
        ({"extra": {"x": object()}}, "extra must be JSON-serialisable"),
    ],
)
def test_invalid_records_are_rejected(archive, changes, match):
    with pytest.raises(ValueError, match=match):
        archive.add(make_record(0, **changes))
    assert len(archive) == 0


def test_to_frame_columns(archive):
    assert list(archive.to_frame().columns) == [f.name for f in dataclasses.fields(Record)]
    archive.add(make_record(4))
    archive.add(make_record(5, genome=None, status="failed", reason="nan loss", accuracy=None))
    df = archive.to_frame()
    assert list(df.columns) == [f.name for f in dataclasses.fields(Record)]
    assert df.loc[0, "genome"] == "1-1-0-2" and pd.isna(df.loc[1, "genome"])
    assert json.loads(df.loc[0, "fidelity"]) == {"epochs": 5, "subset": 0.5}
    assert json.loads(df.loc[0, "extra"])["tags"] == ["initial"]
    assert df["status"].tolist() == ["ok", "failed"]
    assert df["macs"].dtype == np.int64 and df["accuracy"].dtype == np.float64
    assert np.isnan(df.loc[1, "accuracy"])


# ----------------------------------------------------------------------------- meta


def test_meta_round_trip(archive):
    state = np.random.default_rng(3).bit_generator.state
    archive.set_meta("rng_state", state)
    archive.set_meta("iteration", 2)
    archive.set_meta("iteration", 3)
    archive.set_meta("config_hash", "ab12")
    assert archive.get_meta("rng_state") == state
    assert archive.get_meta("iteration") == 3
    assert archive.get_meta("config_hash") == "ab12"
    assert archive.get_meta("missing", default=[]) == []
    with pytest.raises(ValueError, match="meta value for 'bad' must be JSON-serialisable"):
        archive.set_meta("bad", {1, 2})


# ----------------------------------------------------------------------------- files


def test_random_file_is_not_an_archive(tmp_path):
    path = tmp_path / "noise.bin"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match=r"noise\.bin.*is not a nas archive"):
        Archive(path)


def test_other_sqlite_database_is_not_an_archive(tmp_path):
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(ValueError, match=r"other\.sqlite.*not a nas archive.*users"):
        Archive(path)


def test_missing_folder_is_reported(tmp_path):
    with pytest.raises(ValueError, match="cannot open archive"):
        Archive(tmp_path / "no" / "such" / "archive.sqlite")


_WRITER = """
import dataclasses, sys
sys.path.insert(0, {repo!r})
from nas.archive import Archive
sys.path.insert(0, {tests!r})
from test_archive import make_record
arch = Archive({path!r})
i = 0
while True:
    # A large extra payload makes each transaction take long enough to be killed inside it.
    arch.add(make_record(i, extra={{"i": i, "payload": "x" * 50_000}}))
    arch.set_meta("written", i)
    i += 1
"""


def test_sigkill_mid_write_leaves_complete_records(tmp_path):
    path = tmp_path / "archive.sqlite"
    code = _WRITER.format(repo=str(REPO), tests=str(REPO / "tests"), path=str(path))
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if path.exists():
                with Archive(path) as arch:  # a reader alongside the writer (WAL)
                    if len(arch) >= 20:
                        break
        assert proc.poll() is None, "writer exited early"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    with Archive(path) as arch:
        records = arch.records()
        assert len(records) >= 20
        assert [r.id for r in records] == list(range(1, len(records) + 1))
        for i, record in enumerate(records):
            expected = make_record(i, extra={"i": i, "payload": "x" * 50_000})
            assert record == dataclasses.replace(expected, id=i + 1)
        assert arch.get_meta("written") in (len(records) - 1, len(records) - 2)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
