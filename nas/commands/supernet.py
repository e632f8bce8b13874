"""``python -m nas.supernet``: train a weight-sharing supernet once, then score candidates
with inherited weights (``python -m nas.search ... evaluator=supernet``).

    python -m nas.supernet +space=mobile                     # digits, 8 epochs
    python -m nas.supernet +space=mobile data=cifar10 data.root=PATH train.epochs=30
    python -m nas.supernet resume=runs/2026-12-01/10-00-00   # continue a killed run

Writes ``config.yaml``, ``checkpoints/last.ckpt`` (every epoch), ``metrics.csv`` and
``summary.json`` into the run folder.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytorch_lightning as pl
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from rich.console import Console
from rich.table import Table

from nas import checks, registry
from nas.checkpoints import read_checkpoint
from nas.commands import hydra_app
from nas.commands.schema import check_keys
from nas.config import plain
from nas.cost import human, totals
from nas.registry import DATA_KEYS_SET_BY_TRAIN
from nas.run import RunFolder
from nas.supernet import SUPERNETS, ScoreExtremes, SubnetData, SupernetModule, file_hash
from nas.supernet.scoring import override_text
from nas.train import (
    TrainConfig,
    accelerator_of,
    keyboard_interrupts,
    quiet_logs,
    resolve_precision,
    torch_threads,
)

CHECKPOINT = "checkpoints/last.ckpt"  # in the run folder


class SupernetError(ValueError):
    """A configuration or run-folder problem, reported as one clear line."""


def run_supernet(cfg: Any, run_dir: Any) -> dict:
    """Train (or, with ``cfg.resume``, continue) a supernet into ``run_dir``; the plain
    function behind the CLI. Writes ``config.yaml``, ``checkpoints/last.ckpt`` (every epoch),
    ``metrics.csv`` and ``summary.json``; returns the summary (an empty dict in the other
    processes of a DDP run)."""
    run_dir = Path(run_dir)
    ckpt = None
    if cfg.get("resume"):
        run_dir = Path(str(cfg.resume)).expanduser()
        if not (run_dir / "config.yaml").is_file():
            raise SupernetError(f"resume={cfg.resume}: no config.yaml there; pass a run folder "
                                f"written by `python -m nas.supernet`")
        saved = OmegaConf.load(run_dir / "config.yaml")
        if "supernet" not in saved:
            kind = ("a nas.search run folder" if (run_dir / "archive.sqlite").exists()
                    else "not written by `python -m nas.supernet`")
            raise SupernetError(f"resume={cfg.resume} is not a supernet run folder ({kind}); "
                                f"pass the folder of a `python -m nas.supernet` run")
        if not (run_dir / CHECKPOINT).is_file():
            raise SupernetError(f"resume={cfg.resume}: no {CHECKPOINT} yet (killed before "
                                f"its first epoch ended); start a fresh run")
        # read safely (and fail in one line on a corrupt file) before Lightning loads it
        hp = read_checkpoint(run_dir / CHECKPOINT, what="supernet checkpoint",
                             fix="start a fresh run").get("hyper_parameters")
        if not isinstance(hp, dict) or "space" not in hp:
            raise SupernetError(f"{run_dir / CHECKPOINT} is not a supernet checkpoint; start a "
                                f"fresh run")
        cfg = saved
        ckpt = str(run_dir / CHECKPOINT)
    elif cfg.get("space") is None:
        raise SupernetError(f"no search space given: add +space=NAME, NAME one of "
                            f"{', '.join(sorted(SUPERNETS))} (spaces with a supernet)")
    elif (run_dir / CHECKPOINT).exists():
        raise SupernetError(f"{run_dir} already holds a supernet; continue it with "
                            f"resume={run_dir}")
    space_name = getattr(registry.space_class_of(str(cfg.space._target_)), "name", None)
    if space_name not in SUPERNETS:  # before any data is loaded
        raise SupernetError(f"the {space_name} space has no supernet; spaces with one: "
                            f"{', '.join(sorted(SUPERNETS))}")
    train = TrainConfig.from_any(cfg.train)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    name = data.pop("name")
    for k in DATA_KEYS_SET_BY_TRAIN:
        data.pop(k, None)
    opts = OmegaConf.to_container(cfg.supernet, resolve=True)
    seed = int(cfg.seed)
    with torch_threads(train.num_threads), quiet_logs(not cfg.get("progress", True)):
        pl.seed_everything(seed, workers=False, verbose=False)
        dm = registry.datamodule(name, **data, batch_size=train.batch_size,
                             train_fraction=train.train_fraction,
                             val_fraction=train.val_fraction, seed=seed)
        space = registry.space(OmegaConf.to_container(cfg.space, resolve=True),
                               num_classes=dm.num_classes, in_channels=dm.in_channels)
        module = SupernetModule(space=space.name, space_config=space.config(),
                                width=cfg.get("width"), block=cfg.get("block"), train=train,
                                random_subnets=opts["random_subnets"], distill=opts["distill"],
                                sort_channels=opts["sort_channels"],
                                progressive=opts.get("progressive"), seed=seed,
                                sandwich=opts.get("sandwich", True))
        scorer = ScoreExtremes(SubnetData(cfg.data, train, calib_batches=opts["calib_batches"],
                                          seed=seed))
        folder = RunFolder(run_dir)
        if ckpt is None:
            folder.write_config(cfg)
        elif (run_dir / "metrics.csv").exists():
            # Lightning's CSV logger deletes an existing metrics.csv: keep the rows of the
            # interrupted run as a part, merged back when this run completes.
            n = len(list(run_dir.glob("metrics.part*.csv")))
            (run_dir / "metrics.csv").rename(run_dir / f"metrics.part{n}.csv")
        accelerator = accelerator_of(train)
        trainer = pl.Trainer(
            max_epochs=train.epochs, accelerator=accelerator, devices=train.devices,
            # Subnets leave parts of the supernet unused in a step: DDP must look for them.
            strategy=(f"{train.strategy}_find_unused_parameters_true"
                      if train.strategy in ("ddp", "ddp_spawn") else train.strategy),
            precision=resolve_precision(train.precision, accelerator),
            deterministic=train.deterministic,
            logger=CSVLogger(save_dir=str(run_dir), name="", version=""),
            callbacks=[scorer, ModelCheckpoint(dirpath=run_dir / "checkpoints",
                                               filename="last", save_top_k=1, monitor=None)],
            enable_progress_bar=bool(cfg.get("progress", True)), enable_model_summary=False,
            num_sanity_val_steps=0, limit_train_batches=train.limit_train_batches,
            limit_val_batches=0, log_every_n_steps=10, default_root_dir=str(run_dir),
            use_distributed_sampler=False)
        t0 = time.perf_counter()
        with warnings.catch_warnings(), keyboard_interrupts():
            # Subnets are scored by ScoreExtremes (calibrated BN), not by a validation loop.
            warnings.filterwarnings("ignore", message=".*no `validation_step`.*")
            trainer.fit(module, datamodule=dm, ckpt_path=ckpt, weights_only=True)
        seconds = time.perf_counter() - t0
    if not trainer.is_global_zero:  # DDP: the first process writes and prints the summary
        return {}
    _merge_metrics(run_dir)
    scores = scorer.last or scorer.scores(module)
    previous = {}
    if (run_dir / "summary.json").exists():
        previous = json.loads((run_dir / "summary.json").read_text())
    summary = {
        "space": space.name, "restrict": module.supernet.restrict, "data": name,
        "epochs": int(trainer.current_epoch), "steps": int(trainer.global_step),
        "accuracy_largest": scores["largest"], "accuracy_smallest": scores["smallest"],
        "train_seconds": seconds + float(previous.get("train_seconds", 0.0)),
        "checkpoint": str(run_dir / CHECKPOINT),
        "checkpoint_sha256": file_hash(run_dir / CHECKPOINT),
    }
    RunFolder(run_dir).write_json("summary.json", summary)
    if cfg.get("progress", True):
        _print_summary(summary, module)
    return summary


def _merge_metrics(run_dir: Any) -> None:
    """metrics.csv = the rows of every interrupted part, then this run's."""
    parts = sorted(run_dir.glob("metrics.part*.csv"), key=lambda p: int(p.stem[12:]))
    if not parts:
        return
    frames = [pd.read_csv(p) for p in parts + [run_dir / "metrics.csv"]
              if p.exists() and p.stat().st_size > 0]
    pd.concat(frames, ignore_index=True).to_csv(run_dir / "metrics.csv", index=False)
    for p in parts:
        p.unlink()


