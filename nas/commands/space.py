"""``python -m nas.space``: look inside a search space.

    python -m nas.space mobile                       # layout: genes, bounds, size, ancestors
    python -m nas.space mobile --sample 3 --seed 1   # random canonical genomes, decoded
    python -m nas.space residual_imagenet --ancestor resnet50
    python -m nas.space inception --genome 0-2-2-...  # one genome, decoded and costed
    python -m nas.space mobile_imagenet --stats 10000  # size, min/median/max MACs and params

``NAME`` is a space (:data:`nas.registry.SPACES`) or a preset file ``conf/space/NAME.yaml``;
a space with a preset file of its own name uses it, so the CLI sees what Hydra runs see.
``--config KEY=VALUE`` overrides the layout config (OmegaConf dot-list syntax, e.g.
``--config depths=[2,3] --config se=[0]``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from nas import registry
from nas.commands import run
from nas.cost import human, totals
from nas.registry import SPACES, space_presets
from search_spaces import SearchSpace, format_genome


def _describe_genome(space: SearchSpace, genome: tuple[int, ...]) -> str:
    spec = space.decode(genome)
    macs, params, _ = totals(spec)
    return (f"genome  {format_genome(space.canonical(genome))}\n"
            f"id      {spec.name}\n"
            f"spec    {spec.to_string()}\n"
            f"cost    {human(macs)} MACs, {human(params)} params ({macs:,} MACs, "
            f"{params:,} params)")


def stats(space: SearchSpace, n: int, *, seed: int = 0, resolution: int | None = None,
          progress: bool = True) -> dict[str, Any]:
    """MACs and params of ``n`` random genomes with the resolution gene pinned to
    ``resolution`` (default: the space's default resolution)."""
    res = space.default_resolution if resolution is None else resolution
    genomes = space.sample(n, np.random.default_rng(seed))
    if "resolution" in {g.name for g in space.genes}:
        genomes[:, space.gene("resolution").position] = space.index_of("resolution", res)
    macs = np.empty(n, dtype=np.int64)
    params = np.empty(n, dtype=np.int64)
    for i, g in enumerate(tqdm(genomes, desc=f"{space.name} stats", unit="arch",
                               disable=not progress, file=sys.stderr)):
        macs[i], params[i], _ = totals(space.decode(g))
    return {"n": n, "seed": seed, "resolution": res, "size": space.size(),
            "distinct": len({tuple(g) for g in genomes.tolist()}),
            "macs": (int(macs.min()), float(np.median(macs)), int(macs.max())),
            "params": (int(params.min()), float(np.median(params)), int(params.max()))}


def enumerate_frame(space: SearchSpace, *, progress: bool = True) -> pd.DataFrame:
    """One row per genome of a finite space: genome, arch_id, canonical genome, spec,
    MACs, params (equivalent genomes share arch_id, canonical genome and spec).
    ValueError naming the size when the space is too large to list."""
    G = space.enumerate_genomes()
    C = space.canonical_batch(G)
    uniq, inverse = np.unique(C, axis=0, return_inverse=True)
    rows = []
    for g in tqdm(uniq, desc=f"{space.name} networks", unit="net", disable=not progress,
                  file=sys.stderr):
        spec = space.decode(g)
        macs, params, _ = totals(spec)
        rows.append((spec.name, format_genome(g), spec.to_string(), macs, params))
    per = [rows[i] for i in np.asarray(inverse).reshape(-1)]
    return pd.DataFrame({"genome": [format_genome(g) for g in G],
                         "arch_id": [r[0] for r in per], "canonical": [r[1] for r in per],
                         "spec": [r[2] for r in per], "macs": [r[3] for r in per],
                         "params": [r[4] for r in per]})


def _stats_text(space: SearchSpace, s: dict[str, Any]) -> str:
    rows = [f"{space.name} space: {s['size']:,} architectures ({s['size']:.3e}), "
            f"{space.n_var} genes",
            f"{s['n']:,} samples (seed {s['seed']}, {s['distinct']:,} distinct) at resolution "
            f"{s['resolution']}, {space.num_classes} classes:",
            f"{'':8s}{'min':>12s}{'median':>12s}{'max':>12s}"]
    for key in ("macs", "params"):
        lo, med, hi = s[key]
        rows.append(f"{key:8s}{human(lo):>12s}{human(med):>12s}{human(hi):>12s}"
                    f"   ({lo:,} / {med:,.0f} / {hi:,})")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m nas.space",
        description="Inspect a search space: its genome layout and size, random canonical "
                    "genomes, a given genome or ancestor decoded to a spec with MACs and "
                    "params, or MAC/parameter statistics over random samples.",
        epilog="Genomes are dash-separated gene values (indices into each gene's choices), "
               "as printed. Spaces: " + ", ".join(SPACES) + "; presets: "
               + (", ".join(space_presets()) or "none") + ".")
    p.add_argument("name", help="search space or preset (conf/space/NAME.yaml)")
    p.add_argument("--sample", type=int, metavar="K", help="print K random canonical genomes")
    p.add_argument("--seed", type=int, default=0, help="random seed for --sample/--stats "
                   "(default 0)")
    p.add_argument("--genome", action="append", default=[], metavar="G",
                   help="decode genome G (dash-separated, e.g. 1-0-2-...); repeatable")
    p.add_argument("--ancestor", action="append", default=[], metavar="BASELINE",
                   help="decode the genome of a baseline the space contains (e.g. resnet50)")
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                   help="override a layout config key, e.g. depths=[2,3]; repeatable")
    p.add_argument("--classes", type=int, metavar="N",
                   help="number of classes (default 10, or 1000 for ImageNet-size configs)")
    p.add_argument("--channels", type=int, metavar="C", help="input channels (default 3)")
    p.add_argument("--stats", type=int, metavar="N", help="space size and min/median/max "
                   "MACs and params over N random samples at the default resolution")
    p.add_argument("--resolution", type=int, help="resolution for --stats (default: the "
                   "largest choice)")
    p.add_argument("--enumerate", action="store_true",
                   help="list every genome of a finite space (genome, arch_id, canonical "
                        "genome, spec, MACs, params) as CSV on stdout or into --csv")
    p.add_argument("--csv", metavar="FILE", help="with --enumerate: write the CSV here")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar for --stats / --enumerate")
    args = p.parse_args(argv)
    for opt in ("sample", "stats", "classes", "channels"):
        v = getattr(args, opt)
        if v is not None and v < (0 if opt == "sample" else 1):
            p.error(f"--{opt} must be a positive integer, got {v}")

    try:
        space = registry.space(args.name, args.config, num_classes=args.classes,
                               in_channels=args.channels)
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        genomes = [space.parse_genome(g) for g in args.genome]
        genomes += [space.ancestor_genome(a) for a in args.ancestor]
        if args.resolution is not None:
            if "resolution" in {g.name for g in space.genes}:
                space.index_of("resolution", args.resolution)
            elif args.resolution not in space.resolutions:
                raise ValueError(f"resolution = {args.resolution} is not a choice of the "
                                 f"{space.name} space ({', '.join(map(str, space.resolutions))})")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.csv and not args.enumerate:
        p.error("--csv goes with --enumerate")
    if args.enumerate:
        try:
            df = enumerate_frame(space, progress=not args.no_progress)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if args.csv:
            df.to_csv(args.csv, index=False)
        else:
            df.to_csv(sys.stdout, index=False)
        print(f"{space.name}: {len(df):,} genomes, {df['arch_id'].nunique():,} distinct "
              f"networks" + (f" -> {args.csv}" if args.csv else ""), file=sys.stderr)
        return 0

    shown = False
    for g in genomes:
        print(_describe_genome(space, g) + "\n")
        shown = True
    if args.sample:
        for g in space.sample(args.sample, np.random.default_rng(args.seed)):
            print(_describe_genome(space, tuple(int(x) for x in g)) + "\n")
        shown = True
    if args.stats:
        s = stats(space, args.stats, seed=args.seed, resolution=args.resolution,
                  progress=not args.no_progress)
        print(_stats_text(space, s))
        shown = True
    if not shown:
        print(space.describe())
        anc = space.ancestors()
        if anc:
            print("ancestors:")
            for k, g in anc.items():
                print(f"  {k}: {format_genome(g)}")
    return 0


def entry() -> None:
    """``python -m nas.space``."""
    sys.exit(run(main))
