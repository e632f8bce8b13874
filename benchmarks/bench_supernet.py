"""Supernet evaluation against from-scratch training: cost per candidate and ranking fidelity.

    python benchmarks/bench_supernet.py [--checkpoint runs/supernet/.../checkpoints/last.ckpt]
        [--n 30] [--calib 2 5 10] [--val-images 500 1000] [--train proxy] [--seeds 0 1]
        [--calib-seed S] [--out runs/bench_supernet] [--tag NAME] [--summary] [overrides ...]

Samples ``--n`` random architectures of the search config's space (seeded; with a checkpoint
the space must be the supernet's), then

* with ``--checkpoint``, scores each with inherited weights (``nas.supernet.InheritedScorer``,
  the code behind ``evaluator=supernet``) for every ``--calib`` number of BN-calibration
  batches, timing each score (extraction + calibration + validation); the accuracy on
  ``--val-images`` seeded random validation images is recorded too, from the same pass;
* trains each from scratch with ``--train`` (a conf/train/ recipe, the search's proxy by
  default) once per ``--seeds`` entry, timing each training (``nas.train.train_spec``, the
  code behind ``evaluator=local``);

and prints seconds per candidate side by side, the Kendall tau between supernet accuracy and
the mean from-scratch accuracy, and the from-scratch repeatability (tau between the first
two seeds), the supernet scores' agreement with each other (``--calib-seed`` scores on
other calibration images) and, per gene kind (blocks, mean kernel, mean expansion, SE
stages, MACs), its Kendall tau with each ranking. Rows go to ``--out/rows-TAG.csv`` so an
interrupted run keeps what it measured; the summary reads every ``--out/rows*.csv``, so
processes with different ``--tag`` (say one per seed, or one for the supernet) can measure
side by side and ``--summary`` alone prints the result. ``--floor`` measures the convolution throughput of this machine (a dense 3x3
convolution, 64 channels, 32x32, batch 64, forward, one thread, in CPU time) before and
after the supernet scores and compares each score's time (CPU time of the one-thread
scorer, which load from other processes does not inflate, and wall time) with its compute
floor, (calibration + validation images) x 2 x MACs at the best measured throughput.
Scores run on one thread (``torch.set_num_threads(1)``). Extra arguments are Hydra
overrides of the search config (data, space, train; not right after a list option such as
``--calib``, which would take them);
calibration batches have the proxy recipe's batch size.
"""

from __future__ import annotations

import argparse
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from scipy.stats import kendalltau

from nas.config import CONF_DIR
from nas.cost import totals
from nas.data import make_datamodule
from nas.supernet import InheritedScorer, check_space
from nas.train import train_spec
from search_spaces import format_genome


def conv_flops_per_second(repeat: int = 10) -> float:
    """FLOP/s of a dense 3x3 convolution (64 -> 64 channels, 32x32, batch 64) in eval
    mode, one thread, best of ``repeat`` calls after a warm-up, timed in CPU time (as the
    scores are, so that other processes on the machine do not change the ratio)."""
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False).eval()
    x = torch.randn(64, 64, 32, 32)
    flops = 2 * 64 * 64 * 9 * 32 * 32 * 64
    best = float("inf")
    with torch.no_grad():
        conv(x)
        for _ in range(repeat):
            t = time.process_time()
            conv(x)
            best = min(best, time.process_time() - t)
    return flops / best


def gene_kinds(space, genomes) -> pd.DataFrame:
    """Per architecture (a ``format_genome`` string of the mobile space): its number of
    blocks, mean depthwise kernel, mean expansion ratio and number of stages with SE."""
    rows = {}
    for key in genomes:
        _, stages, _ = space.parts(space.values(space.parse_genome(key)))
        blocks = [b for stage in stages for b in stage]
        rows[key] = {"blocks": len(blocks), "kernel": np.mean([b.k for b in blocks]),
                     "expansion": np.mean([b.e for b in blocks]),
                     "SE stages": sum(stage[0].se > 0 for stage in stages)}
    return pd.DataFrame.from_dict(rows, orient="index")


