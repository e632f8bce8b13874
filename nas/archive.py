"""SQLite archive of every evaluated architecture in a run folder.

The archive is the source of truth for resume and for every CSV. It uses the standard
library's ``sqlite3`` in WAL mode, and every write is one ``BEGIN IMMEDIATE ... COMMIT``
transaction, so a process killed at any moment (even by SIGKILL) leaves a consistent file:
each record is either fully there or absent (https://www.sqlite.org/atomiccommit.html).

Schema (version 1): ``records`` (one row per evaluation, unique on arch_id + fidelity + seed),
``meta`` (JSON-valued key/value state for resume) and ``schema_version`` (marks the file as a
nas archive).
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["SCHEMA_VERSION", "STATUSES", "Archive", "Record", "final_rows"]

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed")
_APP = "nas-archive"

_SCHEMA = f"""
CREATE TABLE schema_version (
    app TEXT NOT NULL,
    version INTEGER NOT NULL
);
CREATE TABLE records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    arch_id TEXT NOT NULL,
    space TEXT NOT NULL,
    genome TEXT,                 -- JSON list of ints, NULL for hand-written baselines
    spec TEXT NOT NULL,
    macs INTEGER NOT NULL,
    params INTEGER NOT NULL,
    activations INTEGER NOT NULL,
    latency_ms REAL,
    accuracy REAL,
    error REAL,
    status TEXT NOT NULL CHECK (status IN {STATUSES!r}),
    reason TEXT,
    fidelity TEXT NOT NULL,      -- canonical JSON (sorted keys): part of the unique key
    seed INTEGER NOT NULL,
    iteration INTEGER NOT NULL,
    train_seconds REAL,
    created REAL NOT NULL,
    extra TEXT NOT NULL,         -- JSON object
    UNIQUE (arch_id, fidelity, seed)
);
CREATE INDEX records_arch_id ON records (arch_id);
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL          -- JSON
);
"""


@dataclass(frozen=True)
class Record:
    """One evaluated architecture. ``id`` is assigned by the archive (None before ``add``).

    ``status`` is ``"ok"`` or ``"failed"``; a failed record needs a ``reason`` and usually
    has ``accuracy``/``error`` None. ``fidelity`` (e.g. ``{"epochs": 5}``) and ``extra`` must
    be JSON-serialisable. NaN floats are stored as NULL and read back as None.
    """

    id: int | None
    arch_id: str
    space: str
    genome: tuple[int, ...] | None
    spec: str
    macs: int
    params: int
    activations: int
    latency_ms: float | None
    accuracy: float | None
    error: float | None
    status: str
    reason: str | None
    fidelity: dict = field(default_factory=dict)
    seed: int = 0
    iteration: int = 0
    train_seconds: float | None = None
    created: float = field(default_factory=time.time)
    extra: dict = field(default_factory=dict)


_COLUMNS = tuple(f.name for f in fields(Record))
_DATA_COLUMNS = _COLUMNS[1:]  # everything but id
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM records"
# Fixed dtypes so that an empty archive and a full one give the same CSV columns.
_FRAME_DTYPES = {
    **dict.fromkeys(("id", "macs", "params", "activations", "seed", "iteration"), "int64"),
    **dict.fromkeys(("latency_ms", "accuracy", "error", "train_seconds", "created"), "float64"),
}


def _json(value: Any, *, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{what} must be JSON-serialisable (dict/list/str/int/float/bool/None): {exc}"
        ) from exc


def _opt_float(value: Any, *, what: str) -> float | None:
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be a number or None, got {value!r}.") from exc
    return None if math.isnan(value) else value


def _int(value: Any, *, what: str) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ValueError(f"{what} must be an int, got {value!r}.")
    return int(value.__index__())  # accepts numpy integers, which sqlite3 cannot bind


def _row_from_record(record: Record) -> tuple:
    """Validate a record and convert it to the ``_DATA_COLUMNS`` row stored in SQLite."""
    if not isinstance(record, Record):
        raise TypeError(f"expected a Record, got {type(record).__name__}.")
    for name in ("arch_id", "space", "spec"):
        value = getattr(record, name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"Record.{name} must be a non-empty str, got {value!r}.")
    if record.status not in STATUSES:
        raise ValueError(f"Record.status must be one of {STATUSES}, got {record.status!r}.")
    if record.status == "failed" and not record.reason:
        raise ValueError(
            f"failed record {record.arch_id!r} needs a reason (e.g. 'out of memory', "
            "'nan loss', 'timeout')."
        )
    if not isinstance(record.fidelity, dict) or not isinstance(record.extra, dict):
        raise ValueError("Record.fidelity and Record.extra must be dicts.")
    genome = None
    if record.genome is not None:
        genome = _json([_int(g, what="each genome entry") for g in record.genome], what="genome")
    return (
        record.arch_id,
        record.space,
        genome,
        record.spec,
        _int(record.macs, what="Record.macs"),
        _int(record.params, what="Record.params"),
        _int(record.activations, what="Record.activations"),
        _opt_float(record.latency_ms, what="Record.latency_ms"),
        _opt_float(record.accuracy, what="Record.accuracy"),
        _opt_float(record.error, what="Record.error"),
        record.status,
        record.reason,
        _json(record.fidelity, what="Record.fidelity"),
        _int(record.seed, what="Record.seed"),
        _int(record.iteration, what="Record.iteration"),
        _opt_float(record.train_seconds, what="Record.train_seconds"),
        float(record.created),
        _json(record.extra, what="Record.extra"),
    )


def _record_from_row(row: tuple) -> Record:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["genome"] = None if values["genome"] is None else tuple(json.loads(values["genome"]))
    values["fidelity"] = json.loads(values["fidelity"])
    values["extra"] = json.loads(values["extra"])
    return Record(**values)


class Archive:
    """Every evaluated architecture of a run, stored in one SQLite file.

    Use as a context manager or call ``close()``. One object per process and thread (the
    sqlite3 connection is not shared across threads); several processes may open the same
    file at once, SQLite serialises their writes.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise ValueError(
                f"archive path {str(self.path)!r} is a directory; "
                "pass a file path such as run_dir / 'archive.sqlite'."
            )
        try:
            # isolation_level=None: no implicit transactions; _transaction() opens them.
            self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        except sqlite3.Error as exc:
            raise ValueError(
                f"cannot open archive {str(self.path)!r}: {exc} (does its folder exist?)"
            ) from exc
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk when add() returns, so power loss cannot undo it;
            # the cost (one fsync) is nothing next to training a network.
            self._conn.execute("PRAGMA synchronous=FULL")
            self._init_schema()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise ValueError(
                f"{str(self.path)!r} is not a nas archive (not a readable SQLite database: "
                f"{exc}); pass a new file name or an archive.sqlite from a run folder."
            ) from exc
        except ValueError:
            self._conn.close()
            raise

    # ---------------------------------------------------------------- internals

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so two writers never deadlock halfway.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _init_schema(self) -> None:
        with self._transaction() as conn:
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            tables.discard("sqlite_sequence")
            if not tables:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO schema_version VALUES (?, ?)", (_APP, SCHEMA_VERSION))
                return
            rows = (
                conn.execute("SELECT app, version FROM schema_version").fetchall()
                if "schema_version" in tables
                else []
            )
        if len(rows) != 1 or rows[0][0] != _APP:
            raise ValueError(
                f"{str(self.path)!r} is an SQLite database but not a nas archive (tables: "
                f"{sorted(tables)}); pass a new file name or an archive.sqlite from a run folder."
            )
        if rows[0][1] != SCHEMA_VERSION:
            raise ValueError(
                f"{str(self.path)!r} has archive schema version {rows[0][1]}, this nas reads "
                f"version {SCHEMA_VERSION}; open it with the nas version that wrote it."
            )

    # ---------------------------------------------------------------- records

    def add(self, record: Record, *, replace: bool = False) -> int:
        """Store ``record`` (its ``id`` is ignored) and return the new row id.

        A record with the same (arch_id, fidelity, seed) raises ValueError unless
        ``replace=True``, which overwrites it in place and keeps its id.
        """
        row = _row_from_record(record)
        columns = ", ".join(_DATA_COLUMNS)
        marks = ", ".join("?" * len(_DATA_COLUMNS))
        sql = f"INSERT INTO records ({columns}) VALUES ({marks})"
        if replace:
            updates = ", ".join(f"{c}=excluded.{c}" for c in _DATA_COLUMNS)
            sql += f" ON CONFLICT (arch_id, fidelity, seed) DO UPDATE SET {updates}"
        sql += " RETURNING id"
        try:
            with self._transaction() as conn:
                # fetchall: the statement must finish before COMMIT.
                [(row_id,)] = conn.execute(sql, row).fetchall()
        except sqlite3.IntegrityError as exc:
            stored = dict(zip(_DATA_COLUMNS, row, strict=True))
            raise ValueError(
                f"the archive already has arch_id={record.arch_id!r} at fidelity "
                f"{stored['fidelity']} with seed {stored['seed']}; pass replace=True to "
                "overwrite it."
            ) from exc
        return int(row_id)

    def remove(self, record_id: int) -> None:
        """Delete the record with row id ``record_id`` (a failure superseded by a retry);
        KeyError when there is none."""
        with self._transaction() as conn:
            cur = conn.execute("DELETE FROM records WHERE id = ?", (_int(record_id,
                                                                          what="record id"),))
        if cur.rowcount != 1:
            raise KeyError(f"the archive has no record with id {record_id}")

    def get(self, arch_id: str, *, fidelity: dict | None = None) -> Record | None:
        """Latest record of ``arch_id`` (at ``fidelity`` if given; any seed), or None."""
        sql, args = _SELECT + " WHERE arch_id = ?", [arch_id]
        if fidelity is not None:
            sql += " AND fidelity = ?"
            args.append(_json(fidelity, what="fidelity"))
        row = self._conn.execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()
        return None if row is None else _record_from_row(row)

    def records(self, *, status: str | None = None, iteration: int | None = None) -> list[Record]:
        """All records, ordered by id, optionally filtered by status and iteration."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES} or None, got {status!r}.")
        sql, clauses, args = _SELECT, [], []
        if status is not None:
            clauses.append("status = ?")
            args.append(status)
        if iteration is not None:
            clauses.append("iteration = ?")
            args.append(_int(iteration, what="iteration"))
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return [_record_from_row(r) for r in self._conn.execute(sql + " ORDER BY id", args)]

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def __contains__(self, arch_id: object) -> bool:
        if not isinstance(arch_id, str):
            return False
        query = "SELECT 1 FROM records WHERE arch_id = ? LIMIT 1"
        return self._conn.execute(query, (arch_id,)).fetchone() is not None

    def to_frame(self) -> pd.DataFrame:
        """One row per record (by id); genome as ``"3-0-2"`` (missing for baselines),
        fidelity and extra as JSON text, missing floats as NaN."""
        rows = []
        for row in self._conn.execute(_SELECT + " ORDER BY id"):
            values = dict(zip(_COLUMNS, row, strict=True))
            if values["genome"] is not None:
                values["genome"] = "-".join(str(g) for g in json.loads(values["genome"]))
            rows.append(values)
        return pd.DataFrame(rows, columns=list(_COLUMNS)).astype(_FRAME_DTYPES)

    # ---------------------------------------------------------------- meta

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable ``value`` under ``key`` (overwrites)."""
        if not isinstance(key, str) or not key:
            raise ValueError(f"meta key must be a non-empty str, got {key!r}.")
        text = _json(value, what=f"meta value for {key!r}")
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, text),
            )

    def get_meta(self, key: str, default: Any = None) -> Any:
        """Value stored under ``key``, or ``default``."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    # ---------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._conn.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Archive({str(self.path)!r})"


def final_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture of an archive frame (:meth:`Archive.to_frame`): the one at
    its highest fidelity (``epochs`` in the fidelity; successive halving archives a row per
    rung), the latest such row on ties, with an ``epochs`` column (None when the fidelity
    names none). Rows keep the order of each architecture's first evaluation."""
    if frame.empty:
        return frame.assign(epochs=pd.Series(dtype="float64"))

    def epochs(text: str) -> float:
        v = json.loads(text).get("epochs") if isinstance(text, str) else None
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan

    df = frame.assign(epochs=frame["fidelity"].map(epochs))
    first = df.groupby("arch_id", sort=False)["id"].transform("min")
    order = df.assign(_first=first, _e=df["epochs"].fillna(-1.0))
    best = order.sort_values(["_e", "id"]).groupby("arch_id", sort=False).tail(1)
    return best.sort_values("_first").drop(columns=["_first", "_e"]).reset_index(drop=True)

