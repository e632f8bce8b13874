"""Analytic cost model vs PyTorch's FlopCounterMode, side by side in one run.

    python benchmarks/bench_cost.py [--random 1000] [--yardstick-sample 40]

Both sides run on one core (torch.set_num_threads(1)). Three yardsticks:

* ``flopcounter``: what a user would otherwise do — build the model (with init) and run one
  forward pass of a 1-image batch on the CPU under FlopCounterMode.
* ``flopcounter-meta``: the cheapest honest use of FlopCounterMode — build and run on the
  meta device (no allocation, no arithmetic), so only module construction and dispatch
  are timed.
* nas.cost is timed *cold* (every memo cache cleared before each spec, so every block is
  lowered and priced from scratch) and *warm* (caches as a search would have them).

Every spec's MACs and parameters are also checked for equality with the yardstick.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from nas import cost as C
from nas import spec as S
from nas.build import build
from search_spaces import baselines


def clear_caches() -> None:
    C.layer_cost.cache_clear()
    S.clear_caches()


def yardstick(spec: S.ArchSpec, device: str) -> tuple[float, int, int]:
    t = time.perf_counter()
    with torch.device(device):
        net = build(spec).eval()
        x = torch.randn(1, *spec.input)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        net(x)
    params = sum(p.numel() for p in net.parameters())
    return time.perf_counter() - t, fc.get_total_flops() // 2, params


def analytic(spec: S.ArchSpec, *, cold: bool, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        if cold:
            clear_caches()
        t = time.perf_counter()
        C.totals(spec)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def random_specs(n: int, seed: int) -> tuple[str, list[S.ArchSpec]]:
    """``n`` random architectures of the ImageNet-size mobile space (MobileNetV2-sized)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf/space/mobile_imagenet.yaml")
    space = instantiate(cfg, num_classes=1000, in_channels=3, _convert_="all")
    genomes = space.sample(n, np.random.default_rng(seed))
    return "mobile-space (ImageNet config) specs", [space.decode(g) for g in genomes]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--random", type=int, default=1000, help="random specs to time")
    p.add_argument("--yardstick-sample", type=int, default=40,
                   help="random specs also timed with FlopCounterMode (it is slow)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    print(f"torch {torch.__version__}, 1 thread\n")
    print(f"{'spec':28s} {'flopcounter':>12s} {'fc-meta':>10s} {'nas cold':>10s} "
          f"{'nas warm':>10s} {'x cold':>9s} {'x warm':>9s} {'x meta/warm':>11s}  equal")
    for name in ("mobilenet_v2", "resnet50"):
        spec = baselines.get(name, resolution=224)
        t_real, macs, params = min((yardstick(spec, "cpu") for _ in range(3)),
                                   key=lambda r: r[0])
        t_meta = min(yardstick(spec, "meta")[0] for _ in range(5))
        cold = analytic(spec, cold=True, repeat=50)
        warm = analytic(spec, cold=False, repeat=2000)
        eq = C.totals(spec)[:2] == (macs, params)
        print(f"{name + '@224':28s} {t_real * 1e3:10.1f}ms {t_meta * 1e3:8.1f}ms "
              f"{cold * 1e6:8.1f}us {warm * 1e6:8.1f}us {t_real / cold:9.0f} "
              f"{t_real / warm:9.0f} {t_meta / warm:11.0f}  {eq}")

    label, specs = random_specs(args.random, args.seed)
    clear_caches()
    # Cold: caches cleared before every spec. Warm: one pass over all specs with caches kept
    # (blocks shared between specs hit the memo), then a timed second pass.
    cold_t = []
    for s in specs:
        clear_caches()
        t = time.perf_counter()
        C.totals(s)
        cold_t.append(time.perf_counter() - t)
    clear_caches()
    t = time.perf_counter()
    for s in specs:
        C.totals(s)
    first_pass = time.perf_counter() - t
    t = time.perf_counter()
    for s in specs:
        C.totals(s)
    warm_pass = time.perf_counter() - t
    sample = specs[: args.yardstick_sample]
    ys = [yardstick(s, "cpu") for s in sample]
    ym = [yardstick(s, "meta")[0] for s in sample]
    ok = all(C.totals(s)[:2] == (m, p) for s, (_, m, p) in zip(sample, ys))
    y_real = statistics.mean(r[0] for r in ys)
    y_meta = statistics.mean(ym)
    n = len(specs)
    layers = statistics.mean(len(s.layers) for s in specs)
    print(f"\n{n} {label}, {layers:.1f} top-level layers on average")
    print(f"  nas.cost cold (caches cleared per spec): {statistics.mean(cold_t) * 1e6:8.1f} us/spec "
          f"= {1 / statistics.mean(cold_t):9.0f} specs/s")
    print(f"  nas.cost first pass (shared memo)      : {first_pass / n * 1e6:8.1f} us/spec "
          f"= {n / first_pass:9.0f} specs/s")
    print(f"  nas.cost warm pass                     : {warm_pass / n * 1e6:8.1f} us/spec "
          f"= {n / warm_pass:9.0f} specs/s")
    print(f"  FlopCounterMode, build+forward (cpu)   : {y_real * 1e3:8.1f} ms/spec "
          f"(mean of {len(sample)})")
    print(f"  FlopCounterMode, meta device           : {y_meta * 1e3:8.1f} ms/spec")
    print(f"  speed-up vs cpu yardstick: cold {y_real / statistics.mean(cold_t):8.0f}x, "
          f"first pass {y_real / (first_pass / n):8.0f}x, warm {y_real / (warm_pass / n):8.0f}x")
    print(f"  speed-up vs meta yardstick: cold {y_meta / statistics.mean(cold_t):8.0f}x, "
          f"first pass {y_meta / (first_pass / n):8.0f}x, warm {y_meta / (warm_pass / n):8.0f}x")
    print(f"  MACs and params equal to the yardstick on all {len(sample)} checked: {ok}")


if __name__ == "__main__":
    main()
