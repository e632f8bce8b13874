"""Tables of known results: every architecture of a finite space with its measured metrics.

A table maps a genome (the dash-separated key of a search space, e.g. ``2-2-0-2-2-2`` for
NAS-Bench-201) to one or more metric columns. The tabular evaluator
(``evaluator=table``, :class:`nas.evaluate.TableEvaluator`) looks candidates up here instead
of training them, so a search can be run thousands of times and measured against the true
Pareto front.

Sources:

* ``analog-nasbench``: the package of that name (``pip install -e ".[bench]"``) ships all
  15,625 NAS-Bench-201 architectures trained on CIFAR-10 (``baseline_accuracy``,
  ``ptq_accuracy``, ``qat_accuracy``, ``noisy_accuracy``, ``analog_accuracy`` in percent,
  and drift figures), keyed by NASLib's op indices, which is the ``nb201`` space's genome.
  Its data file is a pickle of the package's own classes; it is read with a restricted
  unpickler that builds plain records and refuses anything else, without importing the
  package (whose ``__init__`` needs ``pkg_resources``, gone from current setuptools).
* a CSV or Parquet file with a ``genome`` column (dash-separated integers) and metric
  columns; an optional ``train_seconds`` column is reported as each lookup's simulated
  training time.

Accuracy columns may be percentages or fractions: a column whose values all lie in [0, 1]
is read as fractions, one in [0, 100] as percentages (:meth:`Table.scale` says which, and
refuses values outside both and columns that mix them).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

ANALOG_NASBENCH = "analog-nasbench"
SOURCES = (ANALOG_NASBENCH,)
INSTALL_HINT = 'pip install -e ".[bench]"  (or: pip install analog-nasbench)'


class TableError(ValueError):
    """A table that cannot be read or used, with the file and the fix."""


@dataclass(frozen=True)
class Table:
    """Metrics by genome key.

    Attributes:
        source: ``analog-nasbench`` or the file's path.
        frame: one row per genome, indexed by the dash-separated genome, metric columns only.
        n_genes: genome length.
        dataset: what the networks were trained on (``cifar10`` for analog-nasbench; the
            file's name for a user table).
        num_classes, in_channels: the networks' classifier outputs and input channels.
        seconds: name of the simulated training-time column, if any.
    """

    source: str
    frame: pd.DataFrame
    n_genes: int
    dataset: str
    num_classes: int = 10
    in_channels: int = 3
    seconds: str | None = None
    _scales: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def metrics(self) -> list[str]:
        return [c for c in self.frame.columns if c != self.seconds]

    def check_metric(self, metric: str) -> str:
        if metric not in self.metrics:
            raise TableError(f"metric {metric!r} is not a column of table {self.source}; "
                             f"available: {', '.join(self.metrics)} (set evaluator.metric=)")
        return metric

    def check_space(self, space: Any) -> None:
        """Every genome of the table must be one of ``space``'s: its length and each gene
        within bounds; the error names the table, the row and the gene."""
        if self.n_genes != space.n_var:
            raise TableError(f"table {self.source} is keyed by {self.n_genes}-gene genomes, "
                             f"the {space.name} space has {space.n_var} genes; use the space "
                             f"the table was made for (analog-nasbench: +space=nb201)")
        G = np.array([k.split("-") for k in self.frame.index], dtype=np.int64)
        hi = np.array([g.hi for g in space.genes], dtype=np.int64)
        bad = np.argwhere(G > hi)
        if len(bad):
            row, col = (int(x) for x in bad[0])
            g = space.genes[col]
            raise TableError(f"table {self.source}, row {row + 2} (genome "
                             f"{self.frame.index[row]!r}): gene {g.position} {g.name!r} = "
                             f"{G[row, col]} is out of bounds [0, {g.hi}]")

    def _where(self, i: int) -> str:
        row = f"row {i + 2} " if self.source != ANALOG_NASBENCH else ""  # row 1: the header
        return f"table {self.source}, {row}(genome {self.frame.index[i]})"

    def scale(self, metric: str) -> float:
        """100.0 when the accuracy column ``metric`` is in percent, 1.0 when in fractions.

        Detected once per column: fractions when every value lies in [0, 1], percent when
        they lie in [0, 100] and some exceeds 1. Refused, naming the row and the value: a
        value below 0 or above 100, and a column that mixes the two (a percent column with
        values in (0, 1] below half of chance, 50 / num_classes percent: such a value is a
        fraction written among percents, not an accuracy)."""
        self.check_metric(metric)
        if metric in self._scales:
            return self._scales[metric]
        col = self.frame[metric].to_numpy(float)
        finite = np.isfinite(col)
        bad = np.flatnonzero(finite & ((col < 0) | (col > 100)))
        if len(bad):
            i = int(bad[0])
            raise TableError(f"{self._where(i)}: {metric}={col[i]:g} is not an accuracy; "
                             f"accuracy columns hold fractions in [0, 1] or percentages in "
                             f"[0, 100]")
        vals = col[finite]
        scale = 1.0 if not len(vals) or vals.max() <= 1 else 100.0
        if scale == 100.0:
            small = np.flatnonzero(finite & (col > 0) & (col <= 1)
                                   & (col < 50.0 / max(self.num_classes, 1)))
            if len(small):
                i, j = int(small[0]), int(np.flatnonzero(finite & (col > 1))[0])
                raise TableError(
                    f"{self._where(i)}: {metric}={col[i]:g} looks like a fraction while "
                    f"{self._where(j).split(', ', 1)[1]} holds {col[j]:g} (percent); write "
                    f"the whole column in one scale, fractions in [0, 1] or percentages")
        if len(vals):
            log.info("table %s: %s read as %s (%g to %g)", self.source, metric,
                     "fractions" if scale == 1.0 else "percent", vals.min(), vals.max())
        self._scales[metric] = scale
        return scale

    def key(self, genome) -> str:
        return "-".join(str(int(v)) for v in genome)

    def lookup(self, genome) -> dict[str, float] | None:
        """The row of ``genome`` as {column: value}, or None when the table lacks it."""
        k = self.key(genome)
        try:
            row = self.frame.loc[k]
        except KeyError:
            return None
        return {c: float(v) for c, v in row.items()}

    def accuracy(self, genome, metric: str) -> float | None:
        """``metric`` of ``genome`` as a fraction in [0, 1]; None when missing."""
        row = self.lookup(genome)
        if row is None or not math.isfinite(row[metric]):
            return None
        return row[metric] / self.scale(metric)

    def accuracies(self, genomes: np.ndarray, metric: str) -> np.ndarray:
        """Vectorised :meth:`accuracy` (NaN where missing)."""
        keys = ["-".join(map(str, g)) for g in np.asarray(genomes, dtype=np.int64)]
        col = self.frame[metric].reindex(keys).to_numpy(float)
        return col / self.scale(metric)


# --------------------------------------------------------------------------------------------
# analog-nasbench
# --------------------------------------------------------------------------------------------


class _Record:
    """Stand-in for the package's pickled record classes: attributes only."""


class _RecordUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "analognasbench.data" and name in ("Architecture", "DriftMeasurement"):
            return _Record
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the table")


def analog_nasbench_file() -> Path:
    """Path of the installed package's data file; TableError with the install command."""
    spec = importlib.util.find_spec("analognasbench")
    if spec is None or not spec.submodule_search_locations:
        raise TableError(f"evaluator.source={ANALOG_NASBENCH} needs the analog-nasbench "
                         f"package: {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "data.anb"
        if path.is_file():
            return path
    raise TableError(f"the analog-nasbench package has no data.anb file; reinstall it: "
                     f"{INSTALL_HINT}")


def _drift_value(v: Any) -> float:
    if isinstance(v, _Record):
        return float(getattr(v, "value", math.nan))
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):  # "value ± uncertainty"
        try:
            return float(v.split("±")[0])
        except ValueError:
            return math.nan
    return math.nan


def read_analog_nasbench(path: str | os.PathLike | None = None) -> Table:
    """The analog-nasbench table (all 15,625 NAS-Bench-201 cells, CIFAR-10)."""
    path = Path(path) if path is not None else analog_nasbench_file()
    try:
        with open(path, "rb") as f:
            data = _RecordUnpickler(f).load()
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError) as e:
        raise TableError(f"cannot read the analog-nasbench table {path}: {e}; reinstall the "
                         f"package: {INSTALL_HINT}") from None
    if not isinstance(data, dict) or not data:
        raise TableError(f"{path}: expected a mapping of architectures, got "
                         f"{type(data).__name__}; reinstall the package: {INSTALL_HINT}")
    rows = {}
    for key, rec in data.items():
        attrs = vars(rec) if isinstance(rec, _Record) else {}
        row = {}
        for name, v in attrs.items():
            if name == "architecture":
                continue
            row[name] = float(v) if isinstance(v, (int, float)) else _drift_value(v)
        rows["-".join(str(int(x)) for x in key)] = row
    frame = pd.DataFrame.from_dict(rows, orient="index").sort_index()
    frame.index.name = "genome"
    return Table(source=ANALOG_NASBENCH, frame=frame, n_genes=6, dataset="cifar10",
                 num_classes=10, in_channels=3)