def _print_summary(summary: dict, module: SupernetModule) -> None:
    sn = module.supernet
    held = " ".join(f"{k}={override_text(v)}" for k, v in summary["restrict"].items())
    t = Table(title=f"supernet {summary['space']} ({held}) on "
                    f"{summary['data']}: {summary['epochs']} epochs, {summary['steps']} steps, "
                    f"{summary['train_seconds']:.0f} s")
    for col in ("subnet", "MACs", "params", "val acc (inherited, BN recalibrated)"):
        t.add_column(col, justify="right")
    for label in ("largest", "smallest"):
        genome = sn.largest() if label == "largest" else sn.smallest()
        macs, params, _ = totals(sn.space.decode(genome))
        t.add_row(label, human(macs), human(params), f"{100 * summary[f'accuracy_{label}']:.2f}%")
    con = Console()
    con.print(t)
    space_args = " ".join(f"space.{k}={override_text(v)}" for k, v in summary["restrict"].items())
    con.print(f"checkpoint: {summary['checkpoint']}\nsearch with it: python -m nas.search "
              f"+space={summary['space']} {space_args} "
              f"evaluator=supernet evaluator.checkpoint={summary['checkpoint']}")


def check(cfg: Any) -> None:
    """What ``python -m nas.supernet`` checks before its first file: every key, the recipe,
    the supernet options."""
    check_keys(cfg, "supernet")
    if cfg.get("resume"):
        return
    TrainConfig.from_any(cfg.train)
    opts = plain(cfg.supernet)
    for key in ("sandwich", "distill", "sort_channels"):
        checks.boolean(f"supernet.{key}", opts.get(key, True), error=SupernetError)
    checks.integer("supernet.random_subnets", opts.get("random_subnets"), lo=0,
                   error=SupernetError)
    checks.integer("supernet.calib_batches", opts.get("calib_batches"), lo=1,
                   error=SupernetError)


def main() -> None:
    """``python -m nas.supernet``."""
    hydra_app("supernet", lambda cfg, run_dir, _: run_supernet(cfg, run_dir))
