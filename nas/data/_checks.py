"""Checks of option values shared by the data modules and the loader.

Each returns the value converted (int, float, str, bool, tuple) or raises a one-line
`ValueError` that names the option, the bad value and what to pass instead.
"""

from __future__ import annotations

import numbers

import numpy as np


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
