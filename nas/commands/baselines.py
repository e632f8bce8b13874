"""``python -m nas.baselines``: train classic networks (the zoo in
`search_spaces.baselines`) with one recipe.

    python -m nas.baselines data=digits
    python -m nas.baselines data=cifar10 data.root=~/data/cifar10 \
        baselines.names=[resnet20,resnet56,mobilenet_v2] baselines.max_macs=150e6

Every net is built for the data set (its classes and channels, at the data's native
resolution unless ``baselines.resolution`` says otherwise), trained with ``train`` (the same
recipe `python -m nas.train` uses for a found architecture), and tested on the test split.
``baselines.csv`` in the run folder gets one row per net (written after each one):

    name, spec, macs, params, accuracy (test, 0..1), val_accuracy, seconds, status, reason
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table
from tqdm.auto import tqdm

from nas.commands import fmt_count, fmt_pct
from nas.commands.schema import check_keys
from nas.config import plain
from nas.cost import totals
from nas.evaluate import failure_reason
from nas.registry import baseline_spec, data_info
from nas.run import RunFolder
from nas.train import TrainConfig, train_spec
from search_spaces import baselines as zoo

COLUMNS = ("name", "spec", "macs", "params", "accuracy", "val_accuracy", "seconds", "status",
           "reason")


def run_baselines(cfg: Any, *, run_dir: Path | str) -> Any:
    """Train ``cfg.baselines.names`` on ``cfg.data`` with ``cfg.train``; write
    ``baselines.csv`` into ``run_dir`` and return it as a pandas DataFrame."""
    folder = RunFolder(run_dir)
    opts = plain(cfg.baselines)
    names = list(opts.get("names") or [])
    if not names:
        raise ValueError("baselines.names is empty; pass e.g. baselines.names=[lenet5,resnet20]")
    for name in names:
        if name not in zoo.BASELINES:
            zoo.get(name)  # raises ValueError with close matches and the known names
    data = plain(cfg.data)
    train = TrainConfig.from_any(cfg.train)
    max_macs = opts.get("max_macs")
    resolution = opts.get("resolution") or train.resolution
    progress = bool(cfg.get("progress", True))
    folder.write_config(cfg)

    info = data_info(data)
    # Each spec is built at its own resolution, so training follows the spec.
    train = replace(train, resolution=None)
    rows: list[dict] = []
    csv = folder.file("baselines.csv")
    bar = tqdm(names, desc="baselines", unit="net", disable=not progress, file=sys.stdout)
    for name in bar:
        bar.set_postfix_str(name)
        row = _train_baseline(name, info=info, data=data, train=train, seed=int(cfg.seed),
                              resolution=resolution, max_macs=max_macs)
        rows.append(row)
        folder.write_csv(csv.name, pd.DataFrame(rows, columns=list(COLUMNS)))
        if progress:
            bar.write(f"{name}: {row['status']} test {fmt_pct(row['accuracy'])}"
                      + (f" in {row['seconds']:.1f} s" if row["seconds"] is not None else "")
                      + (f" ({row['reason']})" if row["reason"] else ""))
    bar.close()
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    if progress:
        _print_summary(df, info.name, csv)
    return df


def _train_baseline(name: str, *, info: Any, data: dict, train: TrainConfig, seed: int,
                    resolution: int | None, max_macs: float | None) -> dict[str, Any]:
    """One row of baselines.csv; a net that cannot be built or trained is a failed row."""
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(name=name, status="ok")
    try:
        spec = baseline_spec(name, info, resolution)
    except ValueError as e:  # e.g. its layers do not fit the requested resolution
        return {**row, "status": "failed", "reason": failure_reason(e)}
    macs, params, _ = totals(spec)
    row.update(spec=spec.to_string(), macs=macs, params=params)
    if max_macs is not None and macs > float(max_macs):
        return {**row, "status": "skipped",
                "reason": f"{macs:,} MACs > baselines.max_macs={float(max_macs):g}"}
    try:
        out = train_spec(spec, data=data, train=train, seed=seed, test=True)
    except Exception as e:  # noqa: BLE001 - one net's failure is a row, the others go on
        return {**row, "status": "failed", "reason": failure_reason(e)}
    return {**row, "accuracy": out.get("test_accuracy"), "val_accuracy": out.get("accuracy"),
            "seconds": round(out["train_seconds"], 2)}


def _print_summary(df: Any, data_name: str, csv: Path) -> None:
    t = Table(title=f"baselines on {data_name}")
    for col, just in (("name", "left"), ("MACs", "right"), ("params", "right"),
                      ("test acc", "right"), ("val acc", "right"), ("seconds", "right"),
                      ("status", "left")):
        t.add_column(col, justify=just)
    for r in df.itertuples():
        t.add_row(r.name, fmt_count(r.macs), fmt_count(r.params), fmt_pct(_num(r.accuracy)),
                  fmt_pct(_num(r.val_accuracy)),
                  "-" if _num(r.seconds) is None else f"{r.seconds:.1f}",
                  r.status if r.status == "ok" else f"{r.status}: {r.reason}")
    console = Console()
    console.print(t)
    console.print(f"wrote {csv}")


def _num(x: Any) -> float | None:
    return None if x is None or x != x else float(x)  # NaN (missing in pandas) -> None


def check(cfg: Any) -> None:
    """What ``python -m nas.baselines`` checks before its first file: every key, the
    recipe, the names."""
    check_keys(cfg, "baselines")
    TrainConfig.from_any(cfg.train)
    names = list(plain(cfg.baselines).get("names") or [])
    if not names:
        raise ValueError("baselines.names is empty; pass e.g. baselines.names=[lenet5,resnet20]")
    for name in names:
        zoo.get_info(name)  # raises ValueError with close matches and the known names


def task(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> Any:
    """One ``python -m nas.baselines`` job (Hydra has composed and checked ``cfg``)."""
    return run_baselines(cfg, run_dir=run_dir)
