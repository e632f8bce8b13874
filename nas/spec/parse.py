"""The string form of layers (see :mod:`nas.spec` for the format)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from nas.spec.layers import (
    ACTIVATIONS,
    LAYER_TYPES,
    Act,
    Add,
    Aux,
    Concat,
    Dag,
    Gate,
    Join,
    Layer,
    Seq,
    SpecError,
    layer_from_dict,
)

_VALUE_RE = re.compile(r"^-?\d+(\.\d*)?(e-?\d+)?$")


def _parse_value(cls: type[Layer], name: str, text: str, where: str) -> Any:
    f = {f.name: f for f in fields(cls)}[name]
    kind = f.metadata.get("kind")
    if kind is str:
        return text
    if not _VALUE_RE.match(text):
        raise SpecError(f"{where}: field {name!r} needs a number, got {text!r}")
    num = float(text)
    if kind is int or kind is bool:
        if not num.is_integer():
            raise SpecError(f"{where}: field {name!r} needs an integer, got {text!r}")
        return int(num)
    return num


def layer_from_token(token: str) -> Layer:
    """Parse one token of the string form (see the module docstring)."""
    where = f"token {token!r}"
    if token in ACTIVATIONS:
        return Act(token)
    if token.startswith("nb201_|"):  # the NAS-Bench-201 arch string is carried verbatim
        return layer_from_dict({"type": "nb201", "arch": token[len("nb201_"):]}, where=where)
    parts = token.split("_")
    cls = LAYER_TYPES.get(parts[0])
    if cls is None or cls.kind == "combinator":
        raise SpecError(f"{where}: unknown layer type {parts[0]!r}; known: "
                        f"{sorted(k for k, c in LAYER_TYPES.items() if c.kind != 'combinator')}"
                        f" and activations {list(ACTIVATIONS)}")
    rest = parts[1:]
    kwargs: dict[str, Any] = {}
    if cls.positional:
        if not rest:
            raise SpecError(f"{where}: expects {'-'.join(cls.positional)} after the type")
        vals = rest[0].split("-")
        if len(vals) != len(cls.positional):
            raise SpecError(f"{where}: expects {len(cls.positional)} dash-separated values "
                            f"({'-'.join(cls.positional)})")
        for n, v in zip(cls.positional, vals):
            kwargs[n] = _parse_value(cls, n, v, where)
        rest = rest[1:]
    keys = sorted((f.name for f in fields(cls) if f.name not in cls.positional),
                  key=len, reverse=True)
    for part in rest:
        for k in keys:
            if part.startswith(k) and len(part) > len(k):
                kwargs[k] = _parse_value(cls, k, part[len(k):], where)
                break
        else:
            raise SpecError(f"{where}: cannot read {part!r}; fields of {cls.type!r}: "
                            f"{sorted(keys)}")
    return layer_from_dict({"type": cls.type, **kwargs}, where=where)


_OPEN_RE = re.compile(r"^(seq|add|concat|gate|aux|dag|join(?:_[a-z]+[0-9.e-]+)*)\[")


_CLOSE_RE = re.compile(r"^(.*?)(\]*)(?:\*(\w*))?$")


def _combinator(kind: str, branches: list[list[Layer]], where: str) -> Layer:
    if kind == "seq":
        if len(branches) != 1:
            raise SpecError(f"{where}: 'seq[...]' takes no '|'")
        return Seq(tuple(branches[0]))
    for b in branches:
        if len(b) != 1:
            raise SpecError(f"{where}: every branch of {kind}[...] is one layer (wrap several "
                            f"in seq[...]), got {len(b)}")
    if kind in ("gate", "aux"):
        if len(branches) != 1:
            raise SpecError(f"{where}: {kind}[...] has exactly one branch")
        return (Gate if kind == "gate" else Aux)(branches[0][0])
    if kind == "dag":
        return Dag(tuple(b[0] for b in branches))
    if kind.startswith("join"):
        opts: dict[str, Any] = {}
        for part in kind.split("_")[1:]:
            key = next((k for k in ("drop", "glob", "col") if part.startswith(k)), None)
            if key is None:
                raise SpecError(f"{where}: cannot read {part!r}; join takes drop, glob, col")
            opts[key] = _parse_value(Join, key, part[len(key):], where)
        try:
            return Join(tuple(b[0] for b in branches), **opts)
        except SpecError as e:
            raise SpecError(f"{where}: {e}") from None
    return (Add if kind == "add" else Concat)(tuple(b[0] for b in branches))


def layers_from_words(words: Sequence[str]) -> list[Layer]:
    """Parse the whitespace-separated words of a spec string (after the input shape) into
    layers: plain tokens, ``tok*N`` repeats, and combinators ``type[a b | c]`` nested to any
    depth (the form :meth:`Layer.token` prints)."""
    # A stack of open combinators: (kind, branches); the bottom entry is the spec itself.
    stack: list[tuple[str, list[list[Layer]]]] = [("", [[]])]
    for word in words:
        where = f"word {word!r}"
        if word == "|":
            if len(stack) == 1:
                raise SpecError(f"{where}: '|' outside a combinator")
            stack[-1][1].append([])
            continue
        m = _OPEN_RE.match(word)
        while m:
            stack.append((m.group(1), [[]]))
            word = word[m.end():]
            m = _OPEN_RE.match(word)
        core, closes, rep = _CLOSE_RE.match(word).groups()
        if core:
            stack[-1][1][-1].append(layer_from_token(core))
        for _ in closes:
            if len(stack) == 1:
                raise SpecError(f"{where}: unbalanced ']'")
            kind, branches = stack.pop()
            stack[-1][1][-1].append(_combinator(kind, branches, where))
        if rep is not None:
            if not rep.isdigit() or int(rep) < 1:
                raise SpecError(f"token {word}: repeat count must be a positive integer")
            current = stack[-1][1][-1]
            if not current:
                raise SpecError(f"{where}: nothing to repeat")
            current += [current[-1]] * (int(rep) - 1)
    if len(stack) > 1:
        raise SpecError(f"spec string: {len(stack) - 1} unclosed '{stack[-1][0]}[' (missing "
                        f"']')")
    return stack[0][1][0]
