"""Scoring subnets of a trained supernet: its checkpoint, the space it fixes, inherited
weights recalibrated and measured (evaluator=supernet, nas.export)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from torch import nn

from nas import build as B
from nas import registry
from nas import spec as S
from nas.checkpoints import read_checkpoint
from nas.supernet.calibration import SubnetData
from nas.supernet.spaces import SUPERNETS, MobileSupernet, make_supernet
from nas.supernet.training import SupernetModule
from nas.train import (
    ClassifierModule,
    TrainConfig,
    accelerator_of,
    quiet_logs,
    torch_threads,
)


def read_supernet_checkpoint(path: Any) -> tuple[dict, dict]:
    """``(hyper-parameters, checkpoint)`` of a ``python -m nas.supernet`` checkpoint, read
    safely; ValueError naming the file when it is missing, unreadable or not a
    supernet's."""

    p = Path(str(path)).expanduser()
    if not p.is_file():
        raise ValueError(f"supernet checkpoint {p}: no such file; pass the checkpoints/"
                         f"last.ckpt of a `python -m nas.supernet` run")
    # The hyper-parameters are plain containers, so the safe loader reads them.
    ckpt = read_checkpoint(p, what="supernet checkpoint",
                           fix="train it again with `python -m nas.supernet`")
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hp, dict) or not {"space", "space_config", "width"} <= set(hp) or \
            not isinstance(ckpt.get("state_dict"), dict):
        raise ValueError(f"{p} is not a supernet checkpoint (no space/space_config/width "
                         f"hyper-parameters); pass one written by `python -m nas.supernet`")
    if hp["space"] not in SUPERNETS:
        raise ValueError(f"{p} is a supernet of the {hp['space']} space, which has no "
                         f"supernet class here; spaces with one: {', '.join(sorted(SUPERNETS))}")
    return hp, ckpt


def load_supernet(path: Any) -> tuple[MobileSupernet, str]:
    """The supernet of a ``python -m nas.supernet`` checkpoint and the sha256 of the file;
    ValueError naming the file when it is missing, unreadable or not a supernet's."""

    p = Path(str(path)).expanduser()
    hp, ckpt = read_supernet_checkpoint(p)
    module = SupernetModule(**hp)
    try:
        module.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise ValueError(f"supernet checkpoint {p} does not fit the supernet its own config "
                         f"describes ({str(e).splitlines()[0]}); was it written by another "
                         f"version of nas?") from None
    sn = module.supernet.eval()
    return sn, file_hash(p)


