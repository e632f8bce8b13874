"""Batch-norm recalibration and the data a subnet is calibrated and scored on."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas import build as B
from nas import registry
from nas.registry import split_data_config
from nas.train import TrainConfig


@torch.no_grad()
def calibrate_bn(module: nn.Module, batches: Iterable[torch.Tensor],
                 forward: Callable[[torch.Tensor], Any] | None = None) -> int:
    """Recompute every BatchNorm's running statistics as the plain average over
    ``batches`` (momentum None; Once-for-All's ``set_running_statistics`` does the same
    with a data subset). Leaves ``module`` in eval mode; returns the number of images."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    n = 0
    try:
        for x in batches:
            (forward or module)(x)
            n += int(x.shape[0])
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        module.eval()
    if n == 0:
        raise ValueError("BN calibration got no batches; pass at least one training batch")
    return n


def resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Batch ``x`` at ``resolution`` pixels, resized as the data modules resize (bilinear,
    antialiased when shrinking)."""
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear",
                         align_corners=False, antialias=resolution < max(x.shape[-2:]))


class SubnetData:
    """The images that score a subnet: ``calib_batches`` training batches (no augmentation)
    for BN recalibration and the whole validation split, normalised at the data's native
    size and resized to each subnet's resolution on demand (cached per resolution).

    Args:
        data: ``make_datamodule`` kwargs with ``name`` (the search's data config).
        train: the recipe; its batch size, ``train_fraction`` and ``val_fraction`` make the
            same splits as the from-scratch proxy (the validation split is fixed by
            ``data.split_seed``).
        calib_batches: training batches for BN recalibration.
        seed: picks which training batches calibrate.
    """

    def __init__(self, data: Mapping, train: Any, *, calib_batches: int, seed: int = 0) -> None:
        cfg = TrainConfig.from_any(train)
        name, data = split_data_config(data)
        if isinstance(calib_batches, bool) or not isinstance(calib_batches, int) or \
                calib_batches < 1:
            raise ValueError(f"calib_batches={calib_batches!r} is invalid; pass a positive "
                             f"number of training batches for BN recalibration")
        if cfg.val_fraction <= 0:
            raise ValueError("scoring subnets needs a validation split: set "
                             "train.val_fraction > 0")
        self.dm = registry.datamodule(name, **data, batch_size=cfg.batch_size,
                                  train_fraction=cfg.train_fraction,
                                  val_fraction=cfg.val_fraction, seed=int(seed))
        self.calib_batches = calib_batches
        calib = []
        for i, batch in enumerate(self.dm.train_dataloader()):
            if i == calib_batches:
                break
            calib.append(self.dm.on_after_batch_transfer(batch)[0])
        self._native = {"calib": [(x, None) for x in calib],
                        "val": [self.dm.on_after_batch_transfer(b)
                                for b in self.dm.val_dataloader()]}
        self._cache: dict[tuple[str, int], list] = {}

    def batches(self, split: str, resolution: int) -> list[tuple[torch.Tensor, Any]]:
        """The split's batches at ``resolution``, channels-last (the layout `score` runs
        subnets in)."""
        key = (split, int(resolution))
        if key not in self._cache:
            self._cache[key] = [(resize(x, resolution).contiguous(
                memory_format=torch.channels_last), y) for x, y in self._native[split]]
        return self._cache[key]

    @torch.no_grad()
    def score(self, net: nn.Module, resolution: int, *,
              per_image: bool = False) -> dict[str, Any]:
        """Recalibrate ``net``'s BN statistics, then its validation accuracy and loss
        (with ``per_image``, also ``"correct"``: a bool array, one entry per validation
        image in split order).

        Runs ``net`` in the channels-last layout (converted in place, and back to the
        default layout before returning): PyTorch's CPU kernels for the depthwise and 1x1
        convolutions of these subnets run 1.3-3.6x faster in it (RESULTS.md 7.4); outputs
        agree with the default layout to ~1e-7. The validation pass runs with BN folded into
        the convolutions (:func:`nas.build.bn_folded`; outputs agree to ~1e-5), put back
        before returning: ``net`` keeps its recalibrated BN layers."""
        dev = next(net.parameters()).device
        net.to(memory_format=torch.channels_last)
        try:
            return self._score(net, resolution, dev, per_image)
        finally:
            net.to(memory_format=torch.contiguous_format)

    def _score(self, net: nn.Module, resolution: int, dev: torch.device,
               per_image: bool) -> dict[str, Any]:
        n_cal = calibrate_bn(net, (x.to(dev) for x, _ in self.batches("calib", resolution)))
        hits, loss, n = [], 0.0, 0
        with B.bn_folded(net) as folded:  # a fifth to a third faster (RESULTS.md 7.6)
            for x, y in self.batches("val", resolution):
                logits = folded(x.to(dev)).float().cpu()
                hits.append(logits.argmax(1) == y)
                loss += float(F.cross_entropy(logits, y, reduction="sum"))
                n += int(y.shape[0])
        correct = torch.cat(hits)
        out = {"accuracy": int(correct.sum()) / n, "val_loss": loss / n,
               "calib_images": n_cal, "val_images": n}
        if per_image:
            out["correct"] = correct.numpy()
        return out