def summary(out: Path, calib: list[int], val_images: list[int], train: str,
            seeds: list[int], space=None) -> None:
    files = sorted(out.glob("rows*.csv"))
    if not files:
        print(f"no rows in {out}")
        return
    df = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    df = df.drop_duplicates(["genome", "method"], keep="last")
    acc = df.pivot(index="genome", columns="method", values="accuracy")
    cols = [c for c in ("seconds", "cpu_seconds") if c in df]
    sec = df.groupby("method")[cols].agg(["mean", "median", "count"])
    print(f"\n{len(acc)} architectures; seconds per candidate, wall (and CPU, one thread) "
          f"mean / median, n:")
    for m, r in sec.iterrows():
        cpu = (f"   CPU {r['cpu_seconds', 'mean']:7.2f} / {r['cpu_seconds', 'median']:7.2f}"
               if "cpu_seconds" in cols and r["cpu_seconds", "count"] else "")
        print(f"  {m:<16} {r['seconds', 'mean']:7.2f} / {r['seconds', 'median']:7.2f}  "
              f"({int(r['seconds', 'count'])}){cpu}")
    tp = out / "throughput.csv"
    if tp.exists() and "macs" in df:
        flops = pd.read_csv(tp)["flops_per_second"]
        rate = flops.max()
        print(f"conv throughput: {rate / 1e9:.2f} GFLOP/s (best of {len(flops)} measurements, "
              f"range {flops.min() / 1e9:.2f}-{rate / 1e9:.2f})")
        sn = df[df.method.str.startswith("supernet_")].copy()
        sn["floor"] = (sn.calib_images + sn.val_images) * 2 * sn.macs / rate
        # CPU time of the (one-thread) scorer: what an idle core would take, whatever
        # else loads the machine; wall time as well.
        for m, g in sn.groupby("method"):
            for col in ("cpu_seconds", "seconds"):
                if col not in g or g[col].isna().all():
                    continue
                ratio = g[col] / g.floor
                print(f"  {m:<16} MACs {g.macs.mean() / 1e6:.1f}M mean, "
                      f"{int(g.calib_images.iloc[0])} + {int(g.val_images.iloc[0])} images, "
                      f"{'CPU' if col == 'cpu_seconds' else 'wall'}: {g[col].mean():.2f} s "
                      f"against a floor of {g.floor.mean():.2f} s (ratio median "
                      f"{ratio.median():.2f}, range {ratio.min():.2f}-{ratio.max():.2f})")
    scratch = [f"{train}_s{s}" for s in seeds if f"{train}_s{s}" in acc]
    if not scratch:
        return
    full = acc[scratch].dropna()
    ref = full.mean(axis=1)
    print(f"from scratch ({train}, seeds {seeds}): {len(full)} architectures, mean accuracy "
          f"{ref.mean():.4f} (range {ref.min():.4f}-{ref.max():.4f})")
    if len(scratch) >= 2:
        rep = kendalltau(full[scratch[0]], full[scratch[1]]).statistic
        print(f"from-scratch repeatability ({scratch[0]} vs {scratch[1]}): tau {rep:.3f}")
    sn = df[df.method.str.startswith("supernet_")]
    macs = sn.groupby("genome")["macs"].first() if "macs" in sn and len(sn) else None
    if macs is not None:
        both = pd.concat([macs, ref], axis=1, join="inner").dropna()
        tau = kendalltau(both.iloc[:, 0], both.iloc[:, 1]).statistic
        print(f"  MACs alone (no training): tau vs mean {tau:.3f}, n={len(both)}")
    sns = [m for m in acc if m.startswith("supernet_c")]
    if len(sns) > 1:  # the scores' own repeatability: calibration size and images
        print("  supernet scores against each other (Kendall tau):")
        for a, b in combinations(sns, 2):
            both = acc[[a, b]].dropna()
            print(f"    {a} vs {b}: {kendalltau(both[a], both[b]).statistic:.3f}, "
                  f"n={len(both)}")
    if space is not None:  # which gene kinds each ranking follows
        kinds = gene_kinds(space, ref.index)
        if macs is not None:
            kinds["MACs"] = macs
        cols = {"from scratch": ref, **{m: acc[m] for m in sns}}
        table = pd.DataFrame({c: {k: kendalltau(kinds[k], v.reindex(kinds.index),
                                                nan_policy="omit").statistic
                                  for k in kinds} for c, v in cols.items()})
        print("  Kendall tau of each gene kind (per architecture: blocks, mean kernel, mean "
              "expansion, SE stages) with each accuracy:")
        print("    " + table.round(2).to_string().replace("\n", "\n    "))
    # supernet_c<calibration batches>[_ft<fine-tuning steps>][_cs<calibration seed>]
    methods = sorted((int(m.split("_")[1][1:]), m) for m in sns)
    for c, m in methods:
        if c not in calib:
            continue
        sub = df[df.method == m].set_index("genome")
        if "val_loss" in sub and sub.val_loss.notna().all():
            sub = sub.assign(neg_loss=-sub.val_loss)  # ranks like accuracy: higher is better
        for col, label in [("accuracy", "all"), *[(f"accuracy_v{v}", str(v))
                                                  for v in val_images],
                           *([("neg_loss", "loss")] if "neg_loss" in sub else [])]:
            if col not in sub:
                continue
            both = pd.concat([sub[col], ref], axis=1, join="inner").dropna()
            tau = kendalltau(both.iloc[:, 0], both.iloc[:, 1]).statistic
            taus = [kendalltau(pd.concat([sub[col], full[s]], axis=1, join="inner").dropna()
                               .iloc[:, 0], full[s].reindex(both.index)).statistic
                    for s in scratch]
            same = pd.concat([sub[col], sub["accuracy"]], axis=1, join="inner").dropna()
            own = kendalltau(same.iloc[:, 0], same.iloc[:, 1]).statistic
            tags = dict((t[:2], t[2:]) for t in m.split("_")[2:])
            tuned = (f", {tags['ft']} fine-tuning steps" if "ft" in tags else "") + \
                (f", calibration seed {tags['cs']}" if "cs" in tags else "")
            by = "-val loss, all images" if col == "neg_loss" else f"{label:>4} val images"
            mean = (f"mean val loss {-both.iloc[:, 0].mean():.4f}" if col == "neg_loss" else
                    f"mean accuracy {both.iloc[:, 0].mean():.4f}")
            print(f"  supernet, {c:3d} calibration batches{tuned}, {by}: tau vs "
                  f"mean {tau:.3f} (vs each seed {', '.join(f'{t:.3f}' for t in taus)}; "
                  f"vs its all-image score {own:.3f}), n={len(both)}, {mean}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="a python -m nas.supernet checkpoint (else from "
                                        "scratch only)")
    p.add_argument("--n", type=int, default=30, help="random architectures")
    p.add_argument("--calib", type=int, nargs="*", default=[2, 5, 10],
                   help="BN-calibration batch counts to compare")
    p.add_argument("--val-images", type=int, nargs="*", default=[],
                   help="also score on N random validation images (same pass)")
    p.add_argument("--finetune", type=int, default=0,
                   help="fine-tuning steps before each supernet score (evaluator."
                        "finetune_steps); methods are then named supernet_cC_ftN")
    p.add_argument("--calib-seed", type=int, default=0,
                   help="picks the calibration batches (the same for every subnet); methods "
                        "with a seed other than 0 are named supernet_cC_csS")
    p.add_argument("--train", default="proxy", help="from-scratch recipe (conf/train/)")
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1], help="from-scratch seeds")
    p.add_argument("--out", type=Path, default=Path("runs/bench_supernet"))
    p.add_argument("--tag", default="", help="rows file: --out/rows-TAG.csv")
    p.add_argument("--summary", action="store_true", help="only print the summary")
    p.add_argument("--reverse", action="store_true",
                   help="measure the architectures last to first (a second process on the "
                        "same --out meets the first half-way)")
    p.add_argument("--floor", action="store_true",
                   help="measure the conv throughput and compare scores with the floor")
    p.add_argument("overrides", nargs="*", help="Hydra overrides of the search config")
    args = p.parse_args()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("search", overrides=["+space=mobile", f"train={args.train}",
                                           *args.overrides])
        proxy = OmegaConf.to_container(compose("search", overrides=["+space=mobile",
                                                                     *args.overrides]).train,
                                       resolve=True)
    if args.summary:
        # the space's genes only (blocks, kernels, ...): its head's classes do not matter
        summary(args.out, args.calib, args.val_images, args.train, args.seeds,
                space=instantiate(OmegaConf.to_container(cfg.space, resolve=True),
                                  _convert_="all"))
        return
    torch.set_num_threads(1)

    data = OmegaConf.to_container(cfg.data, resolve=True)
    train = OmegaConf.to_container(cfg.train, resolve=True)
    dm = make_datamodule(data["name"], **{k: v for k, v in data.items() if k != "name"})
    space_cfg = OmegaConf.to_container(cfg.space, resolve=True)
    space = instantiate(space_cfg, num_classes=dm.num_classes, in_channels=dm.in_channels,
                        _convert_="all")
    scorers = {c: InheritedScorer(args.checkpoint, data=data, train=proxy, calib_batches=c,
                                  finetune_steps=args.finetune, calib_seed=args.calib_seed)
               for c in (args.calib if args.checkpoint else [])}
    ft = f"_ft{args.finetune}" if args.finetune else ""
    ft += f"_cs{args.calib_seed}" if args.calib_seed else ""
    for scorer in scorers.values():
        check_space(scorer.supernet, space, args.checkpoint)
    genomes = space.sample(args.n, np.random.default_rng(2024))
    args.out.mkdir(parents=True, exist_ok=True)
    rows_path = args.out / (f"rows-{args.tag}.csv" if args.tag else "rows.csv")
    rows = pd.read_csv(rows_path).to_dict("records") if rows_path.exists() else []

    def measured() -> set[tuple[str, str]]:
        """What any process writing into --out has measured so far."""
        files = [f for f in args.out.glob("rows*.csv") if f != rows_path]
        done = [pd.read_csv(f)[["genome", "method"]] for f in files]
        return ({(r["genome"], r["method"]) for r in rows} |
                {tuple(x) for d in done for x in d.itertuples(index=False)})

    def add(row: dict) -> None:
        rows.append(row)
        tmp = rows_path.with_suffix(".tmp")  # replaced in one step: readers never see half
        pd.DataFrame(rows).to_csv(tmp, index=False)
        tmp.replace(rows_path)

    def throughput() -> None:
        if args.floor:
            path = args.out / "throughput.csv"
            old = pd.read_csv(path) if path.exists() else pd.DataFrame()
            new = pd.DataFrame([{"flops_per_second": conv_flops_per_second()}])
            pd.concat([old, new]).to_csv(path, index=False)

    throughput()
    sha = next(iter(scorers.values())).sha256[:16] if scorers else "-"
    print(f"checkpoint {args.checkpoint} (sha256 {sha}), {args.n} architectures, "
          f"supernet scores with {list(scorers)} calibration batches of "
          f"{proxy['batch_size']}, from scratch: train={args.train} seeds {args.seeds}",
          flush=True)
    order = range(len(genomes) - 1, -1, -1) if args.reverse else range(len(genomes))
    for i in order:
        g = genomes[i]
        key = format_genome(g)
        seen = measured()
        spec = space.decode(g)
        for c, scorer in scorers.items():
            method = f"supernet_c{c}{ft}"
            if (key, method) in seen:
                continue
            t, cpu = time.perf_counter(), time.process_time()
            s = scorer.score(g, per_image=True)
            row = {"genome": key, "method": method, "accuracy": s["accuracy"],
                   "seconds": time.perf_counter() - t,
                   "cpu_seconds": time.process_time() - cpu, "arch_id": spec.name,
                   "calib_images": s["calib_images"], "val_images": s["val_images"],
                   "macs": totals(spec)[0], "val_loss": s["val_loss"]}
            # a seeded random subset: the split's order need not be random (e.g. by class)
            pick = np.random.default_rng(0).permutation(len(s["correct"]))
            row.update({f"accuracy_v{v}": float(s["correct"][pick[:v]].mean())
                        for v in args.val_images})
            add(row)
        for seed in args.seeds:
            method = f"{args.train}_s{seed}"
            if (key, method) in measured():
                continue
            t, cpu = time.perf_counter(), time.process_time()
            out = train_spec(spec, data=data, train=train, seed=seed)
            add({"genome": key, "method": method, "accuracy": out["accuracy"],
                 "seconds": time.perf_counter() - t,
                 "cpu_seconds": time.process_time() - cpu, "arch_id": spec.name})
        print(f"  {i + 1}/{args.n} {spec.name}", flush=True)
    throughput()
    summary(args.out, args.calib, args.val_images, args.train, args.seeds, space=space)


if __name__ == "__main__":
    main()
