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

This module holds the data sets and their registry; the loader and augmentation are in
`nas.data.loader`, reading files in `nas.data.sources`. Use
Data sets are built by name through :func:`nas.registry.datamodule` (re-exported as
:func:`nas.data.make_datamodule`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits

from nas import checks
from nas.data.loader import IndexBatchLoader, _mix_seed, random_crop_flip
from nas.data.sources import (
    _CACHE_VERSION,
    _cached,
    _decode_tree,
    _download,
    _fingerprint,
    _Found,
    _is_arrays,
    _locate,
    _parse_cifar_pickles,
    _read_arrays,
    _scan_dir,
    _scan_tar,
    default_cache_dir,
)

log = logging.getLogger(__name__)

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


def _check_stats(name: str, value: object) -> tuple[float, ...] | None:
    """Per-channel normalisation statistics (None: computed from the training split)."""
    if value is None:
        return None
    try:
        stats = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        stats = ()
    if not stats or (name == "std" and min(stats) <= 0):
        raise checks.invalid(name, value, "one number per channel on the 0..1 scale"
                             + (" (all > 0)" if name == "std" else ""))
    return stats


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
        self.batch_size = checks.integer("batch_size", batch_size, lo=1)
        self.val_fraction = checks.fraction("val_fraction", val_fraction, zero=True, one=False)
        self.train_fraction = checks.fraction("train_fraction", train_fraction)
        res = None if resolution is None else checks.integer("resolution", resolution, lo=1)
        self.seed = checks.integer("seed", seed, lo=0)
        self.split_seed = (self.seed if split_seed is None
                           else checks.integer("split_seed", split_seed, lo=0))
        self.augment = checks.boolean("augment", augment)
        crop_pad = None if crop_pad is None else checks.integer("crop_pad", crop_pad, lo=0)
        flip = None if flip is None else checks.boolean("flip", flip)
        self.num_workers = checks.integer("num_workers", num_workers, lo=0)
        self.resident = checks.one_of("resident", resident, RESIDENT_MODES)
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
        split = checks.one_of("split", split, SPLITS)
        if split == "test":
            return self._raw.x_test.copy(), self._raw.y_test.copy()
        idx = self._split_index[split]
        return self._raw.x_train[idx], self._raw.y_train[idx]

    def split_size(self, split: str) -> int:
        """Images in "train" (after `train_fraction`), "val" or "test"."""
        split = checks.one_of("split", split, SPLITS)
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
        self.size = checks.integer("size", size, lo=8)
        self.test_fraction = checks.fraction("test_fraction", test_fraction, zero=True, one=False)
        if self.test_fraction == 0:
            raise ValueError("test_fraction=0 is invalid; pass a number in (0, 1)")
        self.data_seed = checks.integer("data_seed", data_seed, lo=0)
        super().__init__(**common)

    def _load(self) -> RawData:
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
        self.n_classes = checks.integer("num_classes", num_classes, lo=2)
        self.size = checks.integer("size", size, lo=4)
        self.channels = checks.integer("channels", channels, lo=1)
        self.n_train = checks.integer("n_train", n_train, lo=self.n_classes)
        self.n_test = checks.integer("n_test", n_test, lo=1)
        self.data_seed = checks.integer("data_seed", data_seed, lo=0)
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


# --------------------------------------------------------------------------- data sets from files


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
        self.on_bad_file = checks.one_of("on_bad_file", on_bad_file, BAD_FILE_MODES)
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
        self.size = None if size is None else checks.integer("size", size, lo=1)
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
        self.download = checks.boolean("download", download)
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