def override_text(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(override_text(x) for x in v) + "]"
    return format(v, "g") if isinstance(v, float) else str(v)


def check_space(supernet: MobileSupernet, space: Any, checkpoint: Any = "the checkpoint") -> None:
    """ValueError unless ``space`` (a search's) is the supernet's space, config included;
    the message names the first difference and the override that fixes it."""
    if space.name not in SUPERNETS:
        make_supernet(space)  # raises: this space has no supernet, listing those that do
    if space.name != supernet.space.name:
        raise ValueError(f"{checkpoint} is a supernet of the {supernet.space.name} space, but "
                         f"the search's space is {space.name}; train one with `python -m "
                         f"nas.supernet +space={space.name}` or search +space="
                         f"{supernet.space.name}")
    mine, theirs = supernet.space.config(), space.config()
    for key in sorted(set(mine) | set(theirs)):
        a, b = mine.get(key), theirs.get(key)
        if a != b:
            where = ("data" if key in ("num_classes", "in_channels") else "space")
            hint = ("use the data set the supernet was trained on" if where == "data" else
                    f"run the search with space.{key}={override_text(a)}")
            raise ValueError(f"{checkpoint} was trained for a {space.name} space config with "
                             f"{key}={override_text(a)}, the search's has {key}={override_text(b)}; "
                             f"{hint}")


def adopt_checkpoint_space(space_cfg: Mapping, checkpoint: Any, typed: Mapping) -> tuple[dict, list[str]]:
    """A search's space config with the layout of the supernet in ``checkpoint``: the
    checkpoint knows its space, so the search takes its settings from there. ``typed``
    holds the ``space.KEY`` values the user gave on the command line: one that contradicts
    the checkpoint is refused (naming both), the rest of the config is replaced. Returns
    the new config and the ``KEY=VALUE`` settings taken over (for the log). The classes
    and channels come from the data, as always; a supernet of another space is left for
    :func:`check_space` to refuse."""
    hp, _ = read_supernet_checkpoint(checkpoint)
    out = dict(space_cfg)
    if str(out.get("_target_", "")) != registry.space_target(hp["space"]):
        return out, []
    taken = []
    for key, value in hp["space_config"].items():
        if key in ("num_classes", "in_channels"):
            continue
        if key in typed and _as_space_sets(hp, key, typed[key]) != value:
            raise ValueError(f"evaluator.checkpoint={checkpoint} is a supernet of the "
                             f"{hp['space']} space with {key}={override_text(value)}, but the "
                             f"command line sets space.{key}={override_text(typed[key])}; drop "
                             f"that override (the search takes the space from the checkpoint)")
        if out.get(key) != value:
            taken.append(f"space.{key}={override_text(value)}")
        out[key] = value
    return out, taken


def _as_space_sets(hp: Mapping, key: str, value: Any) -> Any:
    """``space.KEY=value`` as the checkpoint's space would store it (a shorthand such as
    ``depths=[1,2,3]`` for every stage becomes the per-stage list); the value itself when
    the space refuses it."""
    try:
        space = registry.SPACES.build(hp["space"], **{**hp["space_config"], key: value})
    except Exception:  # noqa: BLE001 - a value the space refuses cannot equal the checkpoint's
        return value
    return space.config().get(key, value)


class InheritedScorer:
    """Scores subnets of a trained supernet: extract, optionally fine-tune, recalibrate BN
    on ``calib_batches`` training batches, measure on the validation split.

    Args:
        checkpoint: a ``python -m nas.supernet`` checkpoint.
        data, train: the search's data config and recipe (batch size and splits; the
            recipe's optimiser and schedule for fine-tuning).
        calib_batches: training batches for BN recalibration.
        finetune_steps: optimiser steps of fine-tuning before scoring (0: none).
        calib_seed: picks which training batches calibrate (the same for every subnet).
    """

    def __init__(self, checkpoint: Any, *, data: Mapping, train: Any, calib_batches: int = 10,
                 finetune_steps: int = 0, calib_seed: int = 0) -> None:
        if isinstance(finetune_steps, bool) or not isinstance(finetune_steps, int) or \
                finetune_steps < 0:
            raise ValueError(f"finetune_steps={finetune_steps!r} is invalid; pass an integer "
                             f">= 0 (0: score the inherited weights as they are)")
        self.checkpoint = str(checkpoint)
        self.supernet, self.sha256 = load_supernet(checkpoint)
        self.train = TrainConfig.from_any(train)
        self.data_cfg = dict(data)
        self.data = SubnetData(data, self.train, calib_batches=calib_batches, seed=calib_seed)
        self.finetune_steps = finetune_steps
        self.fidelity = {"evaluator": "supernet", "checkpoint_sha256": self.sha256[:16],
                         "calib_batches": calib_batches, "finetune_steps": finetune_steps}

    def check_space(self, space: Any) -> None:
        check_space(self.supernet, space, self.checkpoint)

    def network(self, genome: Any, *, seed: int = 0,
                per_image: bool = False) -> tuple[S.ArchSpec, nn.Module, dict]:
        """``(spec, net, score)``: the subnet with its inherited (fine-tuned, recalibrated)
        weights in eval mode, and its validation score (``per_image``: see
        :meth:`SubnetData.score`)."""
        genome = self.supernet.space.canonical(genome)
        spec, state = self.supernet.extract(genome)
        net = B.build(spec)
        net.load_state_dict(state)
        if self.finetune_steps:
            net = self._finetune(spec, net, seed)
        score = self.data.score(net, spec.input[1], per_image=per_image)
        return spec, net, score

    def _finetune(self, spec: S.ArchSpec, net: nn.Module, seed: int) -> nn.Module:
        data = {k: v for k, v in self.data_cfg.items() if k != "name"}
        for k in ("batch_size", "train_fraction", "val_fraction", "resolution", "seed"):
            data.pop(k, None)
        cfg = replace(self.train, epochs=1, warmup_epochs=0.0)
        with quiet_logs(True):
            pl.seed_everything(seed, workers=False, verbose=False)
            dm = registry.datamodule(self.data_cfg["name"], **data, batch_size=cfg.batch_size,
                                 train_fraction=cfg.train_fraction,
                                 val_fraction=cfg.val_fraction, resolution=spec.input[1],
                                 seed=seed)
            model = ClassifierModule(spec, train=cfg, seed=seed)
            model.net.load_state_dict(net.state_dict())
            trainer = pl.Trainer(max_steps=self.finetune_steps, max_epochs=-1,
                                 accelerator=accelerator_of(cfg), devices=1, logger=False,
                                 enable_checkpointing=False, enable_progress_bar=False,
                                 enable_model_summary=False, limit_val_batches=0,
                                 num_sanity_val_steps=0)
            trainer.fit(model, datamodule=dm)
        return model.net.eval()

    def score(self, genome: Any, *, seed: int = 0, per_image: bool = False) -> dict:
        """``{"accuracy", "val_loss", "seconds", ...}`` of one subnet."""
        t0 = time.perf_counter()
        with torch_threads(self.train.num_threads):
            _, _, score = self.network(genome, seed=seed, per_image=per_image)
        return {**score, "seconds": time.perf_counter() - t0}


def file_hash(path: Any) -> str:
    """sha256 of a file's content (the checkpoint id recorded with every score)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
