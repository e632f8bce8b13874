"""One way to check a value and say what is wrong with it.

Every message has the same shape, naming the key, the value and the fix::

    train.epochs=0 is invalid; pass an integer >= 1
    evaluator.workers=0 is invalid; pass an integer >= 1 or null (the default)
    conv.k='x' is invalid; pass an integer

The checks return the value converted to its kind (``3.0`` -> ``3`` for an integer key, ``1``
-> ``1.0`` for a number) and raise ``error`` (ValueError by default; the spec passes its
SpecError) otherwise. Used by the data sets, the training recipe, the search config, the
evaluator options and the spec's layer fields.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Iterable, Sequence
from typing import Any


def invalid(key: str, value: Any, want: str, error: type[Exception] = ValueError) -> Exception:
    """The one message shape: ``key=value is invalid; pass <want>``."""
    return error(f"{key}={value!r} is invalid; pass {want}")


def _none(value: Any, none: str | None, key: str, want: str, error: type[Exception]) -> bool:
    if value is not None:
        return False
    if none is None:
        raise invalid(key, value, want, error)
    return True


def _or_none(want: str, none: str | None) -> str:
    return want if none is None else f"{want} or null ({none})"


def integer(key: str, value: Any, *, lo: int | None = None, hi: int | None = None,
            none: str | None = None, error: type[Exception] = ValueError) -> int | None:
    """An integer in ``[lo, hi]``; ``none`` (what null means) allows None."""
    want = "an integer" + (f" >= {lo}" if lo is not None and hi is None else "") + (
        f" in [{lo}, {hi}]" if lo is not None and hi is not None else "") + (
        f" <= {hi}" if hi is not None and lo is None else "")
    want = _or_none(want, none)
    if _none(value, none, key, want, error):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise invalid(key, value, want, error)
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise invalid(key, value, want, error)
    return value


def number(key: str, value: Any, *, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False, hi_open: bool = False, none: str | None = None,
           error: type[Exception] = ValueError) -> float | None:
    """A finite number in the interval given by ``lo``/``hi`` (open ends where marked)."""
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi:g}")
    want = _or_none("a number" + (" " + " and ".join(parts) if parts else ""), none)
    if _none(value, none, key, want, error):
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value \
            or value in (float("inf"), float("-inf")):
        raise invalid(key, value, want, error)
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise invalid(key, value, want, error)
    if hi is not None and (value >= hi if hi_open else value > hi):
        raise invalid(key, value, want, error)
    return float(value)


def fraction(key: str, value: Any, *, zero: bool = False, one: bool = True,
             error: type[Exception] = ValueError) -> float:
    """A fraction in (0, 1] (``zero``: [0, 1]; ``one=False``: the upper end open)."""
    return number(key, value, lo=0.0, hi=1.0, lo_open=not zero, hi_open=not one,
                  error=error)  # type: ignore[return-value]


def boolean(key: str, value: Any, error: type[Exception] = ValueError) -> bool:
    """true/false (or 0/1)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy's too
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise invalid(key, value, "true or false", error)


def text(key: str, value: Any, *, none: str | None = None,
         error: type[Exception] = ValueError) -> str | None:
    """A string."""
    want = _or_none("a string", none)
    if _none(value, none, key, want, error):
        return None
    if not isinstance(value, str):
        raise invalid(key, value, want, error)
    return value


def one_of(key: str, value: Any, choices: Sequence[Any],
           error: type[Exception] = ValueError) -> Any:
    """One of ``choices``."""
    if value not in choices:
        raise invalid(key, value, "one of " + ", ".join(map(str, choices)), error)
    return value


class UnknownName(ValueError):
    """A name no registry or table has."""


def unknown(kind: str, name: Any, known: Iterable[str], how: str = "") -> UnknownName:
    """The one message for a name that names nothing: ``unknown <kind> 'x' (did you mean
    y?); known: a, b, c (<how to pass one>)``."""
    known = list(known)
    close = difflib.get_close_matches(str(name), known, n=2) if isinstance(name, str) else []
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    tail = f" ({how})" if how else ""
    return UnknownName(f"unknown {kind} {name!r}{hint}; known: {', '.join(known)}{tail}")


__all__ = ["UnknownName", "boolean", "fraction", "integer", "invalid", "number", "one_of",
           "text", "unknown"]
