"""CPU seconds per zero-cost proxy on random NAS-Bench-201 CIFAR-10 networks and on the
largest one (every edge conv3x3), one thread, at each proxy's batch size (`nas.zero_cost.BATCH`).

    python benchmarks/bench_proxy_time.py --networks 10

Gaussian images and random labels (the time does not depend on the values); the build is
not timed.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
import torch

from nas.build import build
from nas.registry import SPACES
from nas.zero_cost import BATCH, PROXIES, ProxyError, measure, scores


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python benchmarks/bench_proxy_time.py",
        description="CPU seconds per proxy on random NAS-Bench-201 CIFAR-10 networks and on "
                    "the largest one (every edge conv3x3), one thread, the batch sizes of "
                    "BATCH (Gaussian images, random labels: the time does not depend on the "
                    "values); the build is not timed.")
    p.add_argument("--networks", type=int, default=10, help="random networks to time")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample and the builds")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    space = SPACES.build("nb201", num_classes=10, in_channels=3)
    gen = torch.Generator().manual_seed(args.seed)

    def seconds(name: str, genome: Any) -> float:
        spec = space.decode(genome)
        net = build(spec, seed=args.seed)
        x = torch.randn((BATCH[name], *spec.input), generator=gen)
        y = torch.randint(0, 10, (BATCH[name],), generator=gen)
        start = time.process_time()
        try:
            if name in ("params", "macs"):
                scores((name,), spec, x, y, seed=args.seed)
            else:
                measure((name,), net, x, y, seed=args.seed)
        except ProxyError:
            pass
        return time.process_time() - start

    sample = space.sample(args.networks, np.random.default_rng(args.seed))
    print(f"{'proxy':10s} {'batch':>5s} {'median s':>9s} {'max s':>7s} {'largest s':>10s}")
    for name in PROXIES:
        t = [seconds(name, genome) for genome in sample]
        largest = seconds(name, (2,) * 6)
        print(f"{name:10s} {BATCH[name]:5d} {np.median(t):9.3f} {max(t):7.3f} {largest:10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
