"""Reading image data sets from files.

Finds the source under a root (a tar archive, a folder of CIFAR pickle batches, or a
train/<class>/, test/<class>/ tree), scans it in one pass, decodes it into uint8 arrays
(CIFAR pickles through an unpickler that only accepts arrays; images with Pillow, in threads
when asked), caches the arrays as .npz keyed by the source's fingerprint, and downloads an
official archive when asked to.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
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
from PIL import Image
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

# Bump when the cached arrays change meaning, so old caches are not reused.
_CACHE_VERSION = 1
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
_PROGRESS_MIN_FILES = 1000


def default_cache_dir() -> Path:
    """Where decoded data sets are cached: $NAS_CACHE, else ~/.cache/nas."""
    return Path(os.environ.get("NAS_CACHE") or Path.home() / ".cache" / "nas").expanduser()


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
    if len(classes) < 2:
        # One class trains to accuracy 1.0 and loss 0.0, which would pass for a success.
        raise ValueError(
            f"{what}: has 1 class folder (train/{classes[0]}); a classifier needs at least two "
            "classes, so add one folder per class under train/ and test/"
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
                "delete the file, or leave it out with data.on_bad_file=skip on the command "
                "line (on_bad_file='skip' in Python)"
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
