"""End to end: a supernet-scored search against a from-scratch search of the same wall time,
both fronts and the classic baselines retrained stand-alone with one recipe.

    python benchmarks/bench_end_to_end.py --checkpoint runs/supernet/.../checkpoints/last.ckpt \\
        --supernet-seconds 1083 --out runs/e2e [--evaluations 300] [--retrain-max 10] \\
        [--scratch "fidelity=sha fidelity.rungs=[1,3]"] [--retrain "train=full"] \\
        [--baselines lenet5 resnet20 mobilenet_v2] [--space mobile] -- OVERRIDES...

OVERRIDES are the data / space / split settings the supernet was trained with (they go to
every search and every retraining). The phases, each skipped when its output exists (so a
killed benchmark continues):

1. ``sn``: ``nas.search`` with ``evaluator=supernet`` for ``--evaluations`` candidates (no
   baselines); its wall time S is measured.
2. ``scratch``: ``nas.search`` training candidates from scratch (pool evaluator, every core)
   stopped by Ctrl-C after T = ``--supernet-seconds`` + S, the supernet's whole cost; its front
   is taken from the archive rows finished within T of the run's start.
3. ``retrain``: each front's members (at most ``--retrain-max`` per front, spread over the
   cost range) and the baselines trained with ``nas.train`` and the ``--retrain`` recipe, two
   at a time; test accuracy on the data set's test split.
4. The summary: per front, the search-time and retrained accuracies, the hypervolume of the
   retrained fronts (test error x MACs / the search's cost_ref, reference point 1) and which
   baselines a retrained front dominates; written to ``summary.txt`` and ``retrained.csv``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from nas.archive import Archive, final_rows
from nas.run import front_of, hypervolume_of, ok_rows

PY = sys.executable


def run_search(out: Path, space: str, args: list[str], timeout_s: float | None = None) -> float:
    """Run one search into ``out``; return its wall seconds (stopped with SIGINT at timeout)."""
    cmd = [PY, "-m", "nas.search", f"+space={space}", *args, "progress=false",
           f"hydra.run.dir={out}"]
    print("$", shlex.join(cmd), flush=True)
    t0 = time.monotonic()
    with open(out.with_suffix(".log"), "w") as log:
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            p.send_signal(2)  # Ctrl-C: the search stops, keeps its archive and writes its outputs
            p.wait()
    wall = time.monotonic() - t0
    if p.returncode not in (0, 130) or not (out / "archive.sqlite").exists():
        raise SystemExit(f"search in {out} failed (exit {p.returncode}); see {out}.log")
    return wall


def front(run_dir: Path, within_s: float | None, limit: int) -> tuple[pd.DataFrame, float, int]:
    """(front rows, cost_ref, architectures evaluated) of a search run, using only results
    archived within ``within_s`` of its start when given; at most ``limit`` members, spread
    evenly over the front's cost order."""
    with Archive(run_dir / "archive.sqlite") as a:
        df = a.to_frame()
        ref = float(a.get_meta("cost_ref"))
    df = df[df["space"] != "baseline"]
    if within_s is not None:
        t0 = (run_dir / "config.yaml").stat().st_mtime
        df = df[df["created"] - t0 <= within_s]
    rows = ok_rows(final_rows(df))
    fr = front_of(rows, "macs").reset_index(drop=True)
    if len(fr) > limit:
        fr = fr.iloc[np.unique(np.round(np.linspace(0, len(fr) - 1, limit)).astype(int))]
    return fr.reset_index(drop=True), ref, len(rows)


