"""Training: the one path for search candidates, baselines and final training.

* `ClassifierModule` wraps ``build(spec)``: cross-entropy with label smoothing, SGD
  (Nesterov) or AdamW without weight decay on norms and biases, a cosine (with linear
  warmup) or one-cycle schedule stepped per batch. On a GPU it trains in bf16 autocast with a
  channels_last model (optionally ``torch.compile``d); on CPU the same code runs in fp32.
* `TrainConfig` is the recipe; proxy fidelity (epochs, data subset) is configuration.
* `train_spec` trains one spec on one data set and returns a plain dict of metrics. A loss
  that turns NaN/inf or a run over ``max_time_s`` raises `CandidateFailed`, which the
  evaluators record as a failed candidate.

``python -m nas.train`` is :mod:`nas.commands.train`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from nas.build import build
from nas.checkpoints import read_checkpoint
from nas.config import plain
from nas.cost import human, memory_bytes, totals, training_memory
from nas.recipe import (  # noqa: F401 - the recipe is part of nas.train's interface
    OPTIMIZERS,
    SCHEDULES,
    STRATEGIES,
    CandidateFailed,
    TrainConfig,
)
from nas.registry import DATA_KEYS_SET_BY_TRAIN, datamodule
from nas.spec import ArchSpec
from nas.transfer import (
    InitReport,
    freeze_layers,
    load_pretrained,
    parse_freeze,
)

log = logging.getLogger(__name__)

def resolve_precision(precision: str, accelerator: str) -> str:
    """"auto" -> bf16-mixed on CUDA (16-mixed where bf16 is missing), 32-true elsewhere."""
    if precision != "auto":
        return precision
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


# --------------------------------------------------------------------------------------------
# LightningModule
# --------------------------------------------------------------------------------------------


class ClassifierModule(pl.LightningModule):
    """Image classifier built from an ArchSpec.

    Args:
        spec: the architecture (an ArchSpec, or its dict / JSON form, as saved in checkpoints).
        train: the recipe (TrainConfig or a mapping of its fields).
        seed: seeds the initial weights.

    Logged metrics: ``train/loss``, ``val/loss``, ``val/acc``, ``test/loss``, ``test/acc``
    (accuracies are fractions), ``train/images_per_second`` (training images over training
    time, validation excluded), ``train/epoch_seconds`` (wall time of the last epoch,
    validation included) and ``train/epochs`` (epochs completed).
    """

    def __init__(self, spec: ArchSpec | dict | str, *, train: TrainConfig | Mapping | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        if isinstance(spec, str):
            spec = ArchSpec.from_json(spec)
        elif isinstance(spec, dict):
            spec = ArchSpec.from_dict(spec)
        self.spec = spec
        self.cfg = TrainConfig.from_any(train)
        # A checkpoint restores the trained weights itself: it must not re-read train.init
        # (which may have moved), but it keeps the frozen layers frozen.
        self.save_hyperparameters({"spec": spec.to_dict(),
                                   "train": {**self.cfg.to_dict(), "init": None},
                                   "seed": int(seed)})
        self.net = build(spec, seed=seed)
        self.init_report: InitReport | None = None
        if self.cfg.init is not None:
            self.init_report = load_pretrained(self.net, self.cfg.init,
                                               match=self.cfg.init_match)
        self._frozen = freeze_layers(self.net, parse_freeze(self.cfg.freeze, spec))
        if self._frozen and not any(p.requires_grad for p in self.net.parameters()):
            raise ValueError(f"train.freeze={self.cfg.freeze!r} leaves nothing to train in "
                             f"{spec.name or spec.to_string()!r}")
        self.net = self.net.to(memory_format=torch.channels_last)
        if self.cfg.compile:
            self.net.compile()
        # Divergence bookkeeping stays on the device so the check costs no sync per step.
        self._first_bad_step: torch.Tensor | None = None
        self._first_bad_loss: torch.Tensor | None = None
        self._images = 0
        self._train_s = 0.0
        self._epoch_t0: float | None = None
        self._train_t0: float | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def train(self, mode: bool = True):
        """Training mode everywhere but the frozen layers (their BN statistics stay put)."""
        super().train(mode)
        for m in self._frozen:
            m.eval()
        return self

    # Steps ---------------------------------------------------------------------------------
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        ls = self.cfg.label_smoothing
        loss = F.cross_entropy(self(x).float(), y, label_smoothing=ls)
        # Auxiliary classifiers (Inception-v3's) add their weighted loss while training.
        for aux in self.net.aux_outputs():
            loss = loss + self.cfg.aux_weight * F.cross_entropy(aux.float(), y,
                                                                label_smoothing=ls)
        self._check_finite(loss.detach())
        self._images += int(x.shape[0])
        self.log("train/loss", loss, on_step=False, on_epoch=True, sync_dist=True,
                 batch_size=x.shape[0])
        return loss

    def _check_finite(self, loss: torch.Tensor) -> None:
        step = self.global_step
        if self._first_bad_step is None:
            self._first_bad_step = torch.full((), -1, dtype=torch.long, device=loss.device)
            self._first_bad_loss = torch.zeros((), device=loss.device)
        new = ~torch.isfinite(loss) & (self._first_bad_step < 0)
        self._first_bad_step = torch.where(new, step, self._first_bad_step)
        self._first_bad_loss = torch.where(new, loss, self._first_bad_loss)
        # A sync every step is cheap on CPU; on a GPU look every 16 steps (and at epoch end).
        if loss.device.type == "cpu" or step % 16 == 0:
            self._raise_if_diverged()

    def _raise_if_diverged(self) -> None:
        if self._first_bad_step is not None and int(self._first_bad_step) >= 0:
            raise CandidateFailed(f"diverged: loss={float(self._first_bad_loss)} at step "
                                  f"{int(self._first_bad_step)}")

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> None:
        x, y = batch
        logits = self(x).float()
        n = x.shape[0]
        self.log(f"{split}/loss", F.cross_entropy(logits, y), sync_dist=True, batch_size=n)
        self.log(f"{split}/acc", (logits.argmax(1) == y).float().mean(), sync_dist=True,
                 batch_size=n)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    # Timing --------------------------------------------------------------------------------
    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def on_train_epoch_start(self) -> None:
        self._epoch_t0 = self._train_t0 = self._now()

    def _stop_train_clock(self) -> None:
        if self._train_t0 is not None:
            self._train_s += self._now() - self._train_t0
            self._train_t0 = None

    def on_validation_epoch_start(self) -> None:
        self._stop_train_clock()  # validation inside fit is not training throughput

    def on_train_epoch_end(self) -> None:
        self._raise_if_diverged()
        self._stop_train_clock()
        world = self.trainer.world_size if self._trainer is not None else 1
        if self._train_s > 0:
            self.log("train/images_per_second", self._images * world / self._train_s,
                     rank_zero_only=True)
        if self._epoch_t0 is not None:
            self.log("train/epoch_seconds", self._now() - self._epoch_t0, rank_zero_only=True)
        self.log("train/epochs", float(self.current_epoch + 1), rank_zero_only=True)

    # Optimisation ----------------------------------------------------------------------------
    def configure_optimizers(self):
        # The schedule spans the recipe's train.epochs even when this fit stops earlier
        # (successive halving's rungs): a promoted candidate continues the same schedule.
        steps = self.trainer.estimated_stepping_batches
        if self.trainer.max_epochs and self.trainer.max_epochs != self.cfg.epochs:
            steps = steps * self.cfg.epochs / self.trainer.max_epochs
        return make_optimizer(param_groups(self, self.cfg.weight_decay), self.cfg,
                              int(round(steps)))


def make_optimizer(groups: list[dict], cfg: TrainConfig, total_steps: int) -> dict:
    """The recipe's optimiser and per-step schedule over ``total_steps``, as Lightning's
    ``configure_optimizers`` returns them (shared by every LightningModule of the package)."""
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                              nesterov=cfg.momentum > 0)
    else:
        opt = torch.optim.AdamW(groups, lr=cfg.lr)
    total = max(1, int(total_steps))
    warm = int(round(cfg.warmup_epochs / cfg.epochs * total))
    if cfg.schedule == "onecycle":
        pct = cfg.warmup_epochs / cfg.epochs if cfg.warmup_epochs else 0.25
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=total + 1, pct_start=pct,
            cycle_momentum=cfg.optimizer == "sgd" and cfg.momentum > 0)
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _cosine_with_warmup(warm, total))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Two optimiser groups: weights (ndim > 1) with decay, norms and biases (ndim <= 1)
    without (as in timm and Goyal et al. 2017, "no bias decay")."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]


def _cosine_with_warmup(warm: int, total: int):
    """LR factor per step: linear warmup to 1 over ``warm`` steps, then cosine to 0
    (Loshchilov & Hutter 2017, SGDR without restarts; Goyal et al. 2017 for the warmup)."""

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    return factor


class _Deadline(pl.Callback):
    """Raise CandidateFailed once a run exceeds its time limit (checked after every batch)."""

    def __init__(self, limit_s: float, start: float) -> None:
        self.limit_s, self.start = limit_s, start

    def _check(self) -> None:
        if time.perf_counter() - self.start > self.limit_s:
            raise CandidateFailed(f"timeout after {self.limit_s:g} s")

    def on_train_batch_end(self, *args, **kwargs) -> None:
        self._check()

    def on_validation_batch_end(self, *args, **kwargs) -> None:
        self._check()


# --------------------------------------------------------------------------------------------
# train_spec: the one training path
# --------------------------------------------------------------------------------------------


# Advisory messages that do not apply to this module's loaders and one-device runs.
_NOISE = (r".*(smaller than the logging interval|does not have many workers|sync_dist=True"
          r"|Total length of|Checkpoint directory|Experiment logs directory|isinstance\(treespec, LeafSpec\)"
          r"|module\(s\) in eval mode).*")  # frozen layers stay in eval mode on purpose


class _DropTips(logging.Filter):
    """Drop Lightning's advertising lines ("Tip: ... try installing ...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


