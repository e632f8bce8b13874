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

The package is split by job: `loader` (index batches, on-device augmentation), `sources`
(finding, scanning, decoding, caching and downloading files) and `datasets` (the data
modules and their registry). Every public name is importable from `nas.data`.

Use `make_datamodule(name, **kwargs)`; ``name`` is one of `DATASETS`. Both are the
registry's (:func:`nas.registry.datamodule`, :data:`nas.registry.DATASETS`): the one way
every module builds a data set by name.
"""

from nas import registry
from nas.data.datasets import (
    BAD_FILE_MODES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    CIFAR_DOWNLOADS,
    RESIDENT_MODES,
    SPLITS,
    CIFAR10DataModule,
    CIFAR100DataModule,
    DigitsDataModule,
    ImageDataModule,
    ImageFolderDataModule,
    RawData,
    SyntheticDataModule,
    channel_stats,
    stratified_take,
)
from nas.data.loader import IndexBatchLoader, random_crop_flip
from nas.data.sources import default_cache_dir

#: the data set names (``data=NAME``)
DATASETS = registry.DATASETS.names()
#: a data module by name (:func:`nas.registry.datamodule`)
make_datamodule = registry.datamodule
#: the keyword options a data set takes (:func:`nas.registry.dataset_options`)
accepted_kwargs = registry.dataset_options

__all__ = [
    "BAD_FILE_MODES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "CIFAR_DOWNLOADS",
    "DATASETS",
    "RESIDENT_MODES",
    "SPLITS",
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "DigitsDataModule",
    "ImageDataModule",
    "ImageFolderDataModule",
    "IndexBatchLoader",
    "RawData",
    "SyntheticDataModule",
    "accepted_kwargs",
    "channel_stats",
    "default_cache_dir",
    "make_datamodule",
    "random_crop_flip",
    "stratified_take",
]