def train(job: tuple[str, str], out: Path, space_name: str, overrides: list[str],
          recipe: list[str]) -> dict:
    key, arch = job
    run_dir = out / "retrain" / key
    if (run_dir / "result.json").exists():
        return json.loads((run_dir / "result.json").read_text())
    space = [f"+space={space_name}"] if arch.startswith(f"{space_name}:") else []
    ov = overrides if space else [o for o in overrides if not o.startswith("space.")]
    if not space:  # baselines at the space's resolution, as the search trains them
        res = [o.split("=", 1)[1].strip("[]").split(",")[-1] for o in overrides
               if o.startswith("space.resolutions=")]
        ov = ov + ([f"train.resolution={res[0]}"] if res else [])
    cmd = [PY, "-m", "nas.train", f"arch={arch}", *space, *ov, *recipe, "progress=false",
           f"hydra.run.dir={run_dir}"]
    print("$", shlex.join(cmd), flush=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir.with_suffix(".log"), "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    if rc != 0 or not (run_dir / "result.json").exists():
        return {"status": "failed", "reason": f"exit {rc}; see {run_dir}.log"}
    return json.loads((run_dir / "result.json").read_text())


def supernet_scores(sn_run: Path, space: str, res: pd.DataFrame) -> pd.Series:
    """The supernet's score (as the supernet search computed it) of every retrained
    architecture of the space, from-scratch front members included."""
    from omegaconf import OmegaConf

    from nas.supernet import InheritedScorer

    cfg = OmegaConf.load(sn_run / "config.yaml")
    scorer = InheritedScorer(cfg.evaluator.checkpoint,
                             data=OmegaConf.to_container(cfg.data, resolve=True),
                             train=OmegaConf.to_container(cfg.train, resolve=True),
                             calib_batches=int(cfg.evaluator.calib_batches))
    genome = scorer.supernet.space.parse_genome
    return pd.Series([scorer.score(genome(a.split(":", 1)[1]))["accuracy"]
                      if a.startswith(f"{space}:") else np.nan for a in res["arch"]],
                     index=res.index)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--supernet-seconds", type=float, required=True,
                    help="wall seconds the supernet's training took (its summary.json)")
    ap.add_argument("--out", type=Path, default=Path("runs/e2e"))
    ap.add_argument("--evaluations", type=int, default=300)
    ap.add_argument("--sn", default="evaluator.calib_batches=2 budget.initial=50 "
                    "budget.per_iteration=25", help="extra overrides of the supernet search")
    ap.add_argument("--scratch", default="fidelity=sha fidelity.rungs=[1,3] fidelity.eta=3",
                    help="extra overrides of the from-scratch search")
    ap.add_argument("--retrain", default="train=full", help="recipe overrides of retraining")
    ap.add_argument("--retrain-max", type=int, default=10)
    ap.add_argument("--baselines", nargs="*", default=["lenet5", "resnet20", "mobilenet_v2"])
    ap.add_argument("--space", default="mobile", help="a space with a supernet (mobile, residual)")
    ap.add_argument("--jobs", type=int, default=2, help="retrainings at a time")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    ov = list(a.overrides)
    times = out / "times.json"
    t = json.loads(times.read_text()) if times.exists() else {}

    if "sn" not in t:
        t["sn"] = run_search(out / "sn", a.space, [*ov, "evaluator=supernet",
                                          f"evaluator.checkpoint={Path(a.checkpoint).resolve()}",
                                          f"budget.evaluations={a.evaluations}",
                                          "baselines.names=[]", *a.sn.split()])
        times.write_text(json.dumps(t))
    budget = a.supernet_seconds + t["sn"]
    if "scratch" not in t:
        t["scratch"] = run_search(out / "scratch", a.space, [*ov, "budget.evaluations=100000",
                                                    "baselines.names=[]", *a.scratch.split()],
                                  timeout_s=budget + 5)
        times.write_text(json.dumps(t))

    fronts = {}
    for name, within in (("sn", None), ("scratch", budget)):
        fr, ref, n = front(out / name, within, a.retrain_max)
        fronts[name] = fr.assign(front=name)
        print(f"{name}: {n} architectures evaluated, front of {len(fr)} retrained", flush=True)
    members = pd.concat(fronts.values(), ignore_index=True)
    jobs = {f"{r.front}-{r.arch_id}": f"{a.space}:{r.genome}" for r in members.itertuples()}
    jobs.update({f"baseline-{b}": b for b in a.baselines})
    with ThreadPoolExecutor(a.jobs) as ex:
        results = dict(zip(jobs, ex.map(lambda j: train(j, out, a.space, ov, a.retrain.split()),
                                        jobs.items())))

    rows = []
    for key, r in results.items():
        kind, _, aid = key.partition("-")
        rows.append({"front": kind, "key": key, "arch": jobs[key], "macs": r.get("macs"),
                     "test_accuracy": r.get("test_accuracy"),
                     "val_accuracy": r.get("accuracy"),
                     "train_seconds": r.get("train_seconds"), "status": r.get("status", "ok")})
    res = pd.DataFrame(rows)
    search_acc = {f"{r.front}-{r.arch_id}": r.accuracy for r in members.itertuples()}
    res["search_accuracy"] = res["key"].map(search_acc)
    res["supernet_accuracy"] = supernet_scores(out / "sn", a.space, res)
    res["error"] = 1.0 - res["test_accuracy"]
    res.loc[res["test_accuracy"].isna(), "status"] = "failed"
    res.to_csv(out / "retrained.csv", index=False)

    lines = [f"supernet search: {t['sn']:.0f} s wall; supernet training {a.supernet_seconds:.0f} s;"
             f" from-scratch search given T = {budget:.0f} s (ran {t['scratch']:.0f} s)"]
    mob = res[res["arch"].str.startswith(f"{a.space}:") & res["test_accuracy"].notna()]
    tau = {c: stats.kendalltau(mob[c], mob["test_accuracy"]).statistic
           for c in ("supernet_accuracy", "macs")}
    lines.append(f"all {len(mob)} retrained architectures: Kendall tau with the retrained test "
                 f"accuracy: supernet score {tau['supernet_accuracy']:.2f}, MACs alone "
                 f"{tau['macs']:.2f}")
    for name in ("sn", "scratch"):
        part = res[res["front"] == name]
        hv = hypervolume_of(part, "macs", ref)
        tau = stats.kendalltau(part["search_accuracy"], part["test_accuracy"]).statistic
        lines.append(f"{name}: {len(part)} retrained, hypervolume {hv:.4f} (test error x MACs / "
                     f"{ref:.3g}); search-time vs retrained accuracy tau {tau:.2f}")
        for b in res[res["front"] == "baseline"].itertuples():
            if not np.isfinite(b.error):
                continue
            dom = part[(part["error"] <= b.error) & (part["macs"] <= b.macs)
                       & ((part["error"] < b.error) | (part["macs"] < b.macs))]
            lines.append(f"  {b.arch}: {b.macs / 1e6:.2f}M MACs, test acc {b.test_accuracy:.4f}: "
                         + (f"dominated by {len(dom)} member(s)" if len(dom) else "not dominated"))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        table = res[["front", "key", "macs", "search_accuracy", "supernet_accuracy",
                     "test_accuracy",
                     "train_seconds", "status"]].to_string(index=False)
    text = "\n".join(lines) + "\n\n" + table + "\n"
    (out / "summary.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