# --------------------------------------------------------------------------------------------
# User tables
# --------------------------------------------------------------------------------------------


def read_user_table(path: str | os.PathLike, *, space: Any = None, num_classes: int = 10,
                    in_channels: int = 3, key: str = "evaluator.source") -> Table:
    """A CSV/Parquet table keyed by a ``genome`` column; every genome is checked against
    ``space`` (length and gene bounds) and errors name the file, the row and the problem
    (``key``: the config key that named the file)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise TableError(f"{key}={path}: no such file; pass "
                         f"{ANALOG_NASBENCH + ' or ' if key == 'evaluator.source' else ''}a "
                         f"CSV/Parquet file with a 'genome' column")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(p)
        else:
            df = pd.read_csv(p, dtype={"genome": str})
    except Exception as e:  # noqa: BLE001 - any parser error is reported with the file
        raise TableError(f"cannot read table {p}: {type(e).__name__}: {e}") from None
    if "genome" not in df.columns:
        raise TableError(f"table {p} has no 'genome' column (columns: "
                         f"{', '.join(map(str, df.columns))}); add one with dash-separated "
                         f"genomes such as 2-2-0-2-2-2")
    keys = []
    n_genes = None
    for i, text in enumerate(df["genome"].astype(str)):
        where = f"table {p}, row {i + 2} (genome {text!r})"  # row 1 is the header
        parts = text.strip().split("-")
        if not all(x.strip().isdigit() for x in parts):
            raise TableError(f"{where}: a genome is dash-separated non-negative integers")
        genome = [int(x) for x in parts]
        if space is not None and len(genome) != space.n_var:
            raise TableError(f"{where}: {len(genome)} genes, the {space.name} space has "
                             f"{space.n_var}")
        if n_genes is not None and len(genome) != n_genes:
            raise TableError(f"{where}: {len(genome)} genes, earlier rows have {n_genes}")
        n_genes = len(genome)
        keys.append("-".join(map(str, genome)))
    if not keys:
        raise TableError(f"table {p} has no rows")
    frame = df.drop(columns=["genome"])
    frame.index = pd.Index(keys, name="genome")
    if frame.index.has_duplicates:
        dup = frame.index[frame.index.duplicated()][0]
        raise TableError(f"table {p}: genome {dup} appears more than once; keep one row per "
                         f"genome")
    bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise TableError(f"table {p}: column {bad[0]!r} is not numeric; metric columns must "
                         f"be numbers")
    if frame.columns.empty:
        raise TableError(f"table {p} has a genome column but no metric columns")
    table = Table(source=str(p), frame=frame, n_genes=int(n_genes or 0), dataset=p.stem,
                  num_classes=int(num_classes), in_channels=int(in_channels),
                  seconds="train_seconds" if "train_seconds" in frame.columns else None)
    if space is not None:
        table.check_space(space)
    return table


@functools.lru_cache(maxsize=8)
def _cached(source: str, mtime: float, num_classes: int, in_channels: int) -> Table:
    if source == ANALOG_NASBENCH:
        return read_analog_nasbench()
    return read_user_table(source, num_classes=num_classes, in_channels=in_channels)


def load_table(source: str, *, space: Any = None, num_classes: int | None = None,
               in_channels: int | None = None, key: str = "evaluator.source") -> Table:
    """The table named by ``source`` (memoised per file and modification time); ``key``
    is the config key that named it, for the messages."""
    if not isinstance(source, str) or not source:
        raise TableError(f"{key} must be {ANALOG_NASBENCH} or a path to a "
                         f"CSV/Parquet file, got {source!r}")
    if source == ANALOG_NASBENCH:
        path = analog_nasbench_file()
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            hint = f"{ANALOG_NASBENCH} or " if key == "evaluator.source" else ""
            raise TableError(f"{key}={source}: no such file; pass {hint}a CSV/Parquet file "
                             f"with a 'genome' column")
    table = _cached(source, path.stat().st_mtime, int(num_classes or 10), int(in_channels or 3))
    if space is not None:
        table.check_space(space)
    return table


__all__ = ["ANALOG_NASBENCH", "Table", "TableError", "analog_nasbench_file", "load_table",
           "read_analog_nasbench", "read_user_table"]