@contextlib.contextmanager
def quiet_logs(quiet: bool) -> Iterator[None]:
    """Hide advisory warnings; with ``quiet`` also Lightning's info lines (many candidates,
    one log)."""
    names = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    handlers = [h for lg in loggers for h in lg.handlers]
    tips = _DropTips()
    for h in handlers:
        h.addFilter(tips)
    if quiet:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_NOISE)
            yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)
        for h in handlers:
            h.removeFilter(tips)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def keyboard_interrupts() -> Iterator[None]:
    """Around ``trainer.fit``: Lightning turns Ctrl-C into a graceful stop, ``SystemExit(1)``,
    and ignores every later Ctrl-C; give the caller its KeyboardInterrupt back (so a search
    can save its state and say how to resume) and restore the SIGINT handler."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    try:
        yield
    except SystemExit as e:
        if e.code == 1:
            raise KeyboardInterrupt from None
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def check_data(spec: ArchSpec, dm: Any, data_name: str) -> None:
    """Raise ValueError if the spec's input channels or classes do not fit the data set."""
    c, h, w = spec.input
    if h != w:
        raise ValueError(f"spec {spec.name or spec.to_string()!r} has a non-square input {h}x{w}; "
                         f"the data modules serve square images, so build it at one resolution")
    problems = []
    if c != dm.in_channels:
        problems.append(f"{c} input channel(s) but {data_name} has {dm.in_channels}; build it "
                        f"with in_channels={dm.in_channels}")
    if spec.num_classes != dm.num_classes:
        problems.append(f"{spec.num_classes} classes but {data_name} has {dm.num_classes}; "
                        f"build it with num_classes={dm.num_classes}")
    if problems:
        raise ValueError(f"spec {spec.name or spec.to_string()!r} does not fit the data: "
                         + "; ".join(problems) + " (e.g. search_spaces.baselines.get(name, "
                         f"num_classes={dm.num_classes}, in_channels={dm.in_channels}))")


