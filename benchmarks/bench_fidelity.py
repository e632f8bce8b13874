"""How well does an evaluator rank NAS-Bench-201 networks on real CIFAR-10? Graded by the table.

    python benchmarks/bench_fidelity.py --root ../shared/data/cifar10-jpeg.tar.gz \\
        --eval "synflow: evaluator=zero_cost evaluator.proxy=synflow" \\
        --eval "macs: evaluator=zero_cost evaluator.proxy=macs" \\
        --eval "short: evaluator=pool space.cells=1 space.resolution=16 train.epochs=2 train.train_fraction=0.2" \\
        --out runs/fidelity

The sample is fixed and seeded (``--seed``): ``--n`` distinct networks of the ``nb201`` space
(canonical genomes: one per function) drawn evenly across the table's accuracy range
(``--bins`` equal-count bins of the 4,930 networks by ``baseline_accuracy``, the same number
from each), plus the table's ``--top`` best networks. Each ``--eval "NAME: OVERRIDES"``
composes the search configuration (``+space=nb201 data=cifar10 data.root=ROOT`` and the
overrides, so reduced spaces such as ``space.cells=1`` build smaller networks of the same
genomes) and scores every network of the sample with the evaluator that configuration
builds, as a search would. The truth is the table's accuracy of the full network
(analog-nasbench, ``baseline_accuracy``, 200 epochs, CIFAR-10).

Per evaluator it prints: Spearman rho and Kendall tau against the table over the sample and
within its true top 10% and top 20%, how many of the sample's true top 10 it ranks in its own
top 10, and CPU seconds per network (the worker's wall time times its torch threads; one
thread per worker unless the overrides say otherwise). Results are appended to
``OUT/scores.csv`` as they arrive, so a killed run continues where it stopped; the summary is
written to ``OUT/summary.csv`` and, with ``--plot``, the cost-fidelity plot (rho against CPU
seconds per network) to a PNG.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter
from omegaconf import OmegaConf
from scipy.stats import kendalltau, spearmanr

from nas import registry, zero_cost
from nas.config import CONF_DIR
from nas.evaluate import Candidate, make_evaluator
from nas.table import load_table

COLUMNS = ["evaluator", "genome", "arch_id", "truth", "value", "status", "reason", "cpu_s"]


def sample_genomes(n: int, top: int, bins: int, seed: int) -> list[tuple[tuple[int, ...], float]]:
    """``(canonical genome, table accuracy %)`` of the sample: ``n`` networks spread evenly
    over the accuracy range, and the ``top`` best; sorted by accuracy, best first."""
    space = registry.SPACES.build("nb201", num_classes=10, in_channels=3)
    table = load_table("analog-nasbench")
    G = space.all_canonical()
    acc = table.accuracies(G, "baseline_accuracy") * 100.0
    keep = np.isfinite(acc)
    G, acc = G[keep], acc[keep]
    order = np.argsort(-acc, kind="stable")
    chosen = list(order[:top])
    rest = order[top:]
    rng = np.random.default_rng(seed)
    edges = np.array_split(rest, bins)
    per = -(-n // bins)
    for part in edges:
        chosen += list(rng.choice(part, size=min(per, len(part)), replace=False))
    chosen = sorted(set(int(i) for i in chosen), key=lambda i: -acc[i])
    return [(tuple(int(v) for v in G[i]), float(acc[i])) for i in chosen]


def compose_config(root: str, overrides: list[str]):
    base = ["+space=nb201", "data=cifar10", f"data.root={root}", "progress=false"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="search", overrides=base + overrides)


def score(name: str, overrides: list[str], sample, root: str, out_csv: Path) -> None:
    """Evaluate every network of ``sample`` not yet in ``out_csv`` under ``name``."""
    done = set()
    if out_csv.exists():
        prev = pd.read_csv(out_csv, dtype={"genome": str})
        done = set(prev.loc[prev["evaluator"] == name, "genome"])
    todo = [(g, t) for g, t in sample if "-".join(map(str, g)) not in done]
    if not todo:
        print(f"{name}: all {len(sample)} networks scored already", file=sys.stderr)
        return
    cfg = compose_config(root, overrides)
    space = registry.space(OmegaConf.to_container(cfg.space, resolve=True),
                           num_classes=10, in_channels=3)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    train = OmegaConf.to_container(cfg.train, resolve=True)
    truth = {space.arch_id(g): (g, t) for g, t in todo}
    cands = [Candidate(arch_id=space.arch_id(g), spec=space.decode(g), seed=int(cfg.seed),
                       genome=g, space=space.name) for g, _ in todo]
    new_file = not out_csv.exists()
    t0 = time.monotonic()
    with make_evaluator(cfg.evaluator, data=data, train=train) as ev, \
            out_csv.open("a", newline="") as f:
        ev.check_space(space)
        threads = int(getattr(ev, "threads", None) or train.get("num_threads") or 1)
        w = csv.writer(f)
        if new_file:
            w.writerow(COLUMNS)
        count = [0]

        def write(r) -> None:
            g, t = truth[r.arch_id]
            value = r.accuracy if r.accuracy is not None else r.score
            cpu = float(r.extra.get("wall_seconds") or 0.0) * threads
            key = "-".join(map(str, g))
            w.writerow([name, key, r.arch_id, t, value, r.status, r.reason or "",
                        round(cpu, 3)])
            # a zero-cost combination computed every proxy it combines: one row each
            # (their CPU time is the combination's, shared)
            proxies = r.extra.get("proxies") or {}
            if len(proxies) > 1:
                for proxy, v in proxies.items():
                    w.writerow([f"{name}:{proxy}", key, r.arch_id, t, v, r.status, "",
                                round(cpu, 3)])
            f.flush()
            count[0] += 1
            el = time.monotonic() - t0
            print(f"\r{name}: {count[0]}/{len(cands)} ({el / count[0]:.1f} s wall per network)",
                  end="", file=sys.stderr, flush=True)

        ev.evaluate(cands, callback=write)
        reference = getattr(getattr(ev, "task", None), "reference", None)
        if reference:  # a zero-cost reference sample, for --combine
            (out_csv.parent / f"reference-{name}.json").write_text(json.dumps(reference))
    print(file=sys.stderr)


def combine_offline(df: pd.DataFrame, spec: str, out: Path) -> pd.DataFrame:
    """Rows of a combination computed from per-proxy rows already scored: ``spec`` is
    ``"NAME: METHOD SOURCE p1,p2,..."``, with SOURCE an ``--eval`` name whose proxies
    (rows ``SOURCE:p``) and reference sample (``reference-SOURCE.json``) it reads."""
    name, _, rest = spec.partition(":")
    method, source, names = rest.split()
    proxies = names.split(",")
    reference = json.loads((out / f"reference-{source}.json").read_text())
    wide = df[df["evaluator"].isin([f"{source}:{p}" for p in proxies])].pivot_table(
        index=["genome", "arch_id", "truth"], columns="evaluator", values="value",
        aggfunc="first").dropna()
    cpu = df[df["evaluator"] == source].set_index("genome")["cpu_s"]
    rows = []
    for (genome, arch_id, truth), vals in wide.iterrows():
        values = {p: float(vals[f"{source}:{p}"]) for p in proxies}
        err = zero_cost.error(values, {p: reference[p] for p in proxies}, method=method)
        rows.append({"evaluator": name.strip(), "genome": genome, "arch_id": arch_id,
                     "truth": truth, "value": 1.0 - err, "status": "ok", "reason": "",
                     "cpu_s": float(cpu.get(genome, np.nan))})
    return pd.DataFrame(rows, columns=COLUMNS)


def grade(df: pd.DataFrame) -> dict:
    """The figures of one evaluator's rows (ok ones; failures counted)."""
    ok = df[(df["status"] == "ok") & df["value"].notna()]
    out = {"networks": len(df), "failed": int((df["status"] != "ok").sum()),
           "cpu_s": float(df["cpu_s"].median()) if len(df) else float("nan")}
    if len(ok) < 3:
        return out
    t, v = ok["truth"].to_numpy(float), ok["value"].to_numpy(float)
    out["rho"] = float(spearmanr(t, v).statistic)
    out["tau"] = float(kendalltau(t, v).statistic)
    for share in (0.1, 0.2):
        cut = np.quantile(t, 1 - share)
        m = t >= cut
        key = f"tau_top{int(share * 100)}"
        out[key] = float(kendalltau(t[m], v[m]).statistic) if m.sum() >= 3 else float("nan")
    top_true = set(ok.nlargest(10, "truth")["genome"])
    top_mine = set(ok.nlargest(10, "value")["genome"])
    out["top10_found"] = len(top_true & top_mine)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/bench_fidelity.py",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="CIFAR-10 (folder or .tar.gz)")
    p.add_argument("--eval", action="append", default=[], metavar="'NAME: OVERRIDES'",
                   help="an evaluator configuration (search overrides); repeatable")
    p.add_argument("--n", type=int, default=200, help="networks spread over the accuracy range")
    p.add_argument("--top", type=int, default=20, help="plus the table's best N")
    p.add_argument("--bins", type=int, default=20, help="accuracy bins of the spread sample")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample")
    p.add_argument("--limit", type=int, default=None,
                   help="score only the first N networks of the sample (a quick check)")
    p.add_argument("--out", type=Path, default=Path("runs/fidelity"), help="output folder")
    p.add_argument("--plot", type=Path, default=None, help="cost-fidelity plot (PNG)")
    p.add_argument("--grade-only", action="store_true",
                   help="score nothing: grade the rows OUT/scores.csv holds for each --eval "
                        "(an evaluator scored on part of the sample is graded on that part)")
    p.add_argument("--combine", action="append", default=[],
                   metavar="'NAME: METHOD SOURCE p1,p2'",
                   help="a zero-cost combination (z_mean or rank_mean) of proxies that the "
                        "--eval named SOURCE computed (with evaluator.combine), graded "
                        "without scoring again; repeatable")
    args = p.parse_args(argv)
    sample = sample_genomes(args.n, args.top, args.bins, args.seed)
    if args.limit:
        rng = np.random.default_rng(args.seed)
        sample = [sample[i] for i in sorted(rng.choice(len(sample), args.limit,
                                                       replace=False))]
    args.out.mkdir(parents=True, exist_ok=True)
    out_csv = args.out / "scores.csv"
    names = []
    for spec in args.eval:
        name, _, rest = spec.partition(":")
        name = name.strip()
        names.append(name)
        if not args.grade_only:
            score(name, rest.split(), sample, args.root, out_csv)
    if not out_csv.exists():
        print("nothing scored yet: pass --eval 'NAME: OVERRIDES'", file=sys.stderr)
        return 2
    df = pd.read_csv(out_csv, dtype={"genome": str})
    keys = {"-".join(map(str, g)) for g, _ in sample}
    df = df[df["genome"].isin(keys)]
    for spec in args.combine:
        extra = combine_offline(df, spec, args.out)
        df = pd.concat([df, extra], ignore_index=True)
        names.append(str(extra["evaluator"].iloc[0]) if len(extra) else spec)
    for name in list(names):  # per-proxy rows of a combination follow it
        names[names.index(name) + 1:names.index(name) + 1] = sorted(
            e for e in df["evaluator"].unique() if e.startswith(f"{name}:") and e not in names)
    rows = []
    for name in names or sorted(df["evaluator"].unique()):
        rows.append({"evaluator": name, **grade(df[df["evaluator"] == name])})
    summary = pd.DataFrame(rows)
    summary.to_csv(args.out / "summary.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"{len(sample)} networks (truth: analog-nasbench baseline_accuracy, "
              f"{min(t for _, t in sample):.2f}-{max(t for _, t in sample):.2f}%)")
        print(summary.round(3).to_string(index=False))
    if args.plot is not None and "rho" in summary:
        fig = Figure(figsize=(6.5, 4.2), dpi=110)
        ax = fig.subplots()
        # a combination's per-proxy rows share its CPU time: plotted are the evaluators
        s = summary.dropna(subset=["rho"])
        s = s[~s["evaluator"].str.contains(":")]
        ax.scatter(s["cpu_s"].clip(lower=1e-3), s["rho"], color="tab:blue")
        for _, r in s.iterrows():
            label = r["evaluator"] + (f" ({int(r['networks'])} networks)"
                                      if int(r["networks"]) < len(sample) else "")
            ax.annotate(label, (max(r["cpu_s"], 1e-3), r["rho"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        ax.set_xticks([t for t in (0.01, 0.1, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
                       if lo <= t <= hi])
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("CPU seconds per network (log)")
        ax.set_ylabel("Spearman rho with NAS-Bench-201")
        ax.set_title(f"Cost and fidelity of evaluators ({len(sample)} networks)")
        ax.grid(True, which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.plot)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
