"""LightningDataModules for image classification.

One training path serves search candidates, baselines and final training, so every data set
goes through the same `ImageDataModule`:

* the raw uint8 images (N, H, W, C) are decoded once (file sources are cached as .npz);
* validation is carved from the *training* data (stratified, seeded); the test split is
  only for final reports;
* fidelity is configuration: ``train_fraction`` keeps a seeded stratified subset;
* batches are served by index from in-memory tensors (`IndexBatchLoader`), resident on the
  GPU when training there, so there is no per-sample Python work and no worker processes;
* augmentation (random crop with padding, horizontal flip), normalisation and resizing run
  in `on_after_batch_transfer`, on whatever device the batch is on.

Use `make_datamodule(name, **kwargs)`; ``name`` is one of `DATASETS`.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import json
import logging
import numbers
import os
import pickle
import re
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

DATASETS: tuple[str, ...] = ("digits", "cifar10", "cifar100", "imagefolder", "synthetic")
SPLITS: tuple[str, ...] = ("train", "val", "test")
RESIDENT_MODES: tuple[str, ...] = ("auto", "device", "cpu")
BAD_FILE_MODES: tuple[str, ...] = ("error", "skip")

# Per-channel statistics on the 0..1 scale. CIFAR-10: train+test pixels of the JPEG copy in
# shared/data (its README); CIFAR-100: the commonly quoted training-set values.
CIFAR10_MEAN, CIFAR10_STD = (0.4917, 0.4826, 0.4472), (0.2452, 0.2427, 0.2606)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)

# Official python-pickle archives (Krizhevsky, 2009) and their md5 sums.
CIFAR_DOWNLOADS: dict[str, tuple[str, str]] = {
    "cifar10": (
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
    ),
    "cifar100": (
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
    ),
}

# Bump when the cached arrays change meaning, so old caches are not reused.
_CACHE_VERSION = 1
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
_PROGRESS_MIN_FILES = 1000


# --------------------------------------------------------------------------- validation


def _check_int(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}={value!r} is invalid; pass an integer >= {minimum}")
    return int(value)


def _check_fraction(name: str, value: object, *, low: float, high: float, closed: str) -> float:
    """`closed` says which ends are allowed: "left" -> [low, high), "right" -> (low, high]."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = (low <= v < high) if closed == "left" else (low < v <= high)
    if not ok:
        interval = f"[{low}, {high})" if closed == "left" else f"({low}, {high}]"
        raise ValueError(f"{name}={value!r} is invalid; pass a number in {interval}")
    return float(value)


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is invalid; pass one of {', '.join(choices)}")
    return str(value)


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}={value!r} is invalid; pass True or False")
    return bool(value)


def _check_stats(name: str, value: object) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        stats = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        stats = ()
    if not stats or (name == "std" and min(stats) <= 0):
        raise ValueError(
            f"{name}={value!r} is invalid; pass one number per channel on the 0..1 scale"
            + (" (all > 0)" if name == "std" else "")
        )
    return stats


def _mix_seed(*keys: int) -> int:
    """Independent 63-bit seed for a tuple of keys (seed + epoch would collide across seeds)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0] >> 1)


def default_cache_dir() -> Path:
    """Where decoded data sets are cached: $NAS_CACHE, else ~/.cache/nas."""
    return Path(os.environ.get("NAS_CACHE") or Path.home() / ".cache" / "nas").expanduser()


# --------------------------------------------------------------------------- splits


def stratified_take(
    labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into a stratified random `fraction` and the rest.

    Every class gives `fraction` of its samples; leftover samples go to the classes with the
    largest remainders, so the total is round(fraction * N).

    Returns:
        (taken, rest): sorted int64 index arrays into `labels`.
    """
    labels = np.asarray(labels)
    _, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse)
    exact = fraction * counts
    per_class = np.floor(exact).astype(np.int64)
    short = int(round(fraction * len(labels))) - int(per_class.sum())
    per_class[np.argsort(-(exact - per_class), kind="stable")[:short]] += 1
    taken = [rng.permutation(np.flatnonzero(inverse == c))[:k] for c, k in enumerate(per_class)]
    taken_idx = np.sort(np.concatenate(taken)).astype(np.int64) if taken else np.zeros(0, np.int64)
    rest = np.setdiff1d(np.arange(len(labels)), taken_idx, assume_unique=True).astype(np.int64)
    return taken_idx, rest


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std on the 0..1 scale of uint8 (N, H, W, C) images.

    Uses a 256-bin histogram per channel: exact, and no float copy of the data set.
    """
    values = np.arange(256, dtype=np.float64) / 255.0
    mean, std = [], []
    for c in range(images.shape[-1]):
        hist = np.bincount(images[..., c].ravel(), minlength=256).astype(np.float64)
        m = float(hist @ values / hist.sum())
        mean.append(m)
        std.append(float(np.sqrt(max(hist @ (values - m) ** 2 / hist.sum(), 1e-12))))
    return tuple(mean), tuple(std)


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
        self.batch_size = _check_int("batch_size", batch_size, minimum=1)
        self.world_size = _check_int("world_size", world_size, minimum=1)
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


# --------------------------------------------------------------------------- base module


@dataclass
class RawData:
    """What a data source yields: uint8 (N, H, W, C) images, int64 labels, metadata."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pad: int
    flip: bool
    skipped: list[str] = field(default_factory=list)
    cache_path: Path | None = None
    from_cache: bool = False