def machine_memory(accelerator: str) -> tuple[str, int] | None:
    """``(where, bytes)`` of the memory a run on ``accelerator`` trains in: the smallest
    visible GPU's for "gpu"/"cuda", else the physical RAM; None when it cannot be told."""
    if accelerator in ("gpu", "cuda") and torch.cuda.is_available():
        sizes = [torch.cuda.get_device_properties(i).total_memory
                 for i in range(torch.cuda.device_count())]
        return "the GPU", int(min(sizes))
    try:
        return "this machine's RAM", int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        return None


def check_memory(spec: ArchSpec, *, batch_size: int, accelerator: str) -> None:
    """Raise `CandidateFailed` ("out of memory: ...") before anything is allocated when
    ``spec`` cannot train in the machine's memory.

    The need is `nas.cost`'s training estimate at ``batch_size`` (the activations stored
    for the backward pass and their gradients, in-place activation functions storing
    nothing extra, plus weights, gradients and one optimiser state, in float32). It is
    compared with the device's total memory, not with what is free at this moment, so that
    a busy machine does not refuse a network that fits.
    """
    have = machine_memory(accelerator)
    _, params, _ = totals(spec)
    need = training_memory(spec, batch_size)
    if have is None or need <= have[1]:
        return
    where, total = have
    state = memory_bytes(0, params)
    fix = ("use a smaller network" if state > total
           else f"lower train.batch_size={batch_size} or use a smaller network")
    raise CandidateFailed(
        f"out of memory: spec {spec.name or spec.to_string()!r} needs about {human(need, 'B')} "
        f"to train at batch {batch_size} (nas.cost's estimate; {human(state, 'B')} of it for "
        f"weights, gradients and optimiser state) but {where} has {human(total, 'B')}; {fix}")


