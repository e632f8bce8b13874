"""Search efficiency: hypervolume against evaluations for the surrogate search and the
comparators (random, NSGA-II with every individual trained, Optuna's samplers: ``optuna`` is
its NSGA-II, ``optuna-nsga3``, ``optuna-gp`` and ``optuna-tpe`` the others), run side by side
on the same budget and seeds.

    python benchmarks/bench_search.py [--space mobile] [--evaluations 50] [--seeds 0 1 2]
        [--out runs/bench_search] [overrides ...]

Each (algorithm, seed) run is an ordinary search folder under ``--out``; an interrupted
benchmark resumes its unfinished runs and skips finished ones. Extra arguments are Hydra
overrides for every run (e.g. ``data=cifar10 data.root=...``).

Reported:
* the mean hypervolume curve of each algorithm (after 10, 20, ... evaluations);
* how many evaluations the surrogate search needs to reach the final hypervolume of random
  search (per seed and for the mean curves), as a fraction of the budget;
* the surrogate's Kendall tau on held-out architectures: fit on the first 50 architectures
  of each surrogate run, tested on every architecture the random runs trained (an unbiased
  sample of the space, none in the training set); plus the in-search held-out tau (each
  batch predicted before it was trained) from ``surrogate.csv``;
* the proxy's own repeatability (``--repeat K``): K architectures of the first random run
  trained again with another training seed (same train/val split); the Kendall tau between
  the two measurements bounds what any surrogate can reach on these labels.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir

from nas.algorithms import from_target, surrogate_inputs, to_target
from nas.commands.search import run_search
from nas.config import CONF_DIR
from nas.run import hypervolume_curve, read_run, read_status
from nas.surrogate import make_surrogate, rank_metrics

ALGOS = ("surrogate", "random", "nsga2", "optuna", "evolution", "local", "optuna-nsga3",
         "optuna-gp", "optuna-tpe")
DEFAULT_ALGOS = ("surrogate", "random", "nsga2", "optuna")
TABLE_ALGOS = ("surrogate", "random", "nsga2", "optuna", "evolution", "local")


def seed_list(items: list[str]) -> list[int]:
    """``0 1 2`` or ``0-29`` (inclusive ranges) -> seeds."""
    out: list[int] = []
    for it in items:
        lo, sep, hi = it.partition("-")
        out += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
    return out


def run_one(out: Path, algo: str, seed: int, space: str, evaluations: int,
            overrides: list[str]) -> Path:
    run_dir = out / f"{algo}_s{seed}"
    if read_status(run_dir).get("state") == "complete":
        return run_dir
    name, _, sampler = algo.partition("-")  # optuna-gp: algorithm=optuna algorithm.sampler=gp
    ov = [f"+space={space}", f"algorithm={name}", f"seed={seed}",
          *([f"algorithm.sampler={sampler}"] if sampler else []),
          f"budget.evaluations={evaluations}", "baselines.names=[]", "progress=false",
          *overrides]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="search", overrides=ov)
    if (run_dir / "archive.sqlite").exists():
        cfg.resume = str(run_dir)
    t = time.time()
    run_search(cfg, run_dir)
    print(f"  {algo} seed {seed}: {time.time() - t:.0f} s", flush=True)
    return run_dir


def curve(run_dir: Path) -> tuple[np.ndarray, pd.DataFrame]:
    run = read_run(run_dir)
    ev, hv = run.evaluated, run.hypervolume
    return hypervolume_curve(ev, hv["cost"].iloc[0], float(hv["cost_ref"].iloc[0])), ev


def first_reaching(c: np.ndarray, target: float) -> int | None:
    hit = np.flatnonzero(c >= target - 1e-12)
    return int(hit[0]) + 1 if len(hit) else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", default="mobile")
    p.add_argument("--evaluations", type=int, default=50)
    p.add_argument("--seeds", nargs="+", default=None,
                   help="seeds, e.g. 0 1 2 or 0-29 (default 0-2; 0-29 with --evaluator table)")
    p.add_argument("--algorithms", nargs="+", default=None, choices=ALGOS,
                   help="default: surrogate random nsga2 optuna (plus evolution and local "
                        "with --evaluator table)")
    p.add_argument("--evaluator", default=None, choices=("table",),
                   help="table: look candidates up (evaluator=table) and measure every run "
                        "against the table's true Pareto front (benchmarks/bench_table.py)")
    p.add_argument("--jobs", type=int, default=2, help="parallel runs (--evaluator table)")
    p.add_argument("--tol", type=float, default=0.2,
                   help="accuracy points within which a true-front point counts as found")
    p.add_argument("--taus", type=int, default=5,
                   help="random draws for the held-out surrogate tau table (--evaluator "
                        "table; 0 to skip)")
    p.add_argument("--out", default=None, help="default runs/bench_search or runs/bench_table")
    p.add_argument("--train-size", type=int, default=50,
                   help="architectures the held-out Kendall tau surrogate is fitted on")
    p.add_argument("--repeat", type=int, default=0,
                   help="retrain this many architectures with another seed (noise ceiling)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    args = p.parse_args()
    table = args.evaluator == "table"
    args.seeds = seed_list(args.seeds or (["0-29"] if table else ["0-2"]))
    args.algorithms = args.algorithms or list(TABLE_ALGOS if table else DEFAULT_ALGOS)
    args.out = args.out or ("runs/bench_table" if table else "runs/bench_search")
    if table:
        if args.evaluations == 50 and "--evaluations" not in " ".join(__import__("sys").argv):
            args.evaluations = 300
        from bench_table import main as table_main

        table_main(args)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    runs: dict[str, dict[int, Path]] = {}
    for seed in args.seeds:
        for algo in args.algorithms:
            runs.setdefault(algo, {})[seed] = run_one(out, algo, seed, args.space,
                                                       args.evaluations, args.overrides)
    print(f"all runs done in {time.time() - t0:.0f} s\n")

    curves = {a: {s: curve(d) for s, d in r.items()} for a, r in runs.items()}
    n = args.evaluations
    marks = [m for m in (5, 10, 20, 30, 40, 50, 75, 100) if m <= n]
    if n not in marks:
        marks.append(n)
    rows = []
    for a, per_seed in curves.items():
        cs = np.array([c[:n] for c, _ in per_seed.values() if len(c) >= n])
        mean = cs.mean(0)
        rows.append({"algorithm": a, **{f"hv@{m}": round(float(mean[m - 1]), 4) for m in marks}})
    table = pd.DataFrame(rows)
    print("mean hypervolume after k evaluations (error x MACs/ref, reference (1, 1)):")
    print(table.to_string(index=False))

    if "surrogate" in curves and "random" in curves:
        print("\nevaluations the surrogate search needs to reach random search's final "
              "hypervolume:")
        fr = []
        for s in args.seeds:
            target = curves["random"][s][0][n - 1]
            k = first_reaching(curves["surrogate"][s][0][:n], target)
            fr.append(k)
            print(f"  seed {s}: random final {target:.4f}; surrogate reaches it at "
                  f"{k if k else '>' + str(n)} / {n}")
        mean_r = np.mean([curves["random"][s][0][n - 1] for s in args.seeds])
        mean_s = np.mean([curves["surrogate"][s][0][:n] for s in args.seeds], axis=0)
        k = first_reaching(mean_s, mean_r)
        print(f"  mean curves: random final {mean_r:.4f}; surrogate reaches it at "
              f"{k if k else '>' + str(n)} / {n} evaluations "
              f"({(k / n if k else float('nan')):.2f} of the budget)")

        # Held-out Kendall tau (see the module docstring).
        held = pd.concat([curves["random"][s][1] for s in args.seeds])
        held = held[held["status"] == "ok"].drop_duplicates("arch_id")
        from hydra.utils import instantiate

        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="search", overrides=[f"+space={args.space}",
                                                           *args.overrides])
        from omegaconf import OmegaConf

        from nas.data import make_datamodule

        dm = make_datamodule(**OmegaConf.to_container(cfg.data, resolve=True))
        sc = OmegaConf.to_container(cfg.space, resolve=True)
        space = instantiate(sc, num_classes=dm.num_classes, in_channels=dm.in_channels,
                            _convert_="all")
        others = pd.concat([c[1] for a, per in curves.items() if a != "surrogate"
                            for c in per.values()])
        others = others[others["status"] == "ok"].drop_duplicates("arch_id")
        gX = lambda df: np.array([[int(v) for v in g.split("-")] for g in df["genome"]])  # noqa: E731
        inputs = cfg.surrogate.get("inputs", "genes+costs")
        print(f"\nsurrogate Kendall tau on held-out architectures (fit on the first "
              f"{args.train_size} of each surrogate run with surrogate.inputs={inputs}; tested "
              f"on the random runs' architectures, and on every comparator's):")
        taus = []
        for s in args.seeds:
            ev = curves["surrogate"][s][1]
            train = ev[ev["status"] == "ok"].sort_values("id").head(args.train_size)
            target = cfg.surrogate.get("target", "log")
            model = make_surrogate(cfg.surrogate.name, seed=s).fit(
                surrogate_inputs(space, gX(train), inputs),
                to_target(train["error"].to_numpy(), target))
            chosen = getattr(model, "chosen", model.name)
            for label, pool in (("random", held), ("all comparators", others)):
                test = pool[~pool["arch_id"].isin(train["arch_id"])]
                m = rank_metrics(test["error"].to_numpy(), from_target(
                    model.predict(surrogate_inputs(space, gX(test), inputs)), target))
                if label == "random":
                    taus.append(m["kendall_tau"])
                print(f"  seed {s}: {chosen}, n_train={len(train)}, {label} n_test={len(test)}: "
                      f"kendall {m['kendall_tau']:.3f}, spearman {m['spearman_rho']:.3f}, "
                      f"rmse {m['rmse']:.4f}")
        print(f"  mean kendall tau on the random runs' architectures: {np.mean(taus):.3f}")
        if args.repeat:
            repeatability(out, runs["random"][args.seeds[0]], args.repeat, space, cfg)
        print("\nin-search held-out tau (each batch predicted before training), mean over "
              "seeds:")
        sur = pd.concat([pd.read_csv(runs["surrogate"][s] / "surrogate.csv").assign(seed=s)
                         for s in args.seeds])
        if "heldout_kendall_tau" in sur:
            print(sur.groupby("iteration")[["train_size", "heldout_kendall_tau"]].mean()
                  .round(3).to_string())


def repeatability(out: Path, run_dir: Path, k: int, space, cfg) -> None:
    """Retrain the first ``k`` architectures of ``run_dir`` with a different training seed
    and print the rank agreement of the two measurements (cached in ``out/repeat.csv``)."""
    from omegaconf import OmegaConf

    from nas.train import train_spec

    ev = read_run(run_dir).ok.sort_values("id").head(k)
    cache = out / "repeat.csv"
    done = pd.read_csv(cache) if cache.exists() else pd.DataFrame(columns=["arch_id", "again"])
    data = OmegaConf.to_container(cfg.data, resolve=True)
    train = OmegaConf.to_container(cfg.train, resolve=True)
    for _, row in ev.iterrows():
        if row["arch_id"] in set(done["arch_id"]):
            continue
        spec = space.decode([int(v) for v in row["genome"].split("-")])
        acc = train_spec(spec, data=data, train=train, seed=int(row["seed"]) + 1000)["accuracy"]
        done = pd.concat([done, pd.DataFrame([{"arch_id": row["arch_id"], "again": acc}])])
        done.to_csv(cache, index=False)
    both = ev.merge(done, on="arch_id")
    m = rank_metrics(both["accuracy"].to_numpy(), both["again"].to_numpy().astype(float))
    diff = np.abs(both["accuracy"] - both["again"].astype(float))
    print(f"\nproxy repeatability ({len(both)} architectures of {run_dir.name}, trained again "
          f"with seed +1000): kendall {m['kendall_tau']:.3f}, spearman "
          f"{m['spearman_rho']:.3f}, mean |accuracy difference| {diff.mean():.4f} "
          f"(max {diff.max():.4f})")


if __name__ == "__main__":
    main()
