"""Weights and checkpoints a user passes, read without running anything they contain.

``init=``, ``nas.export --weights``, a run's ``weights/*.ckpt``, supernet checkpoints and
``nas.supernet resume=`` are read only with PyTorch's safe loader
(``torch.load(weights_only=True)``), which builds tensors and plain containers and refuses
every other object. The project writes nothing else into them (hyper-parameters are plain
dicts). :func:`read_checkpoint` turns every way such a file can be unusable (missing, empty,
truncated, random bytes, text, a pickled module or other objects) into one line naming the
file and the fix.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from nas.safe_load import UnsafeFileError


def read_checkpoint(path: str | Path, *, what: str, fix: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; ValueError, one line naming
    ``what`` (e.g. "weights file"), the file and ``fix``, when the file is missing, empty,
    corrupt, or holds objects other than tensors and plain containers."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{what} {p} does not exist; {fix}")
    if p.stat().st_size == 0:
        raise UnsafeFileError(f"{what} {p} is empty; {fix}")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # the safe loader names the global it refused in the first line of its message
        refused = next((ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln
                        or "global" in ln), "")
        hint = f" ({refused[:120]})" if refused else ""
        raise UnsafeFileError(
            f"{what} {p} holds Python objects other than tensors{hint}, or is not a "
            f"PyTorch file; nothing in it was run. Save a state_dict instead "
            f"(torch.save(model.state_dict(), path)) or {fix}") from None
    except Exception as e:  # noqa: BLE001 - truncated zip, random bytes, text: one message
        raise UnsafeFileError(f"{what} {p} is not a readable PyTorch file (corrupt or "
                              f"truncated? {type(e).__name__}); {fix}") from None


def read_weights(path: str | Path) -> dict:
    """The tensors saved in ``path``: a state_dict file (``weights.pt`` of an export; an
    export folder reads its ``weights.pt``) or a Lightning checkpoint (its ``state_dict``,
    keys still carrying the wrapper's prefix). Read with the safe loader only
    (:func:`read_checkpoint`): a file holding other objects (a pickled module, say) is
    refused and nothing in it runs."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "weights.pt"
    fix = ("pass a nas.train checkpoint (runs/.../checkpoints/last.ckpt) or an export's "
           "weights.pt")
    obj = read_checkpoint(p, what="weights file", fix=fix)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    what = f"a {type(obj).__name__}" if not isinstance(obj, dict) else (
        "an empty dict" if not obj else "a dict of other values")
    raise ValueError(f"weights file {p} holds {what}, not a state_dict or a Lightning "
                     f"checkpoint; save one with torch.save(model.state_dict(), path)")


__all__ = ["read_checkpoint", "read_weights"]