def accelerator_of(cfg: TrainConfig) -> str:
    if cfg.accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return cfg.accelerator


def train_spec(spec: ArchSpec, *, data: Mapping, train: TrainConfig | Mapping, seed: int,
               test: bool = False, run_dir: Path | str | None = None,
               progress: bool = False, stop_epoch: int | None = None,
               resume: bytes | None = None, keep_state: bool = False,
               on_ready: Callable[[], None] | None = None) -> dict:
    """Train ``spec`` on a data set and report its metrics.

    Args:
        spec: the architecture; its input shape fixes the channels and the resolution the
            data are resized to, its output the number of classes.
        data: ``make_datamodule`` keyword arguments, with ``name`` (e.g. ``{"name": "digits"}``);
            batch size, fractions, resolution and seed come from ``train``/``seed``.
        train: the recipe (TrainConfig or a mapping of its fields).
        seed: seeds weights, splits, shuffling and augmentation.
        test: also evaluate on the test split.
        run_dir: where to write ``metrics.csv`` and ``checkpoints/last.ckpt``; None writes
            nothing.
        progress: show Lightning's progress bar and model summary.
        stop_epoch: stop after this many epochs of the recipe's schedule (which still spans
            ``train.epochs``); None: all of them.
        resume: a Lightning checkpoint (bytes, as ``keep_state`` returns it) to continue
            from: weights, optimiser, schedule and epoch counter.
        keep_state: return the trained state as ``"state"`` (a Lightning checkpoint, bytes).
        on_ready: called once every check has passed (the data fit the spec, memory, init
            weights, freezing) and before training writes anything: a command writes its
            run folder's first files there, so a refused run leaves none.

    Returns:
        ``{"status": "ok", "accuracy": val top-1 (0..1, None without a val split),
        "val_loss", "test_accuracy" (only if test), "train_seconds", "images_per_second",
        "epochs", "macs", "params"}`` (+ ``"checkpoint"`` with a run_dir, ``"state"`` with
        ``keep_state``).

    Raises:
        CandidateFailed: the loss became NaN/inf, the run exceeded ``train.max_time_s``,
            or (found before anything is built) the spec cannot train in the machine's
            memory (`check_memory`).
        ValueError: the spec does not fit the data, or a config value is bad.
    """
    t_start = time.perf_counter()
    if not isinstance(spec, ArchSpec):
        raise TypeError(f"train_spec needs an ArchSpec, got {type(spec).__name__}")
    cfg = TrainConfig.from_any(train)
    data = dict(plain(data))
    name = data.pop("name", None)
    if not name:
        raise ValueError("data config needs 'name' (digits, cifar10, cifar100, imagefolder, "
                         "synthetic), e.g. data={'name': 'digits'}")
    clash = [k for k in DATA_KEYS_SET_BY_TRAIN if k in data]
    if clash:
        raise ValueError(f"data.{clash[0]} is set by training (train.{clash[0]}, the spec's "
                         f"input resolution, or the seed); remove it from the data config")
    if cfg.resolution is not None and cfg.resolution != spec.input[1]:
        raise ValueError(f"train.resolution={cfg.resolution} but spec "
                         f"{spec.name or spec.to_string()!r} takes {spec.input[1]}x"
                         f"{spec.input[2]} inputs; build the spec at {cfg.resolution} or set "
                         f"train.resolution=null")
    if stop_epoch is not None and (isinstance(stop_epoch, bool) or not isinstance(
            stop_epoch, int) or not 1 <= stop_epoch <= cfg.epochs):
        raise ValueError(f"stop_epoch={stop_epoch!r} is invalid; pass an epoch in 1.."
                         f"{cfg.epochs} (train.epochs) or None")
    macs, params, _ = totals(spec)
    check_memory(spec, batch_size=cfg.batch_size, accelerator=accelerator_of(cfg))
    with torch_threads(cfg.num_threads), quiet_logs(not progress), \
            tempfile.TemporaryDirectory(prefix="nas-state-") as tmp:
        pl.seed_everything(seed, workers=False, verbose=False)
        dm = datamodule(name, **data, batch_size=cfg.batch_size,
                             train_fraction=cfg.train_fraction, val_fraction=cfg.val_fraction,
                             resolution=spec.input[1], seed=seed)
        check_data(spec, dm, name)
        model = ClassifierModule(spec, train=cfg, seed=seed)
        accelerator = accelerator_of(cfg)
        callbacks: list[pl.Callback] = []
        if cfg.max_time_s is not None:
            callbacks.append(_Deadline(cfg.max_time_s, t_start))
        logger: Any = False
        if run_dir is not None:
            run_dir = Path(run_dir)
            logger = CSVLogger(save_dir=str(run_dir), name="", version="")
            callbacks.append(ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last",
                                             save_top_k=1, monitor=None))
        trainer = pl.Trainer(
            max_epochs=stop_epoch or cfg.epochs, accelerator=accelerator, devices=cfg.devices,
            strategy=cfg.strategy, precision=resolve_precision(cfg.precision, accelerator),
            deterministic=cfg.deterministic, logger=logger, callbacks=callbacks,
            enable_checkpointing=run_dir is not None, enable_progress_bar=progress,
            enable_model_summary=progress, num_sanity_val_steps=0,
            limit_train_batches=cfg.limit_train_batches,
            limit_val_batches=0 if cfg.val_fraction == 0 else None,
            log_every_n_steps=10, default_root_dir=str(run_dir) if run_dir else None,
            use_distributed_sampler=False,  # the data module shards by rank itself
        )
        ckpt_in, start_epoch = None, 0
        if resume is not None:
            ckpt_in = Path(tmp) / "resume.ckpt"
            ckpt_in.write_bytes(resume)
            start_epoch = int(read_checkpoint(ckpt_in, what="saved training state",
                                              fix="train the candidate again").get("epoch", 0))
        if on_ready is not None:
            on_ready()
        t_fit = time.perf_counter()
        with keyboard_interrupts():
            trainer.fit(model, datamodule=dm, ckpt_path=ckpt_in, weights_only=True)
        fit_s = time.perf_counter() - t_fit
        state = None
        if keep_state:
            trainer.save_checkpoint(Path(tmp) / "state.ckpt")
            state = (Path(tmp) / "state.ckpt").read_bytes()
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        out: dict[str, Any] = {
            "status": "ok",
            "accuracy": metrics.get("val/acc"),
            "val_loss": metrics.get("val/loss"),
        }
        if test:
            tested = trainer.test(model, datamodule=dm, verbose=False)
            out["test_accuracy"] = float(tested[0]["test/acc"]) if tested else None
    out.update({
        "train_seconds": fit_s,
        "images_per_second": metrics.get("train/images_per_second"),
        "epochs": int(metrics.get("train/epochs", 0)),
        "macs": macs,
        "params": params,
    })
    if resume is not None:
        out["start_epoch"] = start_epoch  # the epochs the saved state had trained
    if state is not None:
        out["state"] = state
    if model.init_report is not None:
        out.update(model.init_report.to_dict())
    if run_dir is not None:
        out["checkpoint"] = str(run_dir / "checkpoints" / "last.ckpt")
    return out


