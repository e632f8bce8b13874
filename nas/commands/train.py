"""``python -m nas.train``: train one architecture fully (a baseline name, ``space:genome``,
a spec or an export folder), optionally from trained weights (transfer learning).

    python -m nas.train arch=resnet20 data=digits [train=full]
    python -m nas.train arch=mobile:1-0-2-... data=cifar10 data.root=~/data/cifar10
    python -m nas.train arch=runs/.../spec.json data=digits
    python -m nas.train arch=resnet20 data=cifar10 init=runs/.../checkpoints/last.ckpt \\
        freeze=all-but-head        # transfer learning (see nas.transfer)

writes ``result.json``, ``spec.json``, ``config.yaml``, ``metrics.csv`` and
``checkpoints/last.ckpt`` into the Hydra run folder ``runs/<date>/<time>/``; nothing when
a check fails first.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from nas import registry
from nas.commands import fmt_count, fmt_pct, hydra_app
from nas.commands.schema import check_keys
from nas.config import plain
from nas.run import RunFolder
from nas.train import TrainConfig, train_spec

log = logging.getLogger(__name__)


def train_one(cfg: Any, *, run_dir: Path | str) -> dict:
    """Train ``cfg.arch`` with ``cfg.train`` on ``cfg.data``; write result.json, spec.json,
    metrics.csv and the checkpoint into ``run_dir``; return the result dict."""
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    arch = cfg.arch  # raises MissingMandatoryValue when not given
    data = plain(cfg.data)
    train = TrainConfig.from_any(cfg.train)
    # init= / freeze= on the command line are train.init / train.freeze
    transfer = {k: cfg.get(k) for k in ("init", "freeze") if cfg.get(k) is not None}
    if transfer:
        train = dataclasses.replace(train, **transfer)
    if train.advice():
        log.warning(train.advice())
    info = registry.data_info(data)
    spec = registry.arch(arch, info, train.resolution, space_cfg=cfg.get("space"),
                         head=cfg.get("head"))

    def write_inputs() -> None:
        folder.write_text("spec.json", spec.to_json(indent=1))
        folder.write_config(cfg)

    result = train_spec(spec, data=data, train=train, seed=int(cfg.seed), test=bool(cfg.test),
                        run_dir=run_dir, progress=bool(cfg.progress), on_ready=write_inputs)
    record = {"arch": str(arch), "name": spec.name, "spec": spec.to_string(),
              "data": info.name, "seed": int(cfg.seed), **result,
              "train_config": train.to_dict()}
    folder.write_json("result.json", record)
    _print_result(record, run_dir)
    return record


def _print_result(r: dict, run_dir: Path) -> None:
    t = Table(title=f"{r['name'] or r['arch']} on {r['data']}")
    for col in ("MACs", "params", "val acc", "test acc", "train s", "img/s"):
        t.add_column(col, justify="right")
    ips = r.get("images_per_second")
    t.add_row(fmt_count(r["macs"]), fmt_count(r["params"]), fmt_pct(r.get("accuracy")),
              fmt_pct(r.get("test_accuracy")), f"{r['train_seconds']:.1f}",
              "-" if ips is None else f"{ips:.0f}")
    console = Console()
    console.print(t)
    console.print(f"spec: {r['spec']}\nwrote {run_dir / 'result.json'}")


def check(cfg: Any) -> None:
    """What ``python -m nas.train`` checks before its first file: every key, the recipe."""
    check_keys(cfg, "train")
    TrainConfig.from_any(cfg.train)


def main() -> None:
    """``python -m nas.train``."""
    hydra_app("train", lambda cfg, run_dir, _: train_one(cfg, run_dir=run_dir))