class ImageDataModule(pl.LightningDataModule):
    """Image classification data: seeded splits, index batches, on-device augmentation.

    Subclasses implement `_load` (returning `RawData`); everything else is shared.

    Args:
        batch_size: samples per batch.
        val_fraction: share of the training data held out for validation (stratified,
            seeded; the same for every `train_fraction`). 0 gives an empty val split.
        train_fraction: fidelity: keep this stratified seeded share of the rest.
        resolution: output side length; batches are resized on device when it differs
            from the native size. None: native.
        seed: seeds the shuffle and the augmentation (and the splits when `split_seed` is
            None).
        split_seed: seeds the validation and `train_fraction` splits; an int keeps them the
            same for every `seed`, so that runs with different seeds validate on the same
            images and their accuracies compare. None: `seed`.
        augment: random crop + flip on training batches.
        crop_pad, flip: override the data set's augmentation defaults.
        num_workers: threads decoding image files on an uncached first load (0: in this
            thread). Batches come from memory, so no DataLoader workers are used.
        resident: "auto" keeps the data on the GPU when the trainer runs on CUDA; "device"
            on the trainer's device whatever it is; "cpu" always in host memory.
        mean, std: override the per-channel normalisation (0..1 scale).
    """

    name: str = "images"

    def __init__(
        self,
        *,
        batch_size: int = 128,
        val_fraction: float = 0.1,
        train_fraction: float = 1.0,
        resolution: int | None = None,
        seed: int = 0,
        split_seed: int | None = None,
        augment: bool = True,
        crop_pad: int | None = None,
        flip: bool | None = None,
        num_workers: int = 0,
        resident: str = "auto",
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        self.batch_size = _check_int("batch_size", batch_size, minimum=1)
        self.val_fraction = _check_fraction(
            "val_fraction", val_fraction, low=0, high=1, closed="left"
        )
        self.train_fraction = _check_fraction(
            "train_fraction", train_fraction, low=0, high=1, closed="right"
        )
        res = None if resolution is None else _check_int("resolution", resolution, minimum=1)
        self.seed = _check_int("seed", seed, minimum=0)
        self.split_seed = (self.seed if split_seed is None
                           else _check_int("split_seed", split_seed, minimum=0))
        self.augment = _check_bool("augment", augment)
        crop_pad = None if crop_pad is None else _check_int("crop_pad", crop_pad, minimum=0)
        flip = None if flip is None else _check_bool("flip", flip)
        self.num_workers = _check_int("num_workers", num_workers, minimum=0)
        self.resident = _check_choice("resident", resident, RESIDENT_MODES)
        mean, std = _check_stats("mean", mean), _check_stats("std", std)

        raw = self._load()
        self._raw = raw
        self.classes: list[str] = list(raw.classes)
        self.num_classes: int = len(self.classes)
        self.native_resolution: int = int(raw.x_train.shape[1])
        self.in_channels: int = int(raw.x_train.shape[3])
        self.resolution: int = res if res is not None else self.native_resolution
        for label, stats in (("mean", mean), ("std", std)):
            if stats is not None and len(stats) != self.in_channels:
                raise ValueError(
                    f"{label}={stats!r} has {len(stats)} values but {self.name} has "
                    f"{self.in_channels} channel(s); pass one value per channel"
                )
        self.mean: tuple[float, ...] = mean if mean is not None else tuple(raw.mean)
        self.std: tuple[float, ...] = std if std is not None else tuple(raw.std)
        self.crop_pad: int = raw.crop_pad if crop_pad is None else crop_pad
        self.flip: bool = raw.flip if flip is None else flip
        self.skipped_files: list[str] = list(raw.skipped)
        self.cache_path: Path | None = raw.cache_path
        self.from_cache: bool = raw.from_cache
        self._split_index = self._make_splits(raw.y_train)
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._device = torch.device("cpu")
        self._norm: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._generators: dict[torch.device, torch.Generator] = {}

    def _load(self) -> RawData:
        raise NotImplementedError(f"{type(self).__name__} must implement _load()")

    def _make_splits(self, labels: np.ndarray) -> dict[str, np.ndarray]:
        # Separate streams, so the val split does not move when train_fraction changes.
        val, rest = np.zeros(0, np.int64), np.arange(len(labels), dtype=np.int64)
        if self.val_fraction > 0:
            val, rest = stratified_take(
                labels, self.val_fraction, np.random.default_rng([self.split_seed, 0])
            )
            if len(val) == 0:
                raise ValueError(
                    f"val_fraction={self.val_fraction} of {len(labels)} training images gives "
                    "an empty validation split; raise val_fraction or pass val_fraction=0"
                )
        if self.train_fraction < 1:
            keep, _ = stratified_take(
                labels[rest], self.train_fraction, np.random.default_rng([self.split_seed, 1])
            )
            rest = rest[keep]
        if len(rest) == 0:
            raise ValueError(
                f"train_fraction={self.train_fraction} with val_fraction={self.val_fraction} "
                f"leaves no training images out of {len(labels)}; raise train_fraction"
            )
        return {"train": rest, "val": val}

    # ------------------------------------------------------------------ arrays and tensors

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (N, H, W, C) images and int64 labels of "train", "val" or "test" (copies)."""
        split = _check_choice("split", split, SPLITS)
        if split == "test":
            return self._raw.x_test.copy(), self._raw.y_test.copy()
        idx = self._split_index[split]
        return self._raw.x_train[idx], self._raw.y_train[idx]

    def split_size(self, split: str) -> int:
        """Images in "train" (after `train_fraction`), "val" or "test"."""
        split = _check_choice("split", split, SPLITS)
        if split == "test":
            return int(len(self._raw.y_test))
        return int(len(self._split_index[split]))

    def setup(self, stage: str | None = None) -> None:
        """Pick where the uint8 data live (see `resident`); tensors are built on first use."""
        device = torch.device("cpu")
        if self.trainer is not None and self.resident != "cpu":
            root = self.trainer.strategy.root_device
            if self.resident == "device" or root.type == "cuda":
                device = root
        if device != self._device:
            self._tensors.clear()
        self._device = device

    def _split_tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if split not in self._tensors:
            x, y = self.arrays(split)
            self._tensors[split] = (
                torch.from_numpy(np.ascontiguousarray(x)).to(self._device),
                torch.from_numpy(y.astype(np.int64)).to(self._device),
            )
        return self._tensors[split]

    def _trainer_epoch(self) -> int:
        return int(self.trainer.current_epoch) if self.trainer is not None else 0

    def _loader(self, split: str, *, train: bool) -> IndexBatchLoader:
        x, y = self._split_tensors(split)
        rank, world = 0, 1
        if self.trainer is not None:
            rank, world = int(self.trainer.global_rank), int(self.trainer.world_size)
        per_rank = -(-len(y) // world)
        return IndexBatchLoader(
            x,
            y,
            batch_size=self.batch_size,
            shuffle=train,
            # Keep a lone partial batch rather than train on nothing.
            drop_last=train and per_rank >= self.batch_size,
            seed=self.seed,
            rank=rank,
            world_size=world,
            epoch_fn=self._trainer_epoch if (train and self.trainer is not None) else None,
        )

    def train_dataloader(self) -> IndexBatchLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> IndexBatchLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> IndexBatchLoader:
        return self._loader("test", train=False)

    # ------------------------------------------------------------------ batch transforms

    def _generator(self, device: torch.device) -> torch.Generator:
        if device not in self._generators:
            rank = int(self.trainer.global_rank) if self.trainer is not None else 0
            gen = torch.Generator(device=device)
            gen.manual_seed(_mix_seed(self.seed, rank, 2))
            self._generators[device] = gen
        return self._generators[device]

    def _scale_shift(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._norm:
            mean = torch.tensor(self.mean, dtype=torch.float32)
            std = torch.tensor(self.std, dtype=torch.float32)
            # (x / 255 - mean) / std == x * scale + shift, one fused op per batch.
            scale = (1.0 / (255.0 * std)).view(1, -1, 1, 1).to(device)
            shift = (-mean / std).view(1, -1, 1, 1).to(device)
            self._norm[device] = (scale, shift)
        return self._norm[device]

    def on_after_batch_transfer(self, batch, dataloader_idx: int = 0):
        """uint8 (N, C, H, W) -> augmented (training only), normalised, resized float32.

        Runs on the batch's device. Returns ``(x, y)`` with x channels_last contiguous.
        """
        x, y = batch
        if x.dtype != torch.uint8:
            raise TypeError(
                f"{type(self).__name__} expects uint8 image batches, got {x.dtype}; "
                "use this module's own dataloaders"
            )
        training = self.trainer is not None and bool(self.trainer.training)
        if training and self.augment and (self.crop_pad > 0 or self.flip):
            x = random_crop_flip(
                x, pad=self.crop_pad, flip=self.flip, generator=self._generator(x.device)
            )
        scale, shift = self._scale_shift(x.device)
        x = torch.addcmul(shift, x.float(), scale)
        if self.resolution != x.shape[-1] or self.resolution != x.shape[-2]:
            x = F.interpolate(
                x,
                size=(self.resolution, self.resolution),
                mode="bilinear",
                align_corners=False,
                antialias=self.resolution < max(x.shape[-2:]),
            )
        return x.contiguous(memory_format=torch.channels_last), y

    def __repr__(self) -> str:
        n = {**{s: len(i) for s, i in self._split_index.items()}, "test": len(self._raw.y_test)}
        sizes = ", ".join(f"{s}={n[s]}" for s in SPLITS)
        return (
            f"{type(self).__name__}(name={self.name!r}, classes={self.num_classes}, "
            f"{self.in_channels}x{self.resolution}x{self.resolution}, {sizes})"
        )

    # Lightning's __str__ inspects the loaders as if they were torch DataLoaders.
    __str__ = __repr__


# --------------------------------------------------------------------------- digits


class DigitsDataModule(ImageDataModule):
    """scikit-learn's 8x8 handwritten digits (1797 images, bundled), upsampled to `size`.

    Args:
        size: side length after bilinear upsampling with Pillow.
        test_fraction: share held out as the test split (stratified).
        data_seed: seeds the train/test split; kept apart from `seed` so that runs with
            different seeds report on the same test images.
        **common: see `ImageDataModule`.
    """

    name = "digits"

    def __init__(
        self, *, size: int = 32, test_fraction: float = 0.2, data_seed: int = 0, **common
    ) -> None:
        self.size = _check_int("size", size, minimum=8)
        self.test_fraction = _check_fraction(
            "test_fraction", test_fraction, low=0, high=1, closed="left"
        )
        if self.test_fraction == 0:
            raise ValueError("test_fraction=0 is invalid; pass a number in (0, 1)")
        self.data_seed = _check_int("data_seed", data_seed, minimum=0)
        super().__init__(**common)

    def _load(self) -> RawData:
        from sklearn.datasets import load_digits

        digits = load_digits()
        small = np.round(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
        if self.size == small.shape[1]:
            images = small
        else:
            images = np.stack(
                [
                    np.asarray(
                        Image.fromarray(img).resize(
                            (self.size, self.size), Image.Resampling.BILINEAR
                        )
                    )
                    for img in small
                ]
            )
        images = images[..., None]
        labels = digits.target.astype(np.int64)
        test, train = stratified_take(
            labels, self.test_fraction, np.random.default_rng(self.data_seed)
        )
        mean, std = channel_stats(images)
        return RawData(
            x_train=images[train],
            y_train=labels[train],
            x_test=images[test],
            y_test=labels[test],
            classes=[str(d) for d in range(10)],
            mean=mean,
            std=std,
            crop_pad=2,
            flip=False,
        )


# --------------------------------------------------------------------------- synthetic


class SyntheticDataModule(ImageDataModule):
    """Generated images a small CNN learns in a few epochs (for tests and smoke runs).

    Each class has a fixed random low-frequency template (4x4 per channel, upsampled);
    an image is its class template at a random contrast plus pixel noise.

    Args:
        num_classes, size, channels: shape of the task.
        n_train, n_test: images per split (classes balanced).
        data_seed: seeds the templates and images (apart from `seed`, so the task is the
            same for every run seed).
        **common: see `ImageDataModule`.
    """

    name = "synthetic"

    def __init__(
        self,
        *,
        num_classes: int = 10,
        size: int = 32,
        channels: int = 3,
        n_train: int = 512,
        n_test: int = 128,
        data_seed: int = 0,
        **common,
    ) -> None:
        self.n_classes = _check_int("num_classes", num_classes, minimum=2)
        self.size = _check_int("size", size, minimum=4)
        self.channels = _check_int("channels", channels, minimum=1)
        self.n_train = _check_int("n_train", n_train, minimum=self.n_classes)
        self.n_test = _check_int("n_test", n_test, minimum=1)
        self.data_seed = _check_int("data_seed", data_seed, minimum=0)
        super().__init__(**common)

    def _load(self) -> RawData:
        rng = np.random.default_rng(self.data_seed)
        coarse = torch.from_numpy(rng.normal(size=(self.n_classes, self.channels, 4, 4)))
        templates = F.interpolate(
            coarse, size=(self.size, self.size), mode="bicubic", align_corners=False
        )
        templates = (templates / templates.std(dim=(1, 2, 3), keepdim=True)).numpy()

        def make(n: int) -> tuple[np.ndarray, np.ndarray]:
            labels = rng.permutation(np.arange(n) % self.n_classes).astype(np.int64)
            contrast = rng.uniform(0.7, 1.3, size=(n, 1, 1, 1))
            noise = rng.normal(size=(n, self.channels, self.size, self.size))
            img = 128.0 + 45.0 * contrast * templates[labels] + 25.0 * noise
            return np.clip(np.round(img), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1), labels

        x_train, y_train = make(self.n_train)
        x_test, y_test = make(self.n_test)
        mean, std = channel_stats(x_train)
        return RawData(
            x_train=np.ascontiguousarray(x_train),
            y_train=y_train,
            x_test=np.ascontiguousarray(x_test),
            y_test=y_test,
            classes=[f"class{i}" for i in range(self.n_classes)],
            mean=mean,
            std=std,
            crop_pad=2,
            flip=False,
        )


# --------------------------------------------------------------------------- file sources


@dataclass
class _Item:
    split: str
    label: str
    name: str  # shown in messages: a path, or "archive.tar.gz:member"
    payload: bytes | Path


@dataclass
class _Found:
    pickles: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # basename -> (name, bytes)
    items: list[_Item] = field(default_factory=list)
    class_dirs: dict[str, set[str]] = field(default_factory=lambda: {"train": set(), "test": set()})


_CIFAR10_PICKLE = re.compile(r"data_batch_\d+|test_batch|batches\.meta")
_CIFAR100_PICKLE = re.compile(r"train|test|meta")


def _is_tar(path: Path) -> bool:
    return path.name.lower().endswith(_TAR_SUFFIXES)


def _is_arrays(path: Path) -> bool:
    """A decoded copy of a data set: the .npz file `_cached` writes (Ray ships it to nodes)."""
    return path.is_file() and path.name.endswith(".npz")


def _is_pickle_dir(path: Path) -> bool:
    return (path / "data_batch_1").is_file() or (
        (path / "train").is_file() and (path / "meta").is_file()
    )


def _is_tree(path: Path) -> bool:
    return (path / "train").is_dir() and (path / "test").is_dir()


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__MACOSX")


def _locate(root: Path, *, preferred: tuple[str, ...] = ()) -> Path | None:
    """The file or folder to read under `root`, or None when nothing usable is there.

    Accepted: a tar archive; a folder of CIFAR pickle batches; a folder with train/ and
    test/ class folders; any of these one level down (preferring `preferred` names, e.g.
    cifar-10-batches-py); a folder holding a single tar archive; or the .npz cache file of
    a decoded data set (how the Ray evaluator hands data to its nodes).
    """
    if root.is_file():
        if not (_is_tar(root) or _is_arrays(root)):
            raise ValueError(
                f"root={str(root)!r} is a file but not a .tar/.tar.gz/.tgz archive; "
                "pass an archive or a folder"
            )
        return root
    if not root.is_dir():
        return None
    if _is_pickle_dir(root) or _is_tree(root):
        return root
    for name in preferred:
        path = root / name
        if (path.is_dir() and (_is_pickle_dir(path) or _is_tree(path))) or (
            path.is_file() and _is_tar(path)
        ):
            return path
    children = sorted(p for p in root.iterdir() if not _hidden(p.name))
    found = [p for p in children if p.is_dir() and (_is_pickle_dir(p) or _is_tree(p))]
    if not found:
        found = [p for p in children if p.is_file() and _is_tar(p)]
    if len(found) > 1:
        raise ValueError(
            f"root={str(root)!r} holds several data sets ({', '.join(p.name for p in found)}); "
            "pass root= pointing at one of them"
        )
    return found[0] if found else None


def _split_member(parts: list[str]) -> tuple[str, str, str] | None:
    """(split, class, file) from a path inside a tree: [wrapper/]split/class/file."""
    for i in (0, 1):
        if len(parts) == i + 3 and parts[i] in ("train", "test"):
            return parts[i], parts[i + 1], parts[i + 2]
    return None


def _scan_tar(path: Path) -> _Found:
    """One streaming pass over an archive: pickle batches and tree images, kept as bytes."""
    found = _Found()
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                parts = [p for p in member.name.split("/") if p not in ("", ".")]
                if not parts or any(_hidden(p) for p in parts):
                    continue
                if member.isdir():
                    if len(parts) in (2, 3) and parts[-2] in ("train", "test"):
                        found.class_dirs[parts[-2]].add(parts[-1])
                    continue
                if not member.isfile():
                    continue
                base = parts[-1]
                where = f"{path}:{member.name}"
                if len(parts) <= 2 and (
                    _CIFAR10_PICKLE.fullmatch(base) or _CIFAR100_PICKLE.fullmatch(base)
                ):
                    found.pickles.setdefault(base, (where, tar.extractfile(member).read()))
                    continue
                split_class_file = _split_member(parts)
                if split_class_file is None:
                    continue
                split, label, _ = split_class_file
                found.class_dirs[split].add(label)
                found.items.append(_Item(split, label, where, tar.extractfile(member).read()))
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ValueError(
            f"{path}: cannot read the archive ({err}); re-download it or pass the unpacked folder"
        ) from err
    return found


def _scan_dir(path: Path) -> _Found:
    found = _Found()
    if _is_pickle_dir(path):
        for file in sorted(path.iterdir()):
            if file.is_file() and (
                _CIFAR10_PICKLE.fullmatch(file.name) or _CIFAR100_PICKLE.fullmatch(file.name)
            ):
                found.pickles[file.name] = (str(file), file.read_bytes())
        return found
    for split in ("train", "test"):
        split_dir = path / split
        if not split_dir.is_dir():
            continue
        for class_dir in sorted(split_dir.iterdir()):
            if not class_dir.is_dir() or _hidden(class_dir.name):
                continue
            found.class_dirs[split].add(class_dir.name)
            for file in sorted(class_dir.iterdir()):
                if file.is_file() and not _hidden(file.name):
                    found.items.append(_Item(split, class_dir.name, str(file), file))
    return found


def _fingerprint(path: Path) -> str:
    """Changes whenever a file of the source is added, removed, resized or touched."""
    if path.is_file():
        st = path.stat()
        entries: list = [st.st_size, st.st_mtime_ns]
    else:
        entries = []
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            for name in sorted(filenames):
                st = os.stat(os.path.join(dirpath, name))
                entries.append(
                    [os.path.relpath(os.path.join(dirpath, name), path), st.st_size, st.st_mtime_ns]
                )
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def _cached(
    cache_dir: Path, key: dict, build: Callable[[], dict[str, np.ndarray]]
) -> tuple[dict[str, np.ndarray], Path, bool]:
    """Arrays from `cache_dir`/<name>-<hash of key>.npz, building and saving them on a miss.

    Returns:
        (arrays, cache file, whether they came from the cache).
    """
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = cache_dir / f"{key['dataset']}-{digest}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}, path, True
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
            log.warning("ignoring unreadable cache %s (%s); rebuilding it", path, err)
    arrays = build()
    tmp_name = None
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # Write then rename: concurrent runs never see a half-written cache.
        with tempfile.NamedTemporaryFile(dir=cache_dir, suffix=".npz.tmp", delete=False) as tmp:
            tmp_name = tmp.name
            np.savez(tmp, **arrays)
        os.replace(tmp_name, path)
    except OSError as err:
        log.warning("could not write the cache %s (%s); the next load decodes again", path, err)
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
    return arrays, path, False


_ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test", "classes", "skipped")


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a cache file given as ``root`` (ValueError when it is not one)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"root={str(path)!r} is not a readable .npz ({err}); pass the data "
                         f"set's folder or archive") from None
    missing = [k for k in _ARRAY_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"root={str(path)!r} lacks {', '.join(missing)}: it is not a nas data "
                         f"cache; pass the data set's folder or archive")
    return arrays


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts of lists and numpy arrays only: a data file cannot run code."""

    _allowed = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(where: str, data: bytes) -> dict[str, object]:
    try:
        # latin1 reads the original Python 2 pickles; keys may be bytes or str.
        obj = _ArrayUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as err:  # any failure means a bad file
        raise ValueError(
            f"{where}: not a readable CIFAR pickle ({type(err).__name__}: {err}); "
            "re-download the data set"
        ) from err
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a dict, found {type(obj).__name__}; re-download it")
    return {k.decode() if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _parse_cifar_pickles(found: _Found, variant: str) -> dict[str, np.ndarray]:
    if variant == "cifar10":
        train = sorted(
            (b for b in found.pickles if b.startswith("data_batch_")), key=lambda b: int(b[11:])
        )
        test, meta, label_key, names_key = ["test_batch"], "batches.meta", "labels", "label_names"
        other = "cifar100" if "meta" in found.pickles else None
    else:
        train, test, meta = ["train"], ["test"], "meta"
        label_key, names_key = "fine_labels", "fine_label_names"
        other = "cifar10" if "batches.meta" in found.pickles else None
    missing = [b for b in ([*train] or ["data_batch_1"]) + test + [meta] if b not in found.pickles]
    if missing:
        hint = f"; this looks like {other}: use make_datamodule({other!r}, ...)" if other else ""
        raise ValueError(
            f"{variant}: pickle batches {', '.join(missing)} are missing from the source{hint}"
        )

    def read(batches: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for b in batches:
            where, data = found.pickles[b]
            d = _unpickle(where, data)
            if "data" not in d or label_key not in d:
                raise ValueError(
                    f"{where}: needs keys 'data' and {label_key!r}, found {sorted(d)}; "
                    "re-download the data set"
                )
            x = np.asarray(d["data"], dtype=np.uint8)
            y = np.asarray(d[label_key], dtype=np.int64)
            if x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or len(y) != len(x):
                raise ValueError(
                    f"{where}: data has shape {x.shape} with {len(y)} labels; expected "
                    "(N, 3072) rows of row-major 3x32x32 pixels and N labels"
                )
            xs.append(x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            ys.append(y)
        return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)

    x_train, y_train = read(train)
    x_test, y_test = read(test)
    where, data = found.pickles[meta]
    names = _unpickle(where, data).get(names_key)
    if names is None:
        raise ValueError(f"{where}: has no {names_key!r}; re-download the data set")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]  # type: ignore[union-attr]
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
        "classes": np.array(classes),
        "skipped": np.array([], dtype=str),
    }


def _decode(payload: bytes | Path, size: int | None) -> np.ndarray | Exception:
    """RGB uint8 (size, size, 3) array, or the exception that made the file unreadable."""
    try:
        data = payload.read_bytes() if isinstance(payload, Path) else payload
        with Image.open(io.BytesIO(data)) as im:
            rgb = im if im.mode == "RGB" else im.convert("RGB")
            if size is not None and rgb.size != (size, size):
                rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(rgb)
    # Pillow's plugins raise many exception types on corrupt data (OSError, SyntaxError,
    # struct.error, ...); for a data loader all of them mean "this file is bad".
    except Exception as err:
        return err


def _decode_tree(
    found: _Found, *, what: str, size: int | None, on_bad_file: str, workers: int
) -> dict[str, np.ndarray]:
    """Decode the images of a train/ test/ class-folder tree into uint8 arrays."""
    for split in ("train", "test"):
        if not found.class_dirs[split]:
            raise ValueError(
                f"{what}: no {split}/<class>/ folders with images found; lay the data out as "
                "train/<class>/*.png and test/<class>/*.png"
            )
    classes = sorted(found.class_dirs["train"])
    if sorted(found.class_dirs["test"]) != classes:
        diff = sorted(set(classes) ^ found.class_dirs["test"])
        raise ValueError(
            f"{what}: train/ and test/ have different class folders (differing: {diff}); "
            "give both splits the same classes"
        )
    counts: dict[tuple[str, str], int] = {}
    for item in found.items:
        counts[(item.split, item.label)] = counts.get((item.split, item.label), 0) + 1
    for split in ("train", "test"):
        for label in classes:
            if counts.get((split, label), 0) == 0:
                raise ValueError(
                    f"{what}: class folder {split}/{label} is empty; add images or remove it"
                )
    # Sorted, so the arrays (and the seeded splits) do not depend on archive order.
    items = sorted(found.items, key=lambda it: (it.split, it.label, it.name))
    bad: list[str] = []

    def fail(item: _Item, err: Exception) -> None:
        if on_bad_file == "error":
            raise ValueError(
                f"{item.name}: not a readable image ({type(err).__name__}: {err}); replace or "
                "delete the file, or pass on_bad_file='skip' to leave it out"
            ) from err
        bad.append(item.name)

    if size is None:
        # The first readable image fixes the size of all others.
        for item in items:
            first = _decode(item.payload, None)
            if isinstance(first, Exception):
                fail(item, first)
                continue
            h, w = first.shape[:2]
            if h != w:
                raise ValueError(
                    f"{item.name}: first image is {w}x{h}, not square; pass size=N to resize "
                    "every image to NxN"
                )
            size = h
            break
        bad.clear()  # the full pass below reports them again
    images: list[np.ndarray] = []
    labels: list[int] = []
    splits: list[str] = []
    index = {c: i for i, c in enumerate(classes)}
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(
            tqdm(
                total=len(items),
                desc=f"decoding {what}",
                unit="img",
                leave=False,
                disable=len(items) <= _PROGRESS_MIN_FILES,
            )
        )
        if workers > 0:
            pool = stack.enter_context(ThreadPoolExecutor(workers))
            decoded: Iterator = pool.map(lambda it: _decode(it.payload, size), items)
        else:
            decoded = (_decode(it.payload, size) for it in items)
        for item, out in zip(items, decoded):
            bar.update()
            if isinstance(out, Exception):
                fail(item, out)
                continue
            images.append(out)
            labels.append(index[item.label])
            splits.append(item.split)
    if bad:
        log.warning(
            "%s: skipped %d unreadable file(s) (on_bad_file='skip'), e.g. %s",
            what,
            len(bad),
            ", ".join(bad[:3]),
        )
    side = size if size is not None else 1
    x = np.stack(images) if images else np.zeros((0, side, side, 3), np.uint8)
    y = np.asarray(labels, dtype=np.int64)
    is_train = np.asarray(splits) == "train"
    for split, mask in (("train", is_train), ("test", ~is_train)):
        if not mask.any():
            raise ValueError(
                f"{what}: the {split} split has no readable images; add images to {split}/<class>/"
            )
    return {
        "x_train": x[is_train],
        "y_train": y[is_train],
        "x_test": x[~is_train],
        "y_test": y[~is_train],
        "classes": np.array(classes),
        "skipped": np.array(bad, dtype=str),
    }


def _download(url: str, dest: Path, md5: str) -> Path:
    """Fetch `url` to `dest` (atomically) and check its md5."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.part")
    log.info("downloading %s to %s", url, dest)
    try:
        urllib.request.urlretrieve(url, tmp)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(
            f"could not download {url} ({err}); fetch it by hand into {dest.parent} "
            "and pass root= pointing there"
        ) from err
    digest = hashlib.md5(tmp.read_bytes(), usedforsecurity=False).hexdigest()
    if digest != md5:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(
            f"{url}: md5 {digest} differs from the expected {md5}; retry the download"
        )
    os.replace(tmp, dest)
    return dest


class _FileDataModule(ImageDataModule):
    """Shared plumbing of data sets read from files: root, cache, bad files."""

    _layouts = "a folder with train/<class>/* and test/<class>/*, or a .tar/.tar.gz of one"
    _example = "root='~/data/my-images'"

    def __init__(
        self,
        *,
        root: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        on_bad_file: str = "error",
        **common,
    ) -> None:
        if root is None or str(root) == "":
            raise ValueError(
                f"{self.name} needs root=PATH ({self._layouts}), e.g. "
                f"make_datamodule({self.name!r}, {self._example})"
            )
        self.root = Path(root).expanduser()
        self.cache_dir = (
            Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        )
        self.on_bad_file = _check_choice("on_bad_file", on_bad_file, BAD_FILE_MODES)
        super().__init__(**common)

    def _missing(self) -> ValueError:
        state = "does not exist" if not self.root.exists() else "holds no data in a known layout"
        return ValueError(
            f"{self.name}: root={str(self.root)!r} {state}; pass root= pointing at {self._layouts}"
        )

    def _read(
        self, source: Path, *, size: int | None, decode: Callable[[_Found], dict[str, np.ndarray]]
    ) -> tuple[dict[str, np.ndarray], Path, bool]:
        """Decoded arrays of `source` (from the cache when its files have not changed; as
        they are when `source` is itself such a cache file)."""
        if _is_arrays(source):
            return _read_arrays(source), source, True
        key = {
            "v": _CACHE_VERSION,
            "dataset": self.name,
            "source": str(source.resolve()),
            "fingerprint": _fingerprint(source),
            "size": size,
            "on_bad_file": self.on_bad_file,
        }

        def build() -> dict[str, np.ndarray]:
            found = _scan_tar(source) if source.is_file() else _scan_dir(source)
            return decode(found)

        arrays, path, hit = _cached(self.cache_dir, key, build)
        log.info("%s: %s %s", self.name, "loaded cache" if hit else "decoded and cached", path)
        return arrays, path, hit


class ImageFolderDataModule(_FileDataModule):
    """Any class-folder tree: root/train/<class>/*, root/test/<class>/* (or a tar of it).

    Class names are the sorted folder names; images are converted to RGB and resized to
    `size` (bilinear, no cropping).

    Args:
        root: the folder, a folder wrapping it one level down, or a .tar/.tar.gz/.tgz.
        size: side length; None: the size of the first image (which must be square).
        cache_dir: where decoded arrays are cached (default: $NAS_CACHE or ~/.cache/nas).
        on_bad_file: "error" stops at an unreadable file; "skip" leaves it out with a warning.
        **common: see `ImageDataModule`.
    """

    name = "imagefolder"

    def __init__(self, *, size: int | None = None, **kwargs) -> None:
        self.size = None if size is None else _check_int("size", size, minimum=1)
        super().__init__(**kwargs)

    def _load(self) -> RawData:
        source = _locate(self.root)
        if source is None:
            raise self._missing()

        def decode(found: _Found) -> dict[str, np.ndarray]:
            if not found.items and found.pickles:
                raise ValueError(
                    f"{source}: holds CIFAR pickle batches, not class folders; use "
                    "make_datamodule('cifar10' or 'cifar100', root=...)"
                )
            arrays = _decode_tree(
                found,
                what=str(source),
                size=self.size,
                on_bad_file=self.on_bad_file,
                workers=self.num_workers,
            )
            mean, std = channel_stats(arrays["x_train"])
            return {**arrays, "mean": np.array(mean), "std": np.array(std)}

        a, path, hit = self._read(source, size=self.size, decode=decode)
        side = int(a["x_train"].shape[1])
        return RawData(
            x_train=a["x_train"],
            y_train=a["y_train"],
            x_test=a["x_test"],
            y_test=a["y_test"],
            classes=[str(c) for c in a["classes"]],
            mean=tuple(a["mean"].tolist()),
            std=tuple(a["std"].tolist()),
            crop_pad=max(1, round(side / 8)),
            flip=True,
            skipped=[str(s) for s in a["skipped"]],
            cache_path=path,
            from_cache=hit,
        )


class _CIFARDataModule(_FileDataModule):
    """CIFAR-10/100 from pickle batches, a class-folder tree, or a tar of either.

    Args:
        root: the pickle folder (or the folder that contains cifar-10-batches-py /
            cifar-100-python), a class-folder tree (optionally one wrapper folder down), or
            a .tar/.tar.gz/.tgz of any of these.
        download: only when True, fetch the official python-pickle archive into `root` if no
            data are found there. Nothing touches the network otherwise.
        cache_dir, on_bad_file: see `ImageFolderDataModule`.
        **common: see `ImageDataModule`.
    """

    _classes = 0
    _preferred: tuple[str, ...] = ()
    _stats: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())
    _layouts = (
        "the python pickle batches (folder or .tar.gz), or train/<class>/*, test/<class>/* "
        "image folders (folder or .tar/.tar.gz)"
    )

    def __init__(self, *, download: bool = False, **kwargs) -> None:
        self.download = _check_bool("download", download)
        super().__init__(**kwargs)

    def _load(self) -> RawData:
        source = _locate(self.root, preferred=self._preferred)
        if source is None:
            if not self.download:
                err = self._missing()
                raise ValueError(f"{err} (or pass download=True to fetch it)")
            url, md5 = CIFAR_DOWNLOADS[self.name]
            source = _download(url, self.root / url.rsplit("/", 1)[1], md5)

        def decode(found: _Found) -> dict[str, np.ndarray]:
            if found.items:
                arrays = _decode_tree(
                    found,
                    what=str(source),
                    size=32,
                    on_bad_file=self.on_bad_file,
                    workers=self.num_workers,
                )
            elif found.pickles:
                arrays = _parse_cifar_pickles(found, self.name)
            else:
                raise ValueError(
                    f"{source}: holds neither CIFAR pickle batches nor class folders; pass root= pointing at {self._layouts}"
                )
            if len(arrays["classes"]) != self._classes:
                raise ValueError(
                    f"{source}: has {len(arrays['classes'])} classes, {self.name} has "
                    f"{self._classes}; use make_datamodule('imagefolder', root=...) for other data"
                )
            return arrays

        a, path, hit = self._read(source, size=32, decode=decode)
        return RawData(
            x_train=a["x_train"],
            y_train=a["y_train"],
            x_test=a["x_test"],
            y_test=a["y_test"],
            classes=[str(c) for c in a["classes"]],
            mean=self._stats[0],
            std=self._stats[1],
            crop_pad=4,
            flip=True,
            skipped=[str(s) for s in a["skipped"]],
            cache_path=path,
            from_cache=hit,
        )


class CIFAR10DataModule(_CIFARDataModule):
    __doc__ = _CIFARDataModule.__doc__
    name = "cifar10"
    _classes = 10
    _preferred = ("cifar-10-batches-py", "cifar-10-python.tar.gz")
    _stats = (CIFAR10_MEAN, CIFAR10_STD)
    _example = "root='~/data/cifar-10-batches-py'"


class CIFAR100DataModule(_CIFARDataModule):
    __doc__ = _CIFARDataModule.__doc__
    name = "cifar100"
    _classes = 100
    _preferred = ("cifar-100-python", "cifar-100-python.tar.gz")
    _stats = (CIFAR100_MEAN, CIFAR100_STD)
    _example = "root='~/data/cifar-100-python'"


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, type[ImageDataModule]] = {
    "digits": DigitsDataModule,
    "cifar10": CIFAR10DataModule,
    "cifar100": CIFAR100DataModule,
    "imagefolder": ImageFolderDataModule,
    "synthetic": SyntheticDataModule,
}
assert tuple(_REGISTRY) == DATASETS  # internal consistency, not user input


def accepted_kwargs(name: str) -> list[str]:
    """Keyword arguments `make_datamodule(name, ...)` accepts."""
    names: list[str] = []
    for cls in _REGISTRY[_check_choice("name", name, DATASETS)].__mro__:
        if cls is pl.LightningDataModule:
            break
        if "__init__" in vars(cls):
            for p in inspect.signature(cls.__init__).parameters.values():
                if p.kind is p.KEYWORD_ONLY and p.name not in names:
                    names.append(p.name)
    return names


def make_datamodule(name: str, **kwargs) -> ImageDataModule:
    """Build the data module for `name` (one of `DATASETS`) with keyword options.

    Raises:
        ValueError: unknown name or a bad option value.
        TypeError: an option the data set does not take.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; pass one of {', '.join(DATASETS)}")
    allowed = accepted_kwargs(name)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TypeError(
            f"{name} does not take {', '.join(unknown)}; accepted: {', '.join(allowed)}"
        )
    return _REGISTRY[name](**kwargs)