def validate_spec(spec: ArchSpec, weights: Mapping, *, data: Mapping,
                  train: TrainConfig | Mapping, seed: int) -> dict:
    """Accuracy of ``spec`` with trained ``weights`` (its network's state_dict) on the
    validation split `train_spec` scores it on (same data config, recipe and seed), through
    the same LightningModule and data module. Returns ``{"accuracy", "val_loss",
    "val_images"}``."""
    cfg = TrainConfig.from_any(train)
    data = dict(plain(data))
    name = data.pop("name")
    with torch_threads(cfg.num_threads), quiet_logs(True):
        dm = datamodule(name, **data, batch_size=cfg.batch_size,
                             train_fraction=cfg.train_fraction, val_fraction=cfg.val_fraction,
                             resolution=spec.input[1], seed=seed)
        check_data(spec, dm, name)
        model = ClassifierModule(spec, train=dataclasses.replace(cfg, init=None, freeze=None),
                                 seed=seed)
        model.net.load_state_dict(dict(weights))
        accelerator = accelerator_of(cfg)
        trainer = pl.Trainer(accelerator=accelerator, devices=1, logger=False,
                             precision=resolve_precision(cfg.precision, accelerator),
                             enable_progress_bar=False, enable_model_summary=False,
                             enable_checkpointing=False)
        (out,) = trainer.validate(model, datamodule=dm, verbose=False)
    return {"accuracy": float(out["val/acc"]), "val_loss": float(out["val/loss"]),
            "val_images": len(dm.arrays("val")[1])}
