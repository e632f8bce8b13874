"""Search against a ground truth: every algorithm on a table of known results, measured
against the TRUE Pareto front of the table (``bench_search.py --evaluator table``).

    python benchmarks/bench_search.py --space nb201 --evaluator table [--seeds 0-29]
        [--evaluations 300] [--algorithms surrogate random nsga2 optuna evolution local]
        [--jobs 2] [--out runs/bench_table] [overrides ...]

Every (algorithm, seed) run is an ordinary ``nas.search`` run folder under ``--out`` (a
finished one is reused, an unfinished one resumed). Budgets 25, 50, 100, 200, 300 are the
first k evaluations of each run (no algorithm here knows its total budget).

The true front is that of the table over the space's distinct networks (canonical genomes,
each with its own table entry and its exact MACs: what a search can find). Objectives are
normalised by the true front's ideal and nadir points, reference point 1.1 in each. Reported
per algorithm and budget, mean over seeds: the hypervolume ratio to the true front's; IGD+
(pymoo); the share of true-front points found (an evaluated architecture within ``--tol``
accuracy points of it at no more MACs); evaluations to reach 95% and 99% of the true
hypervolume; the algorithm's own compute time per evaluation. Then: the held-out Kendall tau
of each surrogate model fitted on 25/50/100/200 random architectures; one-sided Wilcoxon
signed-rank tests (scipy, paired by seed) of the surrogate search against each comparator at
each budget; and ``curves.png`` (median hypervolume ratio with quartile bands).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from nas.grade import TrueFront, true_front
from nas.run import read_run

BUDGETS = (25, 50, 100, 200, 300)
TOL = 0.2  # accuracy points


def _compose(space: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from nas.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="search", overrides=[f"+space={space}", "evaluator=table",
                                                        *overrides])


def run_one(out: str, algo: str, seed: int, space: str, evaluations: int,
            overrides: list[str]) -> tuple[str, str, int, float]:
    """One search run folder (reused when finished); returns its wall time (stored)."""
    from nas.commands.search import run_search
    from nas.run import read_status

    run_dir = Path(out) / f"{algo}_s{seed}"
    timing = run_dir / "bench_time.json"
    if read_status(run_dir).get("state") == "complete" and timing.exists():
        return str(run_dir), algo, seed, json.loads(timing.read_text())["seconds"]
    name, _, sampler = algo.partition("-")  # optuna-gp: algorithm=optuna algorithm.sampler=gp
    cfg = _compose(space, [f"algorithm={name}", f"seed={seed}",
                           *([f"algorithm.sampler={sampler}"] if sampler else []),
                           f"budget.evaluations={evaluations}", "progress=false", *overrides])
    if (run_dir / "archive.sqlite").exists():
        cfg.resume = str(run_dir)
    t = time.perf_counter()
    try:
        run_search(cfg, run_dir)
    except Exception as e:  # noqa: BLE001 - one broken run must not stop the benchmark
        print(f"  {algo} seed {seed} failed: {type(e).__name__}: {e}", flush=True)
        return str(run_dir), algo, seed, float("nan")
    seconds = time.perf_counter() - t
    timing.write_text(json.dumps({"seconds": seconds}))
    return str(run_dir), algo, seed, seconds


def measure(ev: pd.DataFrame, tf: TrueFront, budgets, tol: float, cost: str = "macs") -> dict:
    """Per budget: hv ratio, IGD+, found share; evaluations to 95/99% of the true hv."""
    from pymoo.indicators.igd_plus import IGDPlus

    ev = ev.sort_values("id")
    ok = (ev["status"] == "ok").to_numpy()
    F = np.column_stack([ev["error"].to_numpy(float), ev[cost].to_numpy(float)])
    F[~ok, 0] = 1.0
    true_hv = tf.hypervolume(tf.F)
    igd = IGDPlus(tf.normalise(tf.F))
    out: dict = {}
    curve = np.array([tf.hypervolume(F[: i + 1]) for i in range(len(F))]) / true_hv
    for b in budgets:
        Fb = F[:b]
        out[f"hv@{b}"] = float(curve[min(b, len(curve)) - 1])
        out[f"igd+@{b}"] = float(igd(tf.normalise(Fb)))
        out[f"found@{b}"] = float(np.mean(tf.found(Fb, tol)))
    for q in (0.95, 0.99):
        hit = np.flatnonzero(curve >= q - 1e-12)
        out[f"evals_to_{int(q * 100)}"] = int(hit[0]) + 1 if len(hit) else np.nan
    out["curve"] = curve
    return out


def surrogate_taus(space, table, metric: str, cfg, sizes=(25, 50, 100, 200), seeds=range(5),
                   n_test: int = 1000) -> pd.DataFrame:
    """Held-out Kendall tau of every surrogate model fitted on n random architectures, and
    the CPU seconds each fit took."""
    from nas.algorithms import from_target, surrogate_inputs, to_target
    from nas.surrogate import SURROGATES, make_surrogate, rank_metrics

    inputs = cfg.surrogate.get("inputs", "genes+costs")
    target = cfg.surrogate.get("target", "log")
    G = space.all_canonical(limit=10**7)
    y = 1.0 - table.accuracies(G, metric)
    proxies = proxy_features(space, cfg, G)
    rows = []
    for s in seeds:
        rng = np.random.default_rng(1000 + s)
        perm = rng.permutation(len(G))
        test = perm[-n_test:]
        Xt = surrogate_inputs(space, G[test], inputs, proxies=proxies)
        for n in sizes:
            tr = perm[:n]
            X = surrogate_inputs(space, G[tr], inputs, proxies=proxies)
            for name in SURROGATES:
                start = time.process_time()
                model = make_surrogate(name, seed=s).fit(X, to_target(y[tr], target))
                fit_cpu_s = time.process_time() - start
                pred = from_target(model.predict(Xt), target)
                tau = rank_metrics(y[test], pred)["kendall_tau"]
                rows.append({"seed": s, "n_train": n, "model": name, "tau": tau,
                             "fit_cpu_s": fit_cpu_s, "chosen": getattr(model, "chosen", name)})
    return pd.DataFrame(rows)


def proxy_features(space, cfg, G: np.ndarray):
    """``surrogate.features`` of the config as a feature function, with every network of
    ``G`` computed (or read from ``surrogate.proxy_cache``) first; None without features."""
    from omegaconf import OmegaConf

    from nas.evaluate.proxies import ProxyFeatures

    features = list(cfg.surrogate.get("features") or [])
    if not features:
        return None
    if not cfg.surrogate.get("proxy_cache"):
        raise SystemExit("surrogate.features needs surrogate.proxy_cache=PATH here (one "
                         "cache for every draw and run)")
    pf = ProxyFeatures(space, features, data=OmegaConf.to_container(cfg.data, resolve=True),
                       train=OmegaConf.to_container(cfg.train, resolve=True),
                       cache=cfg.surrogate.proxy_cache,
                       seed=int(cfg.surrogate.get("proxy_seed", 0)),
                       progress=lambda d, t: print(f"\rzero-cost features: {d}/{t}", end="",
                                                   flush=True))
    pf.values(G)
    print(f"\nzero-cost features {', '.join(pf.proxies)}: {pf.computed} networks computed in "
          f"{pf.seconds:.0f} s ({pf.seconds / max(pf.computed, 1):.2f} s each), the rest "
          f"read from {pf.path}")
    return pf


def main(args) -> None:
    from scipy.stats import wilcoxon

    from nas.registry import SPACES
    from nas.table import load_table

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = args.evaluations
    budgets = [b for b in BUDGETS if b <= n] or [n]
    t0 = time.time()
    tasks = [(str(out), a, s, args.space, n, args.overrides)
             for s in args.seeds for a in args.algorithms]
    results = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for r in pool.map(run_one, *zip(*tasks)):
            results.append(r)
    print(f"{len(results)} runs done in {time.time() - t0:.0f} s")

    cfg = _compose(args.space, args.overrides)
    metric = cfg.evaluator.get("metric", "baseline_accuracy")
    table = load_table(cfg.evaluator.source)
    space = SPACES.build(args.space, num_classes=table.num_classes, in_channels=table.in_channels,
                      **{k: v for k, v in cfg.space.items() if k != "_target_"})
    objectives = [str(o) for o in cfg.get("objectives") or ["error", "macs"]]
    cost = objectives[1].removeprefix("min:")
    costs = (load_table(str(cfg.costs.table), key="costs.table")
             if (cfg.get("costs") or {}).get("table") else table)
    tf = true_front(space, table, metric, cost, costs)
    print(f"true front of {table.source} / {metric} x {cost} over {tf.n:,} distinct "
          f"networks ({args.space}): {len(tf.F)} points; accuracy "
          f"{100 * (1 - tf.F[:, 0]).min():.2f}-{100 * (1 - tf.F[:, 0]).max():.2f}%, "
          f"{cost} {tf.F[:, 1].min():.4g}-{tf.F[:, 1].max():.4g}")

    rows = []
    for run_dir, algo, seed, seconds in results:
        if not np.isfinite(seconds):
            continue
        ev = read_run(Path(run_dir)).evaluated
        m = measure(ev, tf, budgets, args.tol, cost)
        rows.append({"algorithm": algo, "seed": seed, "seconds_per_eval": seconds / len(ev),
                     **m})
    df = pd.DataFrame(rows)
    df.drop(columns=["curve"]).to_csv(out / "per_run.csv", index=False)
    cols = [c for c in df.columns if "@" in c or c.startswith("evals_to") or c == "seconds_per_eval"]
    summary = df.groupby("algorithm")[cols].mean()
    order = [a for a in args.algorithms if a in summary.index]
    summary = summary.loc[order]
    pd.set_option("display.width", 200)
    for what, label in (("hv@", "hypervolume ratio to the true front"), ("found@",
                        f"share of true-front points found (within {args.tol} points, no more "
                        f"MACs)"), ("igd+@", "IGD+ (normalised)")):
        sel = [c for c in cols if c.startswith(what)]
        print(f"\nmean {label}, {len(args.seeds)} seeds:")
        print(summary[sel].round(4).to_string())
    print("\nevaluations to reach 95% / 99% of the true hypervolume (mean over seeds that "
          "reach it; n reached) and the algorithm's own seconds per evaluation:")
    for a in order:
        d = df[df["algorithm"] == a]
        parts = []
        for q in (95, 99):
            v = d[f"evals_to_{q}"].dropna()
            parts.append(f"{q}%: {v.mean():.0f} ({len(v)}/{len(d)})" if len(v)
                         else f"{q}%: >{n} (0/{len(d)})")
        print(f"  {a:10s} {'  '.join(parts)}  {d['seconds_per_eval'].mean():.3f} s/eval")
    summary.round(4).to_csv(out / "summary.csv")

    if "surrogate" in order:
        print("\nWilcoxon signed-rank, surrogate > comparator on the hypervolume ratio (paired "
              "by seed, one-sided p):")
        sur = df[df["algorithm"] == "surrogate"].set_index("seed")
        for a in order:
            if a == "surrogate":
                continue
            other = df[df["algorithm"] == a].set_index("seed")
            common = sur.index.intersection(other.index)
            ps = []
            for b in budgets:
                d = sur.loc[common, f"hv@{b}"] - other.loc[common, f"hv@{b}"]
                p = wilcoxon(d, alternative="greater").pvalue if np.any(d != 0) else 1.0
                ps.append(f"@{b}: {p:.2g}")
            print(f"  vs {a:10s} " + "  ".join(ps))

    if args.taus:
        t = surrogate_taus(space, table, metric, cfg, seeds=range(args.taus))
        t.to_csv(out / "taus.csv", index=False)
        print(f"\nheld-out Kendall tau of each surrogate (fitted on n random networks, tested "
              f"on 1,000 others; mean over {args.taus} draws):")
        print(t.pivot_table(index="model", columns="n_train", values="tau").round(3)
              .to_string())
        print("\nCPU seconds per fit (the same fits; median over the draws):")
        print(t.pivot_table(index="model", columns="n_train", values="fit_cpu_s",
                            aggfunc="median").round(2).to_string())
        chosen = t[t["model"] == "adaptive"].groupby("n_train")["chosen"].agg(
            lambda c: ", ".join(sorted(set(c))))
        print("adaptive chose: " + "; ".join(f"n={k}: {v}" for k, v in chosen.items()))

    _plot(df, order, n, out / "curves.png")
    print(f"\nwrote {out / 'summary.csv'}, {out / 'per_run.csv'}, {out / 'curves.png'}")


def _plot(df: pd.DataFrame, order: list[str], n: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for a in order:
        cs = np.array([c[:n] for c in df[df["algorithm"] == a]["curve"] if len(c) >= n])
        if not len(cs):
            continue
        x = np.arange(1, n + 1)
        q1, med, q3 = np.percentile(cs, [25, 50, 75], axis=0)
        line, = ax.plot(x, med, label=f"{a} ({len(cs)} seeds)")
        ax.fill_between(x, q1, q3, color=line.get_color(), alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("hypervolume / true front's")
    ax.set_ylim(0.7, 1.005)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("median and quartiles over seeds")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
