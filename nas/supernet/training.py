"""Training a supernet: the Lightning module (sandwich rule, uniform sampling, in-place
distillation, progressive shrinking) and the callback scoring its extremes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from nas import checks, registry
from nas.supernet.calibration import SubnetData, resize
from nas.supernet.spaces import make_supernet, subnet_net
from nas.train import CandidateFailed, TrainConfig, make_optimizer


class SupernetModule(pl.LightningModule):
    """Trains a supernet with ``nas.train``'s recipe (optimiser, schedule, weight decay
    rules, label smoothing, precision).

    Each step follows the sandwich rule (Yu et al., BigNAS 2020): the largest subnet, the
    smallest and ``random_subnets`` random ones, each at its own input resolution; the
    largest learns from the labels, the others (with ``distill``) from the largest's
    detached predictions (in-place distillation, soft cross-entropy). With
    ``sandwich=False`` a step trains only the ``random_subnets`` uniformly drawn subnets,
    each from the labels (single-path uniform sampling, Guo et al., SPOS 2020): every subnet
    gets the same expected share of the training, the extremes none extra. Gradients of
    all of them are summed before one optimiser step. Random subnets are drawn from
    ``(seed, global_step)``, so a resumed run samples what the killed one would have.

    Args:
        space: the space name; ``space_config``: its constructor kwargs (``config()``).
        width: a mobile supernet's width multiplier (None: the largest choice).
        block: a residual supernet's block type (None: the first choice).
        train: the recipe (TrainConfig fields).
        random_subnets, sandwich, distill, sort_channels: see above and
            :meth:`MobileSupernet.sort_channels` (each epoch after the first).
        progressive: progressive shrinking (Cai et al., Once-for-All 2020): gene kinds (the
            last part of a gene's name, e.g. ``[kernel, depth, expand]`` for mobile) in the
            order they become elastic. The epochs are split into ``len + 1`` equal phases:
            in the first every listed kind is held at its largest choice, each later phase
            frees the next kind. Unlisted kinds (resolution, SE) are elastic throughout.
            None: every gene elastic from the start.
        seed: initial weights and subnet sampling.
    """

    def __init__(self, *, space: str, space_config: Mapping, width: float | None = None,
                 block: str | None = None, train: Any = None, random_subnets: int = 2,
                 distill: bool = True, sort_channels: bool = True,
                 progressive: Iterable[str] | None = None, seed: int = 0,
                 sandwich: bool = True) -> None:
        super().__init__()
        if isinstance(random_subnets, bool) or not isinstance(random_subnets, int) or \
                random_subnets < 0:
            raise ValueError(f"supernet.random_subnets={random_subnets!r} is invalid; pass "
                             f"an integer >= 0")
        sandwich = checks.boolean("supernet.sandwich", sandwich)
        if not sandwich and random_subnets < 1:
            raise ValueError("supernet.sandwich=false trains only random subnets: set "
                             "supernet.random_subnets >= 1")
        self.cfg = TrainConfig.from_any(train)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.supernet = make_supernet(registry.SPACES.build(space, **dict(space_config)), width=width,
                                          block=block)
        self.space = self.supernet.space
        self.progressive = None if progressive is None else [str(k) for k in progressive]
        kinds = {g.name.rsplit(".", 1)[-1]: None for g in self.space.genes}
        bad = [k for k in self.progressive or [] if k not in kinds]
        if bad or (self.progressive is not None and
                   (not self.progressive or len(set(self.progressive)) < len(self.progressive))):
            raise ValueError(f"supernet.progressive={self.progressive!r} is invalid; pass null "
                             f"or distinct gene kinds of the {self.space.name} space in the "
                             f"order they become elastic, from: {', '.join(kinds)}")
        self.random_subnets = random_subnets
        self.distill = checks.boolean("supernet.distill", distill)
        # without the sandwich no largest subnet runs in a step: nothing to distil from
        self.sandwich_rule = sandwich
        self.sort = checks.boolean("supernet.sort_channels", sort_channels)
        self.seed = int(seed)
        self.automatic_optimization = False
        self.save_hyperparameters({
            "space": self.space.name, "space_config": self.space.config(),
            "width": getattr(self.supernet, "width", None),
            "block": getattr(self.supernet, "block", None), "train": self.cfg.to_dict(),
            "random_subnets": random_subnets, "sandwich": self.sandwich_rule,
            "distill": self.distill,
            "sort_channels": self.sort, "progressive": self.progressive, "seed": self.seed})

    def forward(self, x: torch.Tensor, genome: Any) -> torch.Tensor:
        return self.supernet(x, genome)

    def held(self, epoch: int | None) -> list[str]:
        """The gene kinds held at their largest choice in ``epoch`` (progressive
        shrinking; none without it, or for ``epoch=None``)."""
        if self.progressive is None or epoch is None:
            return []
        phases = len(self.progressive) + 1
        phase = min(phases - 1, int(epoch) * phases // max(1, self.cfg.epochs))
        return self.progressive[phase:]

    def sandwich(self, step: int, epoch: int | None = None) -> list[tuple[int, ...]]:
        """The subnets of one step: largest, smallest (without ``sandwich``: neither), then
        the random ones (with progressive shrinking, the kinds :meth:`held` in ``epoch`` at
        their largest)."""
        rng = np.random.default_rng([self.seed, int(step)])
        big = self.supernet.largest()
        nets = [*([big, self.supernet.smallest()] if self.sandwich_rule else []),
                *map(tuple, self.space.sample(self.random_subnets, rng))]
        held = set(self.held(epoch))
        if not held:
            return nets
        pos = [g.position for g in self.space.genes if g.name.rsplit(".", 1)[-1] in held]
        out = []
        for genome in nets:
            g = list(genome)
            for i in pos:
                g[i] = big[i]
            out.append(tuple(self.space.canonical(g)))
        return out

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        opt = self.optimizers()
        sched = self.lr_schedulers()
        opt.zero_grad()
        teacher = None
        losses = []
        # One process: a backward pass per subnet (one graph alive at a time). DDP reduces
        # gradients once per step, so there the subnets' losses are summed into one backward.
        distributed = self.trainer.world_size > 1
        total = 0.0
        for genome in self.sandwich(self.global_step, self.current_epoch):
            res = self.space.values(genome)["resolution"]
            logits = self.supernet(resize(x, res), genome).float()
            if teacher is None or not self.distill:
                loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)
            else:
                loss = -(teacher * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
            if teacher is None and self.sandwich_rule:  # the largest's predictions
                teacher = F.softmax(logits.detach(), dim=1)
            if distributed:
                total = total + loss
            else:
                self.manual_backward(loss)
            losses.append(loss.detach())
        if distributed:
            self.manual_backward(total)
        if not all(torch.isfinite(v) for v in losses):
            raise CandidateFailed(f"diverged: losses {[float(v) for v in losses]} at step "
                                  f"{self.global_step}")
        opt.step()
        sched.step()
        n = x.shape[0]
        if self.sandwich_rule:
            self.log("train/loss_largest", losses[0], on_step=False, on_epoch=True,
                     batch_size=n)
            self.log("train/loss_smallest", losses[1], on_step=False, on_epoch=True,
                     batch_size=n, prog_bar=True)
        else:
            self.log("train/loss", torch.stack(losses).mean(), on_step=False, on_epoch=True,
                     batch_size=n, prog_bar=True)

    def on_train_epoch_start(self) -> None:
        # Dropout draws from torch's global generator: seeding it per epoch makes a run
        # resumed from an epoch's checkpoint draw what the uninterrupted run drew.
        torch.manual_seed(self.seed * 100_003 + self.current_epoch)
        if self.sort and self.current_epoch > 0:
            self.supernet.sort_channels(self.optimizers().optimizer)

    def configure_optimizers(self):
        params = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        # Kernel maps start as identities: decay would pull them towards zero.
        decay = [p for n, p in params if p.ndim > 1 and "kernel_maps" not in n]
        rest = [p for n, p in params if not (p.ndim > 1 and "kernel_maps" not in n)]
        groups = [{"params": decay, "weight_decay": self.cfg.weight_decay},
                  {"params": rest, "weight_decay": 0.0}]
        return make_optimizer(groups, self.cfg, int(self.trainer.estimated_stepping_batches))


class ScoreExtremes(pl.Callback):
    """After every epoch, the inherited accuracy of the largest and smallest subnet
    (BN recalibrated, on the validation split), logged as ``val/acc_largest`` and
    ``val/acc_smallest``; ``last`` holds the latest."""

    def __init__(self, data: SubnetData) -> None:
        self.data = data
        self.last: dict[str, float] = {}

    def scores(self, module: SupernetModule) -> dict[str, float]:
        sn = module.supernet
        out = {}
        for label, genome in (("largest", sn.largest()), ("smallest", sn.smallest())):
            net = subnet_net(sn, genome).to(module.device)
            res = sn.space.values(genome)["resolution"]
            out[label] = self.data.score(net, res)["accuracy"]
        return out

    def on_train_epoch_end(self, trainer: pl.Trainer, module: SupernetModule) -> None:
        self.last = self.scores(module)
        for label, acc in self.last.items():
            module.log(f"val/acc_{label}", acc, prog_bar=True)
