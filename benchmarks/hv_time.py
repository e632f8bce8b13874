"""Hypervolume against wall-clock time of finished search runs, side by side.

    python benchmarks/hv_time.py RUN_DIR [RUN_DIR ...] [--at 60 120 ...]

For each run folder: the hypervolume (the search's own: error x cost / cost_ref, reference
point 1, each architecture at the highest fidelity it had reached) after every archived
result, against seconds since the run folder's config.yaml was written (the search's start:
worker start-up, data loading and every training included), and at the ``--at`` times in
one table. Used for
successive halving against fixed fidelity (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from nas.archive import Archive, final_rows
from nas.run import hypervolume_of


def curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(seconds, hypervolume) after each archived result of ``run_dir``."""
    with Archive(run_dir / "archive.sqlite") as a:
        df = a.to_frame()
        ref = float(a.get_meta("cost_ref"))
    df = df.sort_values("id").reset_index(drop=True)
    t0 = (run_dir / "config.yaml").stat().st_mtime
    ts, hv = [], []
    for i in range(len(df)):
        part = df.iloc[: i + 1]
        search = final_rows(part[part["space"] != "baseline"])
        ts.append(float(df["created"].iloc[i]) - t0)
        hv.append(hypervolume_of(search, "macs", ref) if len(search) else 0.0)
    return np.array(ts), np.array(hv)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--at", nargs="*", type=float, default=[])
    args = p.parse_args()
    cols = [f"hv@{t:g}s" for t in args.at]
    print("run  results  seconds  final_hv  " + "  ".join(cols))
    for r in args.runs:
        t, h = curve(r)
        at = [h[t <= s].max() if (t <= s).any() else 0.0 for s in args.at]
        status = json.loads((r / "status.json").read_text())
        print(f"{r.name}  {len(t)}  {t[-1]:.0f}  {status.get('hypervolume', h[-1]):.4f}  "
              + "  ".join(f"{v:.4f}" for v in at))


if __name__ == "__main__":
    main()
