"""``python -m nas.report``: an HTML report, plots and a summary of one or more runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nas.commands import run
from nas.grade import GradeError, grade, write_grade
from nas.report import print_summary, write_report
from nas.run import RunFolderError, cost_column, read_run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m nas.report",
        description="Self-contained HTML report (fronts overlaid, hypervolume, every Pareto "
                    "architecture with its per-layer cost table) of one or more search runs, "
                    "plus front.png / hypervolume.png and a terminal summary.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="run folder(s) written by `python -m nas.search`")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: RUN_DIR/report of the first run)")
    p.add_argument("--cost", default="macs",
                   help="x axis of the front plot: macs (default), params, activations, "
                        "latency_ms, or a cost-table column the runs hold (a device's "
                        "latency); log scale")
    p.add_argument("--grade", action="store_true",
                   help="grade each run by a table of known accuracies that covers its space "
                        "(analog-nasbench for nb201): writes a true_accuracy column into "
                        "evaluated.csv, pareto.csv and pareto.html, and prints the reported "
                        "front's true hypervolume ratio, the best pick's true accuracy and its "
                        "gap to the table's best, and the true-front points found")
    p.add_argument("--table", default=None, metavar="PATH",
                   help="with --grade: the table (analog-nasbench or a CSV/Parquet with a "
                        "'genome' column); default the run's own table, or analog-nasbench "
                        "for an nb201 run")
    p.add_argument("--quiet", action="store_true", help="skip the terminal summary")
    args = p.parse_args(argv)
    if args.table is not None and not args.grade:
        print("error: --table is used with --grade; add --grade", file=sys.stderr)
        return 2
    try:
        runs = [read_run(d) for d in args.run_dirs]
    except RunFolderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        for r in runs:
            cost_column(args.cost, r.evaluated)
    except ValueError as e:
        print(f"error: --cost: {e}", file=sys.stderr)
        return 2
    grades = []
    if args.grade:
        try:
            grades = [grade(r, args.table) for r in runs]
        except GradeError as e:
            print(f"error: --grade: {e}", file=sys.stderr)
            return 2
        for r, g in zip(runs, grades):
            write_grade(r, g)
            r.evaluated, r.pareto = g.evaluated, g.pareto
    out = args.out or Path(args.run_dirs[0]) / "report"
    path = write_report(runs, out, cost=args.cost)
    if not args.quiet:
        print_summary(runs)
    for r, g in zip(runs, grades):
        print(f"{r.path}: " + "\n".join(g.lines()))
    print(f"report: {path}")
    return 0


def entry() -> None:
    """``python -m nas.report``."""
    sys.exit(run(main))
