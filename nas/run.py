"""The run folder: its files, its columns, how it is written and read back.

Every command that writes a run folder (``runs/<date>/<time>/``: search, train, baselines,
supernet, tune) writes it through :class:`RunFolder`, and `nas.report`, `nas.export`,
`nas.tune` and the benchmarks read it through this module:

* paths and columns: :data:`CONFIG`, :data:`ARCHIVE`, :data:`STATE`, :data:`STATUS`,
  :data:`LOCK`, :data:`EVALUATED_COLUMNS`;
* writing: :class:`RunFolder` (the resolved config, tables and documents written
  atomically, the status, the saved search state, :class:`RunLock`: one process per run
  folder), built on :func:`atomic_write`, :func:`write_status`, :func:`save_state`;
* reading: :func:`read_status`, :func:`load_state`, :func:`open_resume`, :func:`read_run`
  (a :class:`Run` of tables);
* views: :func:`split_archive` (search rows / baseline rows), :func:`ok_rows`,
  :func:`front_of`, :func:`hypervolume_of`, :func:`hypervolume_curve`.

This module imports neither torch nor Lightning: reading a run is cheap.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from omegaconf import OmegaConf

from nas import pareto, registry
from nas.archive import Archive, final_rows
from nas.objectives import column_label
from nas.objectives import cost_column as objective_column
from nas.safe_load import UnsafeFileError, load_state_bytes

CONFIG = "config.yaml"
ARCHIVE = "archive.sqlite"
STATE = "state.pkl"
STATUS = "status.json"
LOCK = "run.lock"
WEIGHTS = "weights"

#: columns of evaluated.csv and baselines.csv (baselines add ``name`` first)
EVALUATED_COLUMNS = ["id", "arch_id", "space", "genome", "spec", "macs", "params",
                     "activations", "latency_ms", "accuracy", "error", "score", "epochs",
                     "status", "reason", "iteration", "seed", "train_seconds"]
#: cost columns a front can be drawn against -> axis label
COST_LABELS = {"macs": "MACs", "params": "parameters", "activations": "activations",
               "latency_ms": "latency (ms)"}
#: states of status.json
STATES = ("running", "complete", "failed", "interrupted")


class RunFolderError(ValueError):
    """A path that is not a usable nas run folder (missing, corrupt, or in use)."""


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader (or a crash) sees the old or the new file,
    never half of one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def weights_path(run_dir: str | os.PathLike, arch_id: str) -> Path:
    """Where a run keeps the trained state of ``arch_id``: a Lightning checkpoint (weights,
    optimiser, schedule, epoch) in ``weights/``."""
    return Path(run_dir) / WEIGHTS / f"{arch_id.replace(':', '_')}.ckpt"


def write_status(run_dir: Path, state: str, **extra: Any) -> None:
    """``status.json``: ``state`` (one of :data:`STATES`), the time, and ``extra``."""
    if state not in STATES:
        raise ValueError(f"run state {state!r} is not one of {STATES}")
    doc = {"state": state, "updated": time.strftime("%Y-%m-%d %H:%M:%S"), **extra}
    atomic_write(Path(run_dir) / STATUS, json.dumps(doc, indent=1).encode())


def read_status(run_dir: Path) -> dict:
    """``status.json`` as a dict (empty when absent or unreadable)."""
    try:
        doc = json.loads((Path(run_dir) / STATUS).read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def save_state(run_dir: Path, state: dict) -> None:
    atomic_write(Path(run_dir) / STATE, pickle.dumps(state))


def load_state(run_dir: Path) -> dict | None:
    """The saved search state, None when there is none yet; a corrupt file is named with
    the way out. The file is read through :class:`nas.safe_load.StateUnpickler`: only the
    objects a search state holds are recreated, and nothing in the file is run."""
    path = Path(run_dir) / STATE
    if not path.exists():
        return None
    fix = ("delete it to restart the algorithm from the archive's evaluations (nothing "
           "trained is lost), or start a new run")
    try:
        state = load_state_bytes(path.read_bytes(), where=str(path))
    except UnsafeFileError as e:
        raise RunFolderError(f"{e}; {fix}") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError,
            KeyError, ValueError, TypeError) as e:
        raise RunFolderError(
            f"{path} is corrupt ({type(e).__name__}: {str(e) or 'empty file'}); {fix}") from None
    if not isinstance(state, dict) or "algorithm" not in state:
        raise RunFolderError(f"{path} does not hold a search state; delete it to restart the "
                             f"algorithm from the archive's evaluations")
    return state


class RunFolder:
    """A command's run folder, the one writer of its files: the resolved configuration
    (``config.yaml`` and ``VERSION``), tables (CSV) and documents (JSON, text) written
    atomically, ``status.json``, the saved search state and the lock (:class:`RunLock`).
    Nothing is written before a command calls one of these, so a command that checks
    everything first leaves no folder behind when a check fails."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def _write(self, name: str, data: bytes) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.file(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, data)
        return target

    def write_config(self, cfg: Any, *, version: bool = True) -> Path:
        """``config.yaml`` (resolved) and, with ``version``, ``VERSION`` (the package)."""
        path = self._write(CONFIG, OmegaConf.to_yaml(cfg, resolve=True).encode())
        if version:
            self._write("VERSION", f"nas {package_version('nas')}\n".encode())
        return path

    def write_text(self, name: str, text: str) -> Path:
        return self._write(name, text.encode())

    def write_json(self, name: str, doc: Any) -> Path:
        return self._write(name, json.dumps(doc, indent=1).encode())

    def write_csv(self, name: str, df: pd.DataFrame) -> Path:
        return self._write(name, df.to_csv(index=False).encode())

    def status(self, state: str, **extra: Any) -> None:
        """``status.json`` (see :func:`write_status`)."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_status(self.path, state, **extra)

    def read_status(self) -> dict:
        return read_status(self.path)

    def save_state(self, state: dict) -> None:
        save_state(self.path, state)

    def load_state(self) -> dict | None:
        return load_state(self.path)

    def lock(self) -> RunLock:
        """The folder's lock (a context manager): one process works in it at a time."""
        self.path.mkdir(parents=True, exist_ok=True)
        return RunLock(self.path)

    def weights(self, arch_id: str) -> Path:
        return weights_path(self.path, arch_id)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """One process per run folder: ``run.lock`` holds the owner's pid and host.

    A lock whose owner is gone (same host, pid not alive) is stale and taken over; a live
    owner (or one on another host, which cannot be checked) makes :meth:`acquire` raise
    :class:`RunFolderError` naming it."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK
        self.held = False

    def owner(self) -> dict | None:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def _stale(self, doc: dict | None) -> bool:
        if doc is None:
            return True  # unreadable: a writer died between create and write
        return doc.get("host") == socket.gethostname() and not pid_alive(int(doc.get("pid", 0)))

    def acquire(self) -> RunLock:
        me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                         "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode()
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                doc = self.owner()
                if doc is not None and doc.get("pid") == os.getpid() and \
                        doc.get("host") == socket.gethostname():
                    self.held = True  # this process already holds it
                    return self
                if not self._stale(doc):
                    raise RunFolderError(
                        f"{self.path.parent} is in use by process {doc.get('pid')} on "
                        f"{doc.get('host')} since {doc.get('since')}; wait for it to end or "
                        f"stop it (then resume), or choose another hydra.run.dir") from None
                try:
                    self.path.unlink()  # stale: its owner is gone
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "wb") as f:
                f.write(me)
            self.held = True
            return self
        raise RunFolderError(f"cannot lock {self.path.parent}: {self.path} keeps reappearing; "
                             f"is another search starting there?")

    def release(self) -> None:
        if self.held:
            doc = self.owner()
            if doc is not None and doc.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def cleanup_hydra_dir(run_dir: Path) -> None:
    """Remove a run folder that holds only Hydra's bookkeeping (``.hydra/`` and the job's
    log file): a run that failed before writing anything."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    left = {p.name for p in run_dir.iterdir() if p.name != ".hydra" and p.suffix != ".log"}
    if not left:
        shutil.rmtree(run_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Views of the archive's rows
# --------------------------------------------------------------------------------------------


def split_archive(df: pd.DataFrame, metric_names: Sequence[str] = (),
                  columns: Sequence[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(evaluated, baselines)`` of an archive frame (`nas.archive.Archive.to_frame`), with
    the columns of :data:`EVALUATED_COLUMNS`; every table metric ``m`` (an objective looked
    up in a table) adds a ``m`` (accuracy) and a ``m_error`` column, every cost-table
    column in ``columns`` (a device's latency, ...) its own."""
    cols = (EVALUATED_COLUMNS + [c for m in metric_names for c in (m, f"{m}_error")]
            + [c for c in columns if c not in EVALUATED_COLUMNS])
    if df.empty:
        return pd.DataFrame(columns=cols), pd.DataFrame(columns=["name"] + cols)
    df = df.copy()
    extra = df["extra"].map(lambda t: json.loads(t) if isinstance(t, str) else {})
    df["score"] = extra.map(lambda d: d.get("score")).astype(float)
    if metric_names:
        for m in metric_names:
            df[m] = extra.map(lambda d, m=m: d.get(m)).astype(float)
            df[f"{m}_error"] = 1.0 - df[m]
    for c in columns:
        if c not in EVALUATED_COLUMNS:
            df[c] = extra.map(lambda d, c=c: d.get(c)).astype(float)
    for c in cols:
        if c not in df:
            df[c] = np.nan
    is_base = df["space"].astype(str).eq("baseline")
    ev = df[~is_base][cols].reset_index(drop=True)
    bl = df[is_base][cols].reset_index(drop=True)
    bl.insert(0, "name", bl["arch_id"].astype(str).str.removeprefix("baseline:"))
    return ev, bl


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of an evaluated table that succeeded (status ``ok``, a finite error: an
    accuracy's, or a zero-cost score's)."""
    if not len(df):
        return df
    mask = pd.Series(True, index=df.index)
    if "status" in df:
        mask &= df["status"].fillna("ok").astype(str).eq("ok")
    return df[mask & np.isfinite(quality(df))]


def quality(df: pd.DataFrame) -> pd.Series:
    """What a run's rows are ranked by, higher better, in 0..1: the accuracy, or for
    rows scored by a zero-cost proxy (no accuracy) 1 - error, the score's percentile in
    the space. NaN where neither is known."""
    acc = pd.to_numeric(df["accuracy"], errors="coerce") if "accuracy" in df else None
    err = pd.to_numeric(df["error"], errors="coerce") if "error" in df else None
    if acc is None and err is None:
        return pd.Series(np.nan, index=df.index, dtype=float)
    if err is None:
        return acc.astype(float)
    if acc is None:
        return (1.0 - err).astype(float)
    return acc.where(acc.notna(), 1.0 - err).astype(float)


def quality_label(config: Mapping | None) -> str:
    """The axis and column label of :func:`quality` for a run of ``config``: ``accuracy``,
    or ``score (PROXY)`` for a zero-cost run (never an accuracy)."""
    ev = (config or {}).get("evaluator") or {}
    if isinstance(ev, Mapping) and ev.get("backend") == "zero_cost":
        return f"score ({ev.get('proxy', 'z_mean')})"
    return "accuracy"


def cost_column(cost: str, frame: pd.DataFrame | None = None) -> str:
    """``macs`` / ``params`` / ``activations`` / ``latency_ms`` (``latency`` is accepted for
    the last, ``min:COL`` for ``COL``), or a cost-table column (a device's latency) that
    ``frame`` (when given) has."""
    col = objective_column(str(cost))
    known = col in COST_LABELS or (frame is not None and col in frame.columns) or (
        frame is None and col not in EVALUATED_COLUMNS and col.isidentifier())
    if not known:
        extra = ([c for c in frame.columns if c not in EVALUATED_COLUMNS]
                 if frame is not None else [])
        raise ValueError(f"cost must be one of {sorted(COST_LABELS) + extra} (or 'latency'), "
                         f"got {cost!r}")
    return col


def cost_label(col: str) -> str:
    """The axis label of a cost column (``MACs``, ``raspi4 latency (ms)``)."""
    return COST_LABELS.get(col) or column_label(col)


def front_of(df: pd.DataFrame, cost: str = "macs") -> pd.DataFrame:
    """Non-dominated ok rows of an evaluated table on (error, cost), sorted by cost."""
    col = cost_column(cost)
    ok = ok_rows(df)
    if len(ok) and col in ok:
        ok = ok[np.isfinite(pd.to_numeric(ok[col], errors="coerce"))]
    if not len(ok) or col not in ok:
        return ok.iloc[:0].copy()
    F = np.column_stack([1.0 - quality(ok).to_numpy(float), ok[col].to_numpy(float)])
    front = ok.iloc[pareto.non_dominated(F)].copy()
    front["source"] = "search"
    front["name"] = front["arch_id"].astype(str)
    front["rank"] = 0
    return front.sort_values(col)


def _as_list(x) -> list:
    return [x] if isinstance(x, (str, int, float)) else list(x)


def hypervolume_of(df: pd.DataFrame, cost_col, cost_ref, error_cols=("error",)) -> float:
    """Hypervolume of the ok rows of ``df`` on (error columns..., cost / cost_ref ...),
    reference point 1 in every objective. ``cost_col`` and ``cost_ref`` are one column and
    its reference or lists of them."""
    cols, refs = _as_list(cost_col), [float(r) for r in _as_list(cost_ref)]
    ok = df[(df["status"] == "ok") & df["error"].notna()]
    if ok.empty:
        return 0.0
    F = np.column_stack([ok[c].to_numpy(float) for c in error_cols]
                        + [ok[c].to_numpy(float) / r for c, r in zip(cols, refs)])
    return pareto.hypervolume(F, np.ones(F.shape[1]))


def hypervolume_curve(df: pd.DataFrame, cost_col, cost_ref) -> np.ndarray:
    """Hypervolume after each evaluation, in archive order (for benchmarks)."""
    df = df.sort_values("id")
    return np.array([hypervolume_of(df.iloc[: i + 1], cost_col, cost_ref)
                     for i in range(len(df))])


# --------------------------------------------------------------------------------------------
# Reading a run back
# --------------------------------------------------------------------------------------------


@dataclass
class Run:
    """The tables of one run folder (``None`` where an optional file is absent)."""

    path: Path
    evaluated: pd.DataFrame
    pareto: pd.DataFrame
    hypervolume: pd.DataFrame | None = None
    baselines: pd.DataFrame | None = None
    config: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Short label: the last two path parts (Hydra's ``<date>/<time>``)."""
        parts = self.path.resolve().parts
        return "/".join(parts[-2:]) if len(parts) >= 2 else str(self.path)

    @property
    def ok(self) -> pd.DataFrame:
        """Evaluated rows with status ``ok`` and a finite accuracy (or zero-cost score)."""
        return ok_rows(self.evaluated)

    @property
    def quality_label(self) -> str:
        """``accuracy``, or ``score (PROXY)`` for a zero-cost run (see :func:`quality`)."""
        return quality_label(self.config)

    @property
    def space(self) -> str | None:
        """The search space's registry name (``mobile``), from the rows or the config."""
        if "space" in self.evaluated and len(self.evaluated):
            names = self.evaluated["space"].dropna().astype(str)
            if len(names):
                return str(names.iloc[0])
        sp = self.config.get("space")
        if isinstance(sp, dict):
            if sp.get("name"):
                return str(sp["name"])
            cls = registry.space_class_of(str(sp.get("_target_", "")))
            if cls is not None:
                return cls.name
            return str(sp.get("_target_", "")).rsplit(".", 1)[-1] or None
        return str(sp) if sp else None


def _read_csv(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise RunFolderError(f"{path} is not a readable CSV ({str(e).splitlines()[0]}); "
                             f"re-run `python -m nas.search resume={path.parent}` to rewrite "
                             f"it from the archive") from None


def read_archive(path: Path) -> pd.DataFrame:
    """The archive's rows as a frame; a corrupt file is named with the way out."""
    try:
        archive = Archive(path)
    except ValueError as e:
        raise RunFolderError(
            f"{path} is corrupt ({str(e).split('(', 1)[-1].split(')')[0]}); the run's "
            f"evaluations cannot be read back: restore it from a backup, or start a new run "
            f"(the CSVs beside it hold the rows written so far)") from None
    try:
        return archive.to_frame()
    finally:
        archive.close()


def read_config(run_dir: Path) -> dict:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        return {}
    try:
        with path.open() as f:
            cfg = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise RunFolderError(f"{path} is not valid YAML ({str(e).splitlines()[0]})") from None
    return cfg if isinstance(cfg, dict) else {}


def read_run(path: str | Path) -> Run:
    """Read a run folder; raises :class:`RunFolderError` when it is not one.

    The archive is the record: when ``archive.sqlite`` exists it must be readable (a corrupt
    one is an error, not silently replaced by the CSVs); ``evaluated.csv`` alone (a folder
    copied without its archive) is accepted."""
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir} is not a nas run folder: no such directory; pass the "
                             f"folder printed at the end of `python -m nas.search`")
    archive = run_dir / ARCHIVE
    evaluated = _read_csv(run_dir / "evaluated.csv")
    baselines = _read_csv(run_dir / "baselines.csv")
    if archive.is_file():
        from_archive = split_archive(final_rows(read_archive(archive)))
        if evaluated is None:
            evaluated = from_archive[0]
        if baselines is None:
            baselines = from_archive[1]
    if evaluated is None:
        raise RunFolderError(f"{run_dir} is not a nas run folder: no evaluated.csv/"
                             f"{ARCHIVE}; pass the folder printed at the end of "
                             f"`python -m nas.search`")
    missing = [c for c in ("spec", "macs", "accuracy") if c not in evaluated.columns]
    if missing and len(evaluated):
        raise RunFolderError(f"{run_dir / 'evaluated.csv'} lacks column(s) {missing}; it was "
                             f"not written by nas.search")
    for col in ("macs", "params", "activations", "latency_ms", "accuracy", "error", "score"):
        if col in evaluated:
            evaluated[col] = pd.to_numeric(evaluated[col], errors="coerce")
    if "latency_ms" not in evaluated:
        evaluated["latency_ms"] = np.nan
    if "arch_id" not in evaluated and "id" in evaluated:
        evaluated["arch_id"] = evaluated["id"].astype(str)
    pareto_df = _read_csv(run_dir / "pareto.csv")
    if pareto_df is None:
        pareto_df = front_of(evaluated)
    return Run(path=run_dir, evaluated=evaluated, pareto=pareto_df,
               hypervolume=_read_csv(run_dir / "hypervolume.csv"),
               baselines=baselines, config=read_config(run_dir),
               status=read_status(run_dir))


def open_resume(path: str | os.PathLike) -> tuple[Path, Any]:
    """``(run_dir, saved config)`` of a run folder to resume; :class:`RunFolderError` when
    the folder is not one."""
    run_dir = Path(path).expanduser()
    if not run_dir.is_dir():
        raise RunFolderError(f"resume={path}: no such folder; pass a run folder printed by "
                             f"`python -m nas.search` (runs/<date>/<time>)")
    missing = [n for n in (CONFIG, ARCHIVE) if not (run_dir / n).exists()]
    if missing:
        raise RunFolderError(f"resume={path} is not a nas run folder (missing "
                             f"{', '.join(missing)}); pass a folder under runs/ that a search "
                             f"wrote")
    try:
        cfg = OmegaConf.load(run_dir / CONFIG)
    except Exception as e:  # noqa: BLE001 - any parse error of the saved config
        raise RunFolderError(f"{run_dir / CONFIG} cannot be read ({str(e).splitlines()[0]}); "
                             f"it is the run's saved configuration: restore it") from None
    read_archive(run_dir / ARCHIVE)  # a corrupt archive is named before anything runs
    return run_dir, cfg


__all__ = ["ARCHIVE", "CONFIG", "COST_LABELS", "EVALUATED_COLUMNS", "LOCK", "STATE", "STATES",
           "STATUS", "WEIGHTS", "Run", "RunFolder", "RunFolderError", "RunLock", "atomic_write",
           "cleanup_hydra_dir", "cost_column", "cost_label", "front_of", "hypervolume_curve",
           "hypervolume_of", "load_state", "ok_rows", "open_resume", "pid_alive", "quality",
           "quality_label", "read_archive", "read_config", "read_run", "read_status",
           "save_state", "split_archive", "weights_path", "write_status"]
