"""``python -m nas.latency``: fill the per-block latency table of a space on this device and
report its prediction error on whole networks."""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
from pathlib import Path

import numpy as np

from nas import registry
from nas import spec as S
from nas.commands import run
from nas.cost import human, totals
from nas.latency import LatencyTable, Protocol, slug


def _specs_for(name: str, samples: int, seed: int) -> list[tuple[str, S.ArchSpec]]:
    """``samples`` random specs of a search space, or the one spec a baseline/spec names."""
    try:
        space = registry.space(name)
    except ValueError:
        space = None
    if space is not None:
        rng = np.random.default_rng(seed)
        out = []
        for i, g in enumerate(space.sample(samples, rng)):
            spec = g if isinstance(g, S.ArchSpec) else space.decode(g)
            out.append((spec.name or f"{name}#{i}", spec))
        return out
    try:
        spec = registry.arch(name)
    except ValueError as e:
        raise ValueError(f"{name!r} is neither a search space nor a baseline/spec: {e}") from None
    return [(spec.name or "spec", spec)]


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m nas.latency",
        description="Fill the per-block latency table for random architectures of a search "
                    "space (or one baseline / spec) and report predicted (sum of blocks) vs "
                    "measured whole-model latency, with the median absolute percentage "
                    "error. Writes a CSV next to the table.")
    p.add_argument("arch", nargs="?", default="mobile", metavar="SPACE_OR_BASELINE",
                   help="search space (registry name such as mobile, the default, or a "
                        "conf/space config such as mobile_imagenet), baseline name, spec "
                        "JSON file or quoted spec string")
    p.add_argument("--samples", type=int, default=20, help="random architectures of a space")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads pinned while timing (default: torch's current)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--table", type=Path, default=None,
                   help="table JSON (default runs/latency/<device-key>.json)")
    p.add_argument("--seed", type=int, default=0, help="seed of the architecture sample")
    p.add_argument("--warmup", type=int, default=Protocol.warmup, help="untimed calls")
    p.add_argument("--repeats", type=int, default=Protocol.repeats,
                   help="timed repeats (the median is taken)")
    p.add_argument("--min-repeat-ms", type=float, default=Protocol.min_repeat_ms,
                   help="minimum length of one timed repeat")
    p.add_argument("--rounds", type=int, default=1,
                   help="time every missing block and every model once per round, in "
                        "shuffled order, and keep the median over rounds (robust to a "
                        "machine whose load drifts; default 1: one after the other)")
    p.add_argument("--cold-mib", type=float, default=Protocol.cold_bytes / 2**20,
                   help="weights (MiB, over copies of a block) cycled through so each timed "
                        "call finds its weights out of cache, as inside a whole model; 0 "
                        "times one hot copy")
    p.add_argument("--clock", choices=["wall", "thread"], default="wall",
                   help="wall clock (default), or the CPU time of the timing thread (CPU, "
                        "--threads 1): robust to other processes on a shared machine")
    args = p.parse_args(argv)
    if args.samples < 1:
        p.error(f"--samples must be >= 1, got {args.samples}")
    if args.rounds < 1:
        p.error(f"--rounds must be >= 1, got {args.rounds}")
    try:
        protocol = Protocol(args.warmup, args.repeats, args.min_repeat_ms, args.clock,
                            int(args.cold_mib * 2**20))
        table = LatencyTable(args.table, device=args.device, batch=args.batch,
                             threads=args.threads, protocol=protocol)
        specs = _specs_for(args.arch, args.samples, args.seed)
    except (ValueError, S.SpecError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    load0 = _loadavg()
    print(f"{table!r}\nprotocol: {protocol}; {len(specs)} architecture(s) of {args.arch}; "
          f"load average {load0} on {os.cpu_count()} CPUs")
    rows = []
    if args.rounds > 1:
        print(f"timing {len(specs)} models and their missing blocks in {args.rounds} "
              f"interleaved rounds ...", flush=True)
        measured = table.fill([spec for _, spec in specs], rounds=args.rounds, seed=args.seed)
    for i, (name, spec) in enumerate(specs):
        before = len(table)
        pred = table.predict(spec)
        raw = sum(float(table.entries[k]["ms"]) for k in table.layer_keys(spec))
        meas = measured[i] if args.rounds > 1 else table.measure_model(spec)
        ape = abs(pred - meas) / meas * 100
        rows.append({"name": name, "spec": spec.to_string(), "macs": totals(spec)[0],
                     "layers": len(spec.layers), "predicted_ms": round(pred, 5),
                     "measured_ms": round(meas, 5), "ape_percent": round(ape, 3),
                     "raw_sum_ms": round(raw, 5), "new_entries": len(table) - before})
        print(f"{name:>14}  MACs {human(rows[-1]['macs']):>8}  predicted {pred:9.3f} ms  "
              f"measured {meas:9.3f} ms  error {ape:6.2f}%")
    apes = [r["ape_percent"] for r in rows]
    raw_apes = [abs(r["raw_sum_ms"] - r["measured_ms"]) / r["measured_ms"] * 100 for r in rows]
    signed = [(r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"] * 100 for r in rows]
    clock = "-thread-clock" if protocol.clock == "thread" else ""
    csv_path = table.path.with_name(f"{table.path.stem}-{slug(args.arch)[:40]}"
                                    f"-b{args.batch}{clock}.csv")
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"median absolute percentage error {statistics.median(apes):.2f}% "
          f"(mean {statistics.fmean(apes):.2f}%, max {max(apes):.2f}%, median signed "
          f"{statistics.median(signed):+.2f}%) over {len(rows)} architecture(s)")
    print(f"empty-module overhead {table.overhead_ms() * 1e3:.2f} us per layer; without the "
          f"correction (plain sum of entries) the median error is "
          f"{statistics.median(raw_apes):.2f}%; load average now {_loadavg()}")
    print(f"table: {table.path} ({len(table)} entries)\ncsv:   {csv_path}")
    return 0


def entry() -> None:
    """``python -m nas.latency``."""
    sys.exit(run(main))
