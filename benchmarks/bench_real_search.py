"""A real NAS-Bench-201 search on CIFAR-10, graded by the table, against two comparators.

    python benchmarks/bench_real_search.py --root ../shared/data/cifar10-jpeg.tar.gz \\
        --seeds 0 1 2 --out runs/real_search [--preset nb201_cifar10] [-- OVERRIDES ...]

Per seed, one after another on the same machine:

1. **the preset**: ``python -m nas.search +space=nb201 +experiment=PRESET data.root=ROOT
   seed=S`` (and ``OVERRIDES``), a real run of the command line, its wall time ``W``
   measured around the whole process;
2. **random search**: the same command with ``algorithm=random`` (the same evaluator and
   number of evaluations, so about the same wall time; it is reported);
3. **NASWOT's protocol** (Mellor et al. 2021): distinct networks drawn at random, each
   scored by one proxy (``--proxy``, default ``naswot``) through the same zero-cost
   evaluator the search uses, until ``W`` has passed; the best of those N by the proxy is
   its pick and the proxy-versus-MACs front of the N its front.

Every method is graded by the table exactly as ``python -m nas.report RUN --grade`` grades a
run (`nas.grade`): the best pick's true accuracy and its gap to the table's best, the true
hypervolume ratio of the reported front (error x MACs), the true-front points found. A seed
whose run folder is complete is read, not run again, so a killed benchmark continues.
Writes ``OUT/results.csv`` (one row per seed and method) and prints the table with the mean
of the seeds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nas import registry
from nas.config import CONF_DIR
from nas.cost import totals
from nas.evaluate import Candidate, make_evaluator
from nas.grade import grade, true_front
from nas.pareto import non_dominated
from nas.run import read_run
from nas.table import ANALOG_NASBENCH, load_table

METRIC = "baseline_accuracy"


def run_search(folder: Path, overrides: list[str]) -> float:
    """Run ``python -m nas.search`` into ``folder`` (unless it completed before); its wall
    seconds (kept in ``folder/wall.json``)."""
    record = folder / "wall.json"
    if record.exists():
        return float(json.loads(record.read_text())["wall_s"])
    cmd = [sys.executable, "-m", "nas.search", *overrides, f"hydra.run.dir={folder}",
           "progress=false"]
    print(" ".join(cmd[1:]), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[1:])} failed ({done.returncode}):\n"
                         f"{done.stderr[-2000:]}")
    record.write_text(json.dumps({"wall_s": wall, "command": cmd[1:]}))
    return wall


def graded_search(method: str, seed: int, folder: Path, wall: float) -> dict:
    run = read_run(folder)
    g = grade(run)
    epochs = pd.to_numeric(run.evaluated.get("epochs"), errors="coerce")
    proxy = run.quality_label  # "accuracy", or "score (PROXY)"
    kinds = ["scored" if not np.isfinite(e) else f"trained {e:g} epochs"
             for e in (epochs if epochs is not None else [np.nan] * len(run.evaluated))]
    by_kind = ", ".join(f"{n} {k}" for k, n in pd.Series(kinds).value_counts().items())
    if proxy != "accuracy":  # "score (z_mean)"
        by_kind = by_kind.replace("scored", f"scored by {proxy[len('score ('):-1]}")
    return {"seed": seed, "method": method, "wall_s": round(wall, 1),
            "evaluations": len(run.evaluated), "kinds": by_kind,
            "best_true": 100 * g.best_pick.get("true_accuracy", np.nan),
            "gap": 100 * (g.table_best - g.best_pick.get("true_accuracy", np.nan)),
            "hv_ratio": g.hv_ratio, "found": g.found, "front_points": g.true_front_points}


def naswot(seed: int, root: str, wall: float, proxy: str, folder: Path) -> dict:
    """The best of N random distinct networks by ``proxy``, N whatever ``wall`` seconds
    score; the scores are kept in ``folder/scores.csv``."""
    out = folder / "scores.csv"
    if out.exists():
        df = pd.read_csv(out, dtype={"genome": str})
        spent = float(json.loads((folder / "wall.json").read_text())["wall_s"])
    else:
        folder.mkdir(parents=True, exist_ok=True)
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="search", overrides=[
                "+space=nb201", "data=cifar10", f"data.root={root}", f"seed={seed}",
                "evaluator=zero_cost", f"evaluator.proxy={proxy}", "progress=false"])
        t0 = time.perf_counter()
        space = registry.space(OmegaConf.to_container(cfg.space, resolve=True),
                               num_classes=10, in_channels=3)
        pool = space.all_canonical()
        order = np.random.default_rng(seed).permutation(len(pool))
        rows = []
        with make_evaluator(cfg.evaluator, data=OmegaConf.to_container(cfg.data, resolve=True),
                            train=OmegaConf.to_container(cfg.train, resolve=True)) as ev:
            ev.check_space(space)
            for start in range(0, len(order), 8):
                if time.perf_counter() - t0 >= wall:
                    break
                gs = [tuple(int(v) for v in pool[i]) for i in order[start:start + 8]]
                cands = [Candidate(arch_id=space.arch_id(g), spec=space.decode(g),
                                   seed=seed, genome=g, space=space.name) for g in gs]
                for g, r in zip(gs, ev.evaluate(cands)):
                    rows.append({"genome": "-".join(map(str, g)),
                                 "score": r.score if r.status == "ok" else np.nan})
        spent = time.perf_counter() - t0
        df = pd.DataFrame(rows)
        df.to_csv(out, index=False)
        (folder / "wall.json").write_text(json.dumps({"wall_s": spent}))
    table = load_table(ANALOG_NASBENCH)
    space = registry.space("nb201", num_classes=table.num_classes,
                           in_channels=table.in_channels)
    tf = true_front(space, table, METRIC)
    genomes = [tuple(space.parse_genome(g)) for g in df["genome"]]
    true = np.array([table.accuracy(g, METRIC) for g in genomes], dtype=float)
    macs = np.array([totals(space.decode(g))[0] for g in genomes], dtype=float)
    score = df["score"].to_numpy(float)
    ok = np.isfinite(score)
    best = int(np.nanargmax(np.where(ok, score, -np.inf)))
    front = np.flatnonzero(ok)[non_dominated(np.column_stack([-score[ok], macs[ok]]))]
    found = tf.found(np.column_stack([1.0 - true, macs]))
    return {"seed": seed, "method": f"NASWOT ({proxy}, best of N)", "wall_s": round(spent, 1),
            "evaluations": len(df), "kinds": f"{len(df)} scored by {proxy}",
            "best_true": 100 * true[best], "gap": 100 * (tf.best_accuracy - true[best]),
            "hv_ratio": tf.hv_ratio(np.column_stack([1.0 - true[front], macs[front]])),
            "found": int(found.sum()), "front_points": len(tf.F)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/bench_real_search.py",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="CIFAR-10 (folder or .tar.gz)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--preset", default="nb201_cifar10", help="conf/experiment/NAME.yaml")
    p.add_argument("--proxy", default="naswot", help="NASWOT protocol's proxy")
    p.add_argument("--out", type=Path, default=Path("runs/real_search"))
    p.add_argument("overrides", nargs="*", help="after --: overrides of the preset's runs")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        base = ["+space=nb201", f"+experiment={args.preset}", f"data.root={args.root}",
                f"seed={seed}", *args.overrides]
        folder = args.out / f"preset-s{seed}"
        wall = run_search(folder, base)
        rows.append(graded_search(f"preset {args.preset}", seed, folder, wall))
        folder = args.out / f"random-s{seed}"
        rows.append(graded_search("random search, same evaluator", seed, folder,
                                  run_search(folder, [*base, "algorithm=random"])))
        rows.append(naswot(seed, args.root, wall, args.proxy,
                           args.out / f"naswot-s{seed}"))
        pd.DataFrame(rows).to_csv(args.out / "results.csv", index=False)
        print(pd.DataFrame(rows[-3:]).round(3).to_string(index=False), file=sys.stderr)
    df = pd.DataFrame(rows)
    df.to_csv(args.out / "results.csv", index=False)
    mean = df.groupby("method", sort=False)[["wall_s", "evaluations", "best_true", "gap",
                                             "hv_ratio", "found"]].mean()
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.drop(columns=["kinds"]).round(3).to_string(index=False))
        print(f"\nmean of {len(args.seeds)} seeds (the table's best "
              f"{df['best_true'].max() + df.loc[df['best_true'].idxmax(), 'gap']:.2f}%):")
        print(mean.round(3).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
