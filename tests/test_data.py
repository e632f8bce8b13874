"""Tests for nas.data: every data set, the file formats, the loader and the batch hook."""

from __future__ import annotations

import hashlib
import logging
import pickle
import tarfile
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from torch import nn

from nas import data
from nas.data import DATASETS, IndexBatchLoader, datasets, make_datamodule

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CIFAR10_TAR = SHARED_DATA / "cifar10-jpeg.tar.gz"
CIFAR10_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


# --------------------------------------------------------------------------- helpers


def write_png(path: Path, value: int, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    img = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    img[0, 0] = value  # a pixel we can trace
    Image.fromarray(img).save(path)


def write_tree(root: Path, classes=("cat", "dog"), per_class=3, size=8) -> Path:
    for split in ("train", "test"):
        for c, name in enumerate(classes):
            for i in range(per_class):
                write_png(root / split / name / f"{i:03d}.png", 10 * c + i, size)
    return root


def write_cifar10_pickles(folder: Path, n_per_batch=20, n_batches=2) -> np.ndarray:
    """Standard CIFAR-10 python batches; returns all images as (N, 3, 32, 32)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    chw = rng.integers(0, 256, size=(n_per_batch * (n_batches + 1), 3, 32, 32), dtype=np.uint8)
    labels = (np.arange(len(chw)) % 10).tolist()
    for b in range(n_batches + 1):
        rows = slice(b * n_per_batch, (b + 1) * n_per_batch)
        name = "test_batch" if b == n_batches else f"data_batch_{b + 1}"
        batch = {
            b"batch_label": name.encode(),
            b"data": chw[rows].reshape(n_per_batch, 3072),  # row-major CHW
            b"labels": labels[rows],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return chw


def tar_folder(folder: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return dest


def fake_trainer(training: bool) -> SimpleNamespace:
    return SimpleNamespace(training=training, global_rank=0)


# --------------------------------------------------------------------------- registry and kwargs


def test_unknown_dataset_lists_names():
    with pytest.raises(ValueError, match="mnist") as err:
        make_datamodule("mnist")
    for name in DATASETS:
        assert name in str(err.value)


def test_unknown_kwarg_lists_accepted():
    with pytest.raises(TypeError, match="batchsize.*accepted:.*batch_size"):
        make_datamodule("synthetic", batchsize=4)


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"batch_size": 0}, "batch_size=0"),
        ({"val_fraction": 1.0}, "val_fraction=1.0"),
        ({"train_fraction": 0.0}, "train_fraction=0.0"),
        ({"resolution": 0}, "resolution=0"),
        ({"resident": "gpu"}, "resident='gpu'"),
        ({"augment": "yes"}, "augment='yes'"),
        ({"std": (0.5, 0.0, 0.5)}, "std="),
        ({"mean": (0.5,)}, "mean=.*3 channel"),
    ],
)
def test_bad_common_kwargs_named(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        make_datamodule("synthetic", **kwargs)


@pytest.mark.parametrize("name", DATASETS)
def test_every_dataset_accepts_common_kwargs(name):
    accepted = data.accepted_kwargs(name)
    for kw in ("batch_size", "val_fraction", "train_fraction", "resolution", "seed", "augment"):
        assert kw in accepted
    if name in ("cifar10", "cifar100", "imagefolder"):
        assert {"root", "cache_dir", "on_bad_file"} <= set(accepted)


# --------------------------------------------------------------------------- digits and synthetic


def test_digits_shapes_and_stratified_disjoint_splits():
    dm = make_datamodule("digits", seed=3)
    assert (dm.num_classes, dm.in_channels, dm.resolution) == (10, 1, 32)
    assert dm.classes == [str(d) for d in range(10)]
    assert (dm.crop_pad, dm.flip) == (2, False)
    sizes = {}
    for split in ("train", "val", "test"):
        x, y = dm.arrays(split)
        assert x.dtype == np.uint8 and x.shape[1:] == (32, 32, 1)
        assert y.dtype == np.int64 and len(y) == len(x)
        assert set(np.unique(y)) == set(range(10))
        sizes[split] = len(y)
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == round(0.2 * 1797)
    n_train_val = sizes["train"] + sizes["val"]
    assert sizes["val"] == round(0.1 * n_train_val)
    # Train and val partition the training data; val is stratified.
    train_idx, val_idx = dm._split_index["train"], dm._split_index["val"]
    assert not set(train_idx) & set(val_idx)
    assert len(set(train_idx) | set(val_idx)) == n_train_val
    y_all = dm._raw.y_train
    val_counts = np.bincount(y_all[val_idx], minlength=10)
    assert np.all(np.abs(val_counts - 0.1 * np.bincount(y_all)) <= 1)
    # Pixels span the full uint8 range after scaling 0..16.
    assert dm.arrays("train")[0].max() == 255


def test_splits_are_seeded_and_test_split_is_fixed():
    a, b, c = (make_datamodule("digits", seed=s) for s in (0, 0, 1))
    assert np.array_equal(a.arrays("val")[0], b.arrays("val")[0])
    assert not np.array_equal(a._split_index["val"], c._split_index["val"])
    # The test split belongs to the data set, not to the run seed.
    assert np.array_equal(a.arrays("test")[0], c.arrays("test")[0])


def test_split_seed_fixes_the_val_split_across_run_seeds():
    a, b = (make_datamodule("digits", seed=s, split_seed=7) for s in (0, 1))
    assert np.array_equal(a._split_index["val"], b._split_index["val"])
    assert np.array_equal(a._split_index["train"], b._split_index["train"])
    # ... while the run seed still drives shuffling.
    first = [next(iter(dm.train_dataloader()))[1] for dm in (a, b)]
    assert not torch.equal(first[0], first[1])
    assert not np.array_equal(a._split_index["val"],
                              make_datamodule("digits", seed=0, split_seed=8)._split_index["val"])
    with pytest.raises(ValueError, match="split_seed"):
        make_datamodule("digits", split_seed=-1)


def test_train_fraction_is_a_stratified_subset_and_keeps_val():
    full = make_datamodule("digits", seed=1)
    part = make_datamodule("digits", seed=1, train_fraction=0.25)
    assert np.array_equal(full._split_index["val"], part._split_index["val"])
    sub, whole = part._split_index["train"], full._split_index["train"]
    assert set(sub) <= set(whole)
    assert len(sub) == round(0.25 * len(whole))
    y = part._raw.y_train
    assert np.all(np.abs(np.bincount(y[sub]) - 0.25 * np.bincount(y[whole])) <= 1)


def test_synthetic_shapes_seeded_and_disjoint():
    dm = make_datamodule("synthetic", num_classes=4, size=16, channels=2, n_train=80, n_test=20)
    assert (dm.num_classes, dm.in_channels, dm.resolution) == (4, 2, 16)
    assert len(dm.mean) == len(dm.std) == 2
    hashes = {}
    for split in ("train", "val", "test"):
        x, y = dm.arrays(split)
        assert x.shape[1:] == (16, 16, 2) and x.dtype == np.uint8
        hashes[split] = {hashlib.sha1(img.tobytes()).hexdigest() for img in x}
    assert len(dm.arrays("train")[1]) + len(dm.arrays("val")[1]) == 80
    assert not hashes["train"] & hashes["val"]
    assert not (hashes["train"] | hashes["val"]) & hashes["test"]
    again = make_datamodule("synthetic", num_classes=4, size=16, channels=2, n_train=80, n_test=20)
    assert np.array_equal(dm.arrays("test")[0], again.arrays("test")[0])


# --------------------------------------------------------------------------- CIFAR-10 from the shared tar


@pytest.fixture(scope="module")
def cifar10_tar(tmp_path_factory):
    if not CIFAR10_TAR.is_file():
        pytest.skip(f"{CIFAR10_TAR} is absent (shared test data not mounted)")
    cache = tmp_path_factory.mktemp("cache")
    return make_datamodule("cifar10", root=CIFAR10_TAR, cache_dir=cache), cache


def test_cifar10_tar_decodes_full_data_set(cifar10_tar):
    dm, _ = cifar10_tar
    assert dm.classes == CIFAR10_NAMES
    assert (dm.num_classes, dm.in_channels, dm.resolution) == (10, 3, 32)
    assert (dm.crop_pad, dm.flip) == (4, True)
    x_test, y_test = dm.arrays("test")
    assert x_test.shape == (10000, 32, 32, 3)
    assert np.array_equal(np.bincount(y_test), [1000] * 10)
    y_train, y_val = dm.arrays("train")[1], dm.arrays("val")[1]
    assert (len(y_train), len(y_val)) == (45000, 5000)
    assert np.array_equal(np.bincount(y_val), [500] * 10)
    # Decoded pixels reproduce the published channel means of this copy.
    pixels = np.concatenate([dm._raw.x_train, x_test]).reshape(-1, 3)
    assert np.allclose(pixels.mean(0) / 255, (0.4917, 0.4826, 0.4472), atol=5e-4)
    assert not dm.from_cache and dm.cache_path.is_file()


def test_cifar10_second_load_comes_from_cache(cifar10_tar, monkeypatch):
    first, cache = cifar10_tar

    def no_decoding(*args, **kwargs):
        raise AssertionError("the archive was read again instead of the cache")

    monkeypatch.setattr(datasets, "_scan_tar", no_decoding)
    second = make_datamodule("cifar10", root=CIFAR10_TAR, cache_dir=cache, seed=5)
    assert second.from_cache and second.cache_path == first.cache_path
    assert list(cache.glob("*.npz")) == [first.cache_path]
    assert np.array_equal(second.arrays("test")[0], first.arrays("test")[0])


def test_a_cache_file_is_a_data_root(tmp_path):
    """How the Ray evaluator hands a decoded data set to its nodes: the .npz cache file,
    given as root, loads as is (no source files needed)."""
    write_cifar10_pickles(tmp_path / "src")
    first = make_datamodule("cifar10", root=tmp_path / "src", cache_dir=tmp_path / "c")
    copy = tmp_path / "elsewhere" / "shipped-x.npz"
    copy.parent.mkdir()
    copy.write_bytes(first.cache_path.read_bytes())
    again = make_datamodule("cifar10", root=copy, cache_dir=tmp_path / "unused")
    for split in ("train", "val", "test"):
        assert np.array_equal(again.arrays(split)[0], first.arrays(split)[0])
    assert again.classes == first.classes and not (tmp_path / "unused").exists()
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(ValueError, match="lacks x_train.*not a nas data cache"):
        make_datamodule("cifar10", root=bad)


# --------------------------------------------------------------------------- CIFAR pickle formats


@pytest.mark.parametrize("layout", ["batches_dir", "containing_dir", "tar"])
def test_cifar10_pickle_batches(tmp_path, layout):
    batches = tmp_path / "src" / "cifar-10-batches-py"
    chw = write_cifar10_pickles(batches)
    root = {"batches_dir": batches, "containing_dir": batches.parent}.get(layout)
    if layout == "tar":
        root = tar_folder(batches, tmp_path / "cifar-10-python.tar.gz")
    dm = make_datamodule("cifar10", root=root, cache_dir=tmp_path / "cache", val_fraction=0.0)
    assert dm.classes == CIFAR10_NAMES
    x_train, y_train = dm.arrays("train")
    x_test, y_test = dm.arrays("test")
    assert x_train.shape == (40, 32, 32, 3) and x_test.shape == (20, 32, 32, 3)
    # Rows are CHW; arrays are HWC.
    assert np.array_equal(x_train, chw[:40].transpose(0, 2, 3, 1))
    assert np.array_equal(x_test, chw[40:].transpose(0, 2, 3, 1))
    assert np.array_equal(y_train, np.arange(40) % 10)


def test_cifar100_pickle_format(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    names = [f"fine{i:02d}" for i in range(100)]
    for split, n in (("train", 300), ("test", 100)):
        chw = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        batch = {
            b"data": chw,
            b"fine_labels": (np.arange(n) % 100).tolist(),
            b"coarse_labels": [0] * n,
        }
        (folder / split).write_bytes(pickle.dumps(batch))
    meta = {b"fine_label_names": [s.encode() for s in names], b"coarse_label_names": [b"x"]}
    (folder / "meta").write_bytes(pickle.dumps(meta))
    dm = make_datamodule("cifar100", root=tmp_path, cache_dir=tmp_path / "cache")
    assert dm.classes == names and dm.num_classes == 100
    assert dm.arrays("test")[0].shape == (100, 32, 32, 3)
    assert len(dm.arrays("train")[1]) + len(dm.arrays("val")[1]) == 300
    assert dm.mean == data.CIFAR100_MEAN
    with pytest.raises(ValueError, match="cifar100"):
        make_datamodule("cifar10", root=folder, cache_dir=tmp_path / "cache")


def test_cifar_pickle_that_runs_code_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10_pickles(folder)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(ValueError, match="test_batch.*not a readable CIFAR pickle"):
        make_datamodule("cifar10", root=folder, cache_dir=tmp_path / "cache")


def test_cifar_needs_root_and_never_downloads_unasked(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("network touched")

    monkeypatch.setattr(urllib.request, "urlretrieve", no_network)
    with pytest.raises(ValueError, match=r"root=PATH.*make_datamodule\('cifar10', root="):
        make_datamodule("cifar10")
    with pytest.raises(ValueError, match="does not exist.*download=True"):
        make_datamodule("cifar10", root=tmp_path / "nowhere", cache_dir=tmp_path / "cache")


def test_cifar_download_when_asked(tmp_path, monkeypatch):
    batches = tmp_path / "build" / "cifar-10-batches-py"
    write_cifar10_pickles(batches)
    archive = tar_folder(batches, tmp_path / "official.tar.gz")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    url = data.CIFAR_DOWNLOADS["cifar10"][0]
    monkeypatch.setitem(data.CIFAR_DOWNLOADS, "cifar10", (url, md5))
    calls = []

    def fake_urlretrieve(u, dest):
        calls.append(u)
        Path(dest).write_bytes(archive.read_bytes())

    monkeypatch.setattr(urllib.request, "urlretrieve", fake_urlretrieve)
    root = tmp_path / "data"
    dm = make_datamodule("cifar10", root=root, download=True, cache_dir=tmp_path / "cache")
    assert calls == [url] and (root / "cifar-10-python.tar.gz").is_file()
    assert dm.arrays("test")[0].shape == (20, 32, 32, 3)
    make_datamodule("cifar10", root=root, download=True, cache_dir=tmp_path / "cache")
    assert calls == [url]  # the archive now in root is used, not fetched again


# --------------------------------------------------------------------------- image folders


@pytest.mark.parametrize("layout", ["tree", "wrapper", "tar"])
def test_imagefolder_layouts(tmp_path, layout):
    tree = write_tree(tmp_path / "src" / "pets", per_class=3, size=8)
    root = {"tree": tree, "wrapper": tree.parent}.get(layout)
    if layout == "tar":
        root = tar_folder(tree, tmp_path / "pets.tar")
    dm = make_datamodule("imagefolder", root=root, cache_dir=tmp_path / "cache", val_fraction=0.0)
    assert dm.classes == ["cat", "dog"] and dm.in_channels == 3 and dm.resolution == 8
    x, y = dm.arrays("train")
    assert x.shape == (6, 8, 8, 3) and list(y) == [0, 0, 0, 1, 1, 1]
    # Files are read in sorted order: the traced pixel gives back each file's number.
    assert list(x[:, 0, 0, 0]) == [0, 1, 2, 10, 11, 12]
    assert dm.arrays("test")[0].shape == (6, 8, 8, 3)


def test_imagefolder_decode_threads_give_the_same_arrays(tmp_path):
    tree = write_tree(tmp_path / "t", per_class=5)
    kw = dict(root=tree, val_fraction=0.0)
    serial = make_datamodule("imagefolder", cache_dir=tmp_path / "c1", **kw)
    threaded = make_datamodule("imagefolder", cache_dir=tmp_path / "c2", num_workers=3, **kw)
    for split in ("train", "test"):
        assert np.array_equal(serial.arrays(split)[0], threaded.arrays(split)[0])


def test_imagefolder_resizes_to_first_or_given_size(tmp_path):
    tree = write_tree(tmp_path / "t", per_class=2, size=8)
    write_png(tree / "train" / "dog" / "999.png", 7, size=12)
    dm = make_datamodule("imagefolder", root=tree, cache_dir=tmp_path / "c", val_fraction=0.0)
    assert dm.arrays("train")[0].shape == (5, 8, 8, 3)
    dm = make_datamodule(
        "imagefolder", root=tree, cache_dir=tmp_path / "c", size=16, val_fraction=0.0
    )
    assert dm.arrays("train")[0].shape == (5, 16, 16, 3) and dm.resolution == 16


def test_cifar10_from_image_folder(tmp_path):
    write_tree(tmp_path / "cifar10-jpeg", classes=CIFAR10_NAMES, per_class=2, size=32)
    dm = make_datamodule("cifar10", root=tmp_path, cache_dir=tmp_path / "cache", val_fraction=0.0)
    assert dm.classes == CIFAR10_NAMES
    assert dm.arrays("train")[0].shape == (20, 32, 32, 3)
    assert dm.mean == data.CIFAR10_MEAN


def test_corrupt_image_is_named(tmp_path):
    tree = write_tree(tmp_path / "t")
    bad = tree / "train" / "dog" / "bad.png"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(ValueError, match=r"bad\.png.*on_bad_file='skip'") as err:
        make_datamodule("imagefolder", root=tree, cache_dir=tmp_path / "c")
    # The fix in the form the command line takes, as well as the keyword argument.
    assert "data.on_bad_file=skip" in str(err.value) and "\n" not in str(err.value)


def test_corrupt_image_in_tar_is_named(tmp_path):
    tree = write_tree(tmp_path / "t")
    (tree / "test" / "cat" / "notes.txt").write_text("hello")
    archive = tar_folder(tree, tmp_path / "t.tgz")
    with pytest.raises(ValueError, match=r"t\.tgz:t/test/cat/notes\.txt"):
        make_datamodule("imagefolder", root=archive, cache_dir=tmp_path / "c")


def test_skip_mode_counts_bad_files(tmp_path, caplog):
    tree = write_tree(tmp_path / "t", per_class=3)
    (tree / "train" / "cat" / "000.png").write_bytes(b"\x89PNG truncated")
    (tree / "test" / "dog" / "junk.jpg").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="nas.data"):
        dm = make_datamodule(
            "imagefolder", root=tree, cache_dir=tmp_path / "c", on_bad_file="skip", val_fraction=0.0
        )
    assert len(dm.skipped_files) == 2
    assert "skipped 2 unreadable file(s)" in caplog.text
    assert len(dm.arrays("train")[1]) == 5 and len(dm.arrays("test")[1]) == 6


@pytest.mark.parametrize("layout", ["tree", "tar"])
def test_single_class_is_refused_naming_the_folder(tmp_path, layout):
    # One class would train to accuracy 1.0 and loss 0.0 and report success.
    tree = write_tree(tmp_path / "only-cats", classes=("cat",))
    root = tree if layout == "tree" else tar_folder(tree, tmp_path / "only-cats.tgz")
    with pytest.raises(ValueError, match="only-cats.*1 class.*train/cat.*at least two") as err:
        make_datamodule("imagefolder", root=root, cache_dir=tmp_path / "c")
    assert "\n" not in str(err.value)
    assert not list((tmp_path / "c").glob("*.npz"))  # refused before decoding and caching


def test_empty_class_folder_is_named(tmp_path):
    tree = write_tree(tmp_path / "t")
    (tree / "train" / "emu").mkdir()
    (tree / "test" / "emu").mkdir()
    with pytest.raises(ValueError, match=r"train/emu is empty"):
        make_datamodule("imagefolder", root=tree, cache_dir=tmp_path / "c")


def test_split_without_images_and_missing_root(tmp_path):
    tree = write_tree(tmp_path / "t")
    for f in (tree / "test" / "cat").iterdir():
        f.unlink()
    for f in (tree / "test" / "dog").iterdir():
        f.unlink()
    with pytest.raises(ValueError, match="test/cat is empty"):
        make_datamodule("imagefolder", root=tree, cache_dir=tmp_path / "c")
    only_train = tmp_path / "only"
    (only_train / "train" / "a").mkdir(parents=True)
    write_png(only_train / "train" / "a" / "x.png", 1)
    with pytest.raises(ValueError, match="holds no data in a known layout"):
        make_datamodule("imagefolder", root=only_train, cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="does not exist"):
        make_datamodule("imagefolder", root=tmp_path / "missing", cache_dir=tmp_path / "c")


def test_imagefolder_cache_tracks_changes(tmp_path):
    tree = write_tree(tmp_path / "t")
    kw = dict(root=tree, cache_dir=tmp_path / "c", val_fraction=0.0)
    assert not make_datamodule("imagefolder", **kw).from_cache
    assert make_datamodule("imagefolder", **kw).from_cache
    write_png(tree / "train" / "cat" / "new.png", 99)
    changed = make_datamodule("imagefolder", **kw)
    assert not changed.from_cache and len(changed.arrays("train")[1]) == 7


# --------------------------------------------------------------------------- batch hook


def test_batch_hook_normalises_without_augmentation_in_eval():
    dm = make_datamodule("synthetic", batch_size=32, seed=0)
    x, y = next(iter(dm.val_dataloader()))
    assert x.dtype == torch.uint8 and x.shape == (32, 3, 32, 32) and y.dtype == torch.int64
    for trainer in (None, fake_trainer(training=False)):
        dm.trainer = trainer
        out, y_out = dm.on_after_batch_transfer((x, y), 0)
        mean = torch.tensor(dm.mean).view(1, 3, 1, 1)
        std = torch.tensor(dm.std).view(1, 3, 1, 1)
        assert out.dtype == torch.float32 and out.shape == (32, 3, 32, 32)
        assert out.is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(out, (x.float() / 255 - mean) / std, atol=1e-5)
        assert torch.equal(y_out, y)


def test_batch_hook_augments_only_in_training():
    dm = make_datamodule("synthetic", batch_size=64, crop_pad=3, flip=True, seed=0)
    x, y = next(iter(dm.val_dataloader()))
    dm.trainer = fake_trainer(training=False)
    plain, _ = dm.on_after_batch_transfer((x, y), 0)
    dm.trainer = fake_trainer(training=True)
    aug, y_aug = dm.on_after_batch_transfer((x, y), 0)
    assert torch.equal(y_aug, y)
    changed = (aug - plain).abs().flatten(1).amax(1) > 1e-6
    assert changed.float().mean() > 0.8
    assert make_datamodule("synthetic", augment=False).crop_pad == 2  # default kept, just off
    dm_off = make_datamodule("synthetic", batch_size=64, augment=False)
    dm_off.trainer = fake_trainer(training=True)
    assert torch.equal(dm_off.on_after_batch_transfer((x, y), 0)[0], plain)


def test_random_crop_is_a_shift_with_zero_padding():
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (16, 2, 9, 9), dtype=torch.uint8, generator=gen)
    pad = 2
    out = data.random_crop_flip(x, pad=pad, flip=False, generator=gen)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    offsets = set()
    for i in range(len(x)):
        hits = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.equal(out[i], padded[i, :, dy : dy + 9, dx : dx + 9])
        ]
        assert hits, f"sample {i} is not a padded shift of its input"
        offsets.add(hits[0])
    assert len(offsets) > 3  # offsets differ per sample
    flipped = data.random_crop_flip(x, pad=0, flip=True, generator=gen)
    is_flip = [torch.equal(flipped[i], x[i].flip(-1)) for i in range(len(x))]
    is_same = [torch.equal(flipped[i], x[i]) for i in range(len(x))]
    assert all(a or b for a, b in zip(is_flip, is_same)) and any(is_flip) and any(is_same)


@pytest.mark.parametrize("resolution", [24, 48])
def test_batch_hook_resizes(resolution):
    dm = make_datamodule("digits", batch_size=16, resolution=resolution)
    assert dm.resolution == resolution and dm.native_resolution == 32
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape == (16, 1, 32, 32)
    dm.trainer = fake_trainer(training=True)
    out, _ = dm.on_after_batch_transfer((x, y), 0)
    assert out.shape == (16, 1, resolution, resolution) and out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_batch_hook_rejects_float_batches():
    dm = make_datamodule("synthetic")
    with pytest.raises(TypeError, match="uint8"):
        dm.on_after_batch_transfer((torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.long)), 0)


# --------------------------------------------------------------------------- index loader


def _epoch_order(loader: IndexBatchLoader) -> list[int]:
    return torch.cat([y for _, y in loader]).tolist()


def test_index_loader_covers_each_index_once_and_reshuffles_deterministically():
    n = 103
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 2, 2, 3).contiguous()
    labels = torch.arange(n)
    loader = IndexBatchLoader(images, labels, batch_size=10, shuffle=True, seed=7)
    assert len(loader) == 11
    epochs = [_epoch_order(loader) for _ in range(3)]
    for order in epochs:
        assert sorted(order) == list(range(n))
    assert epochs[0] != epochs[1] != epochs[2]
    x, y = next(iter(loader))
    assert x.shape == (10, 3, 2, 2) and torch.equal(x[:, 0, 0, 0].long(), y)
    again = IndexBatchLoader(images, labels, batch_size=10, shuffle=True, seed=7)
    assert [_epoch_order(again) for _ in range(3)] == epochs
    other = IndexBatchLoader(images, labels, batch_size=10, shuffle=True, seed=8)
    assert _epoch_order(other) != epochs[0]
    again.set_epoch(1)
    assert _epoch_order(again) == epochs[1]
    # Lightning probes with iter(); that alone must not advance the epoch.
    iter(again)
    assert _epoch_order(again) == epochs[2]


def test_index_loader_drop_last_eval_order_and_shards():
    labels = torch.arange(25)
    images = torch.zeros(25, 1, 1, 1, dtype=torch.uint8)
    train = IndexBatchLoader(images, labels, batch_size=8, shuffle=True, drop_last=True)
    assert len(train) == 3 and len(_epoch_order(train)) == 24
    assert _epoch_order(IndexBatchLoader(images, labels, batch_size=8)) == list(range(25))
    shards = [
        _epoch_order(
            IndexBatchLoader(images, labels, batch_size=4, shuffle=True, rank=r, world_size=3)
        )
        for r in range(3)
    ]
    assert [len(s) for s in shards] == [9, 9, 9]
    assert set().union(*shards) == set(range(25))
    with pytest.raises(ValueError, match="rank=3"):
        IndexBatchLoader(images, labels, batch_size=4, rank=3, world_size=3)


# --------------------------------------------------------------------------- with a Lightning trainer


class TinyNet(pl.LightningModule):
    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(32, classes),
        )
        self.first_labels: dict[int, list[int]] = {}
        self.correct = self.seen = 0

    def training_step(self, batch, batch_idx):
        x, y = batch
        assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
        self.first_labels.setdefault(self.current_epoch, y.tolist())
        return nn.functional.cross_entropy(self.net(x), y)

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.correct += int((self.net(x).argmax(1) == y).sum())
        self.seen += len(y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def test_fit_with_lightning_learns_synthetic():
    torch.manual_seed(0)
    dm = make_datamodule("synthetic", batch_size=64, resolution=24, seed=0)
    model = TinyNet(dm.in_channels, dm.num_classes)
    trainer = pl.Trainer(
        max_epochs=5,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    assert model.first_labels[0] != model.first_labels[1]  # reshuffled per epoch
    assert model.seen == 128 and model.correct / model.seen > 0.5  # chance is 0.1
