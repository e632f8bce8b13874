"""Supernet evaluation against from-scratch training: cost per candidate and ranking fidelity.

    python benchmarks/bench_supernet.py --checkpoint runs/supernet/.../checkpoints/last.ckpt
        [--n 30] [--calib 2 5 10] [--train proxy] [--seeds 0 1] [--out runs/bench_supernet]
        [overrides ...]

Samples ``--n`` random architectures of the checkpoint's space (seeded), then

* scores each with inherited weights (``nas.supernet.InheritedScorer``, the code behind
  ``evaluator=supernet``) for every ``--calib`` number of BN-calibration batches, timing
  each score (extraction + calibration + validation);
* trains each from scratch with ``--train`` (a conf/train/ recipe, the search's proxy by
  default) once per ``--seeds`` entry, timing each training (``nas.train.train_spec``, the
  code behind ``evaluator=local``);

and prints seconds per candidate side by side, the Kendall tau between supernet accuracy and
the mean from-scratch accuracy, and the from-scratch repeatability (tau between the first
two seeds). Rows go to ``--out/rows.csv`` so an interrupted run keeps what it measured.
Extra arguments are Hydra overrides of the search config (data, train).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from scipy.stats import kendalltau

from nas.search import CONF_DIR
from nas.supernet import InheritedScorer, load_supernet
from nas.train import train_spec
from search_spaces import format_genome


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a python -m nas.supernet checkpoint")
    p.add_argument("--n", type=int, default=30, help="random architectures")
    p.add_argument("--calib", type=int, nargs="+", default=[2, 5, 10],
                   help="BN-calibration batch counts to compare")
    p.add_argument("--train", default="proxy", help="from-scratch recipe (conf/train/)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="from-scratch seeds")
    p.add_argument("--out", type=Path, default=Path("runs/bench_supernet"))
    p.add_argument("overrides", nargs="*", help="Hydra overrides of the search config")
    args = p.parse_args()
    torch.set_num_threads(1)

    supernet, sha = load_supernet(args.checkpoint)
    space = supernet.space
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("search", overrides=["+space=mobile", f"train={args.train}",
                                           *args.overrides])
    data = OmegaConf.to_container(cfg.data, resolve=True)
    train = OmegaConf.to_container(cfg.train, resolve=True)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        proxy = OmegaConf.to_container(compose("search", overrides=["+space=mobile",
                                                                     *args.overrides]).train,
                                       resolve=True)
    genomes = space.sample(args.n, np.random.default_rng(2024))
    args.out.mkdir(parents=True, exist_ok=True)
    rows_path = args.out / "rows.csv"
    done = pd.read_csv(rows_path) if rows_path.exists() else pd.DataFrame()
    rows = done.to_dict("records")
    seen = {(r["genome"], r["method"]) for r in rows}

    def add(row: dict) -> None:
        rows.append(row)
        pd.DataFrame(rows).to_csv(rows_path, index=False)

    scorers = {c: InheritedScorer(args.checkpoint, data=data, train=proxy, calib_batches=c)
               for c in args.calib}
    print(f"checkpoint {args.checkpoint} (sha256 {sha[:16]}), {args.n} architectures, "
          f"supernet scores with {args.calib} calibration batches of {proxy['batch_size']}, "
          f"from scratch: train={args.train} seeds {args.seeds}", flush=True)
    for i, g in enumerate(genomes):
        key = format_genome(g)
        spec = space.decode(g)
        for c, scorer in scorers.items():
            method = f"supernet_c{c}"
            if (key, method) in seen:
                continue
            t = time.perf_counter()
            s = scorer.score(g)
            add({"genome": key, "method": method, "accuracy": s["accuracy"],
                 "seconds": time.perf_counter() - t, "arch_id": spec.name})
        for seed in args.seeds:
            method = f"{args.train}_s{seed}"
            if (key, method) in seen:
                continue
            t = time.perf_counter()
            out = train_spec(spec, data=data, train=train, seed=seed)
            add({"genome": key, "method": method, "accuracy": out["accuracy"],
                 "seconds": time.perf_counter() - t, "arch_id": spec.name})
        print(f"  {i + 1}/{args.n} {spec.name}", flush=True)

    df = pd.DataFrame(rows)
    acc = df.pivot(index="genome", columns="method", values="accuracy")
    sec = df.groupby("method")["seconds"].agg(["mean", "median"])
    scratch = [f"{args.train}_s{s}" for s in args.seeds]
    ref = acc[scratch].mean(axis=1)
    print(f"\n{len(acc)} architectures; seconds per candidate (mean / median):")
    for m, r in sec.iterrows():
        print(f"  {m:<14} {r['mean']:7.2f} / {r['median']:7.2f}")
    print(f"Kendall tau of supernet accuracy vs mean {args.train} accuracy "
          f"({len(args.seeds)} seeds):")
    for c in args.calib:
        tau = kendalltau(acc[f"supernet_c{c}"], ref).statistic
        print(f"  {c:3d} calibration batches: tau {tau:.3f}, mean accuracy "
              f"{acc[f'supernet_c{c}'].mean():.3f}")
    if len(scratch) >= 2:
        rep = kendalltau(acc[scratch[0]], acc[scratch[1]]).statistic
        print(f"from-scratch repeatability ({scratch[0]} vs {scratch[1]}): tau {rep:.3f}; "
              f"mean accuracy {ref.mean():.3f}")


if __name__ == "__main__":
    main()
