"""Batches served by index from in-memory tensors, and on-device augmentation.

`IndexBatchLoader` yields ``(images[idx], labels[idx])`` from uint8 tensors resident on the
CPU or the GPU, with a per-epoch seeded order; `random_crop_flip` is the vectorised random
crop with padding and horizontal flip that `ImageDataModule` applies to training batches on
whatever device they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from nas import checks


def _mix_seed(*keys: int) -> int:
    """Independent 63-bit seed for a tuple of keys (seed + epoch would collide across seeds)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0] >> 1)


# --------------------------------------------------------------------------- loader


class IndexBatchLoader:
    """Batches of ``(images[idx], labels[idx])`` from tensors already in memory.

    Works the same on CPU and CUDA tensors; Lightning accepts any sized iterable. Each pass
    draws a new order from a CPU `torch.Generator` seeded with (seed, epoch), so the order is
    the same on every device and reproducible after a resume.

    Args:
        images: uint8 (N, H, W, C) tensor; batches come out as (B, C, H, W) views of it
            (channels_last memory).
        labels: int64 (N,) tensor on the same device.
        batch_size: samples per batch.
        shuffle: draw a new permutation every epoch (else keep the stored order).
        drop_last: leave out the last partial batch.
        seed: seed of the shuffle.
        rank, world_size: shard for distributed training (each rank gets an equal share;
            like `DistributedSampler`, the order is padded by repetition or truncated).
        epoch_fn: returns the current epoch when a pass starts (e.g. the trainer's); without
            it the loader counts its own passes, starting at `set_epoch`'s value.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        epoch_fn: Callable[[], int] | None = None,
    ) -> None:
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"images has {images.shape[0]} rows but labels has {labels.shape[0]}; "
                "pass one label per image"
            )
        if images.ndim != 4:
            raise ValueError(f"images has shape {tuple(images.shape)}; pass (N, H, W, C)")
        self.batch_size = checks.integer("batch_size", batch_size, lo=1)
        self.world_size = checks.integer("world_size", world_size, lo=1)
        if not 0 <= rank < self.world_size:
            raise ValueError(f"rank={rank!r} is invalid; pass 0 <= rank < world_size={world_size}")
        self.images, self.labels = images, labels
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.seed, self.rank = int(seed), int(rank)
        self.epoch_fn = epoch_fn
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use this epoch's order on the next pass (the count then goes on from there)."""
        self.epoch = int(epoch)

    def _samples_per_rank(self) -> int:
        n = int(self.labels.shape[0])
        if self.world_size == 1:
            return n
        return n // self.world_size if self.drop_last else -(-n // self.world_size)

    def __len__(self) -> int:
        m = self._samples_per_rank()
        return m // self.batch_size if self.drop_last else -(-m // self.batch_size)

    def order(self, epoch: int) -> torch.Tensor:
        """This rank's sample indices for `epoch` (CPU int64 tensor)."""
        n = int(self.labels.shape[0])
        if self.shuffle:
            gen = torch.Generator().manual_seed(_mix_seed(self.seed, epoch))
            order = torch.randperm(n, generator=gen)
        else:
            order = torch.arange(n)
        if self.world_size > 1 and n > 0:
            total = self._samples_per_rank() * self.world_size
            order = order.repeat(-(-total // n))[:total][self.rank :: self.world_size]
        return order[: len(self) * self.batch_size] if self.drop_last else order

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # A generator: nothing below runs until the first batch is asked for, so Lightning's
        # `iter()` probe does not consume an epoch.
        epoch = self.epoch_fn() if self.epoch_fn is not None else self.epoch
        self.epoch = epoch + 1
        order = self.order(epoch).to(self.images.device, non_blocking=True)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield self.images.index_select(0, idx).permute(0, 3, 1, 2), self.labels[idx]


# --------------------------------------------------------------------------- augmentation


def random_crop_flip(
    x: torch.Tensor, *, pad: int, flip: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random crop after zero padding by `pad`, then random horizontal flip, per sample.

    Vectorised: one gather with per-sample row/column offsets, no Python loop over samples.

    Args:
        x: (N, C, H, W) tensor of any dtype (uint8 keeps the gather cheap).
        pad: padding on each side; offsets are uniform in [0, 2 * pad].
        flip: flip each sample left-right with probability 1/2.
        generator: random generator on x's device (None: torch's default).

    Returns:
        (N, C, H, W) tensor in channels_last memory.
    """
    n, _, h, w = x.shape
    dev = x.device
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        off = torch.randint(0, 2 * pad + 1, (2, n, 1), device=dev, generator=generator)
        rows = off[0] + torch.arange(h, device=dev)  # (N, H)
        cols = off[1] + torch.arange(w, device=dev)  # (N, W)
        batch = torch.arange(n, device=dev)[:, None, None]
        # Indices on dims 0, 2, 3 around a slice: the result is (N, H, W, C).
        x = padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip:
        mask = torch.rand(n, device=dev, generator=generator) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x.contiguous(memory_format=torch.channels_last)
