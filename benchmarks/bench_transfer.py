"""Transfer learning on a small target task: frozen features vs fine-tuning vs scratch.

    python benchmarks/bench_transfer.py [--arch resnet20] [--seeds 0 1 2] [--per-class 40]

The task split, defined here from scikit-learn's digits (written once as an image-folder
tree under ``--root``, read back by ``data=imagefolder`` like any user data set):

* source: digits 0-4, every image (80% train / 20% test);
* target: digits 5-9, classes the source never saw, ``--per-class`` training images each
  (200 by default) and every other image of those classes as the test split.

One network is pre-trained on the source (``train=full`` recipe, seed 0), then trained on the
target with the same recipe four ways, for each seed: from scratch; frozen features
(``init=`` + ``freeze=all-but-head``: only a new 5-way classifier learns); fine-tuning
everything from the source weights at the recipe's learning rate; and fine-tuning at a tenth
of it. Every run is ``nas.train.train_spec`` (the path ``python -m nas.train`` takes) on one
thread; the table gives the target test accuracy (mean and spread over seeds).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from nas.train import TrainConfig, train_spec
from search_spaces import baselines

RECIPE = {"epochs": 10, "batch_size": 32, "lr": 0.1, "warmup_epochs": 1.0,
          "label_smoothing": 0.1, "num_threads": 1}


def write_split(root: Path, per_class: int, seed: int = 0) -> tuple[Path, Path]:
    """Digits 0-4 -> root/source, digits 5-9 -> root/target (see the module docstring)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    for part, classes in (("source", range(5)), ("target", range(5, 10))):
        for c in classes:
            idx = rng.permutation(np.flatnonzero(digits.target == c))
            n_train = per_class if part == "target" else int(0.8 * len(idx))
            for split, chosen in (("train", idx[:n_train]), ("test", idx[n_train:])):
                d = root / part / split / str(c)
                d.mkdir(parents=True, exist_ok=True)
                for i in chosen:
                    img = np.round(digits.images[i] * (255 / 16)).astype(np.uint8)
                    Image.fromarray(img).resize((32, 32), Image.Resampling.BILINEAR).save(
                        d / f"{i}.png")
    return root / "source", root / "target"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="resnet20")
    p.add_argument("--resolution", type=int, default=16)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--per-class", type=int, default=40)
    p.add_argument("--root", type=Path, default=Path("/tmp/nas_transfer_digits"))
    args = p.parse_args()

    source, target = write_split(args.root, args.per_class)
    data = {"name": "imagefolder", "size": 32, "augment": False}
    spec_src = baselines.get(args.arch, num_classes=5, resolution=args.resolution)
    t0 = time.perf_counter()
    pre = train_spec(spec_src, data={**data, "root": str(source)}, train=RECIPE, seed=0,
                     test=True, run_dir=args.root / "runs" / "source")
    print(f"pre-trained {args.arch} on digits 0-4: test accuracy "
          f"{pre['test_accuracy']:.4f} ({time.perf_counter() - t0:.0f} s)")
    spec = baselines.get(args.arch, num_classes=5, resolution=args.resolution)
    ways = {"scratch": {}, "frozen features": {"init": pre["checkpoint"],
                                               "freeze": "all-but-head"},
            "fine-tune": {"init": pre["checkpoint"]},
            "fine-tune lr/10": {"init": pre["checkpoint"], "lr": RECIPE["lr"] / 10}}
    rows = []
    for way, extra in ways.items():
        accs, secs = [], []
        for seed in args.seeds:
            out = train_spec(spec, data={**data, "root": str(target)},
                             train=TrainConfig(**{**RECIPE, **extra}), seed=seed, test=True)
            accs.append(out["test_accuracy"])
            secs.append(out["train_seconds"])
        rows.append((way, statistics.mean(accs), min(accs), max(accs), statistics.mean(secs)))
        print(f"{way:16s} test acc {rows[-1][1]:.4f} (min {rows[-1][2]:.4f}, max "
              f"{rows[-1][3]:.4f}) over seeds {args.seeds}; {rows[-1][4]:.1f} s per run")
    print("\n| target training | test accuracy, mean (min-max) | seconds per run |")
    print("| --- | --- | ---: |")
    for way, m, lo, hi, s in rows:
        print(f"| {way} | {m:.4f} ({lo:.4f}-{hi:.4f}) | {s:.1f} |")


if __name__ == "__main__":
    main()
