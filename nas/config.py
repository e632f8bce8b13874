"""Configuration basics every module shares: where ``conf/`` is, OmegaConf values as plain
Python, and the keys ``conf/`` declares.

Every key a command reads is declared once, with a one-line comment, in ``conf/``: the
command's primary file (``search.yaml``, ``tune.yaml``, ``train_one.yaml``,
``baselines.yaml``, ``supernet.yaml``) and the option files of its config groups.
:func:`primary` and :func:`options` read those declarations; :mod:`nas.commands.schema`
checks every composed config against them (and against what the code declares itself: a
data set's and a space's constructor arguments, the recipe's fields).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

#: the checkout's root (where ``pyproject.toml`` and ``conf/`` are)
PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = PROJECT_ROOT / "conf"

#: the primary config of each Hydra command
COMMANDS = {"search": "search", "tune": "tune", "train": "train_one",
            "baselines": "baselines", "supernet": "supernet"}


def plain(value: Any) -> Any:
    """OmegaConf containers -> plain python (mandatory ``???`` values raise)."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True, throw_on_missing=True)
    return value


def yaml_keys(path: Path) -> dict:
    """A YAML file as a nested dict (values kept, interpolations unresolved), without its
    ``defaults`` list."""
    node = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    node = dict(node or {})
    node.pop("defaults", None)
    return node


@functools.cache
def primary(command: str) -> dict:
    """The keys of ``command``'s primary config (``hydra`` left out; ``tune`` includes the
    search config it builds on)."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; known: {', '.join(COMMANDS)}")
    node = yaml_keys(CONF_DIR / f"{COMMANDS[command]}.yaml")
    if command == "tune":
        node = {**primary("search"), **node}
    node.pop("hydra", None)
    return node


@functools.cache
def options(group: str) -> tuple[dict, ...]:
    """The option files of config group ``group`` (``conf/<group>/*.yaml``), as dicts."""
    return tuple(yaml_keys(p) for p in sorted((CONF_DIR / group).glob("*.yaml")))


__all__ = ["COMMANDS", "CONF_DIR", "PROJECT_ROOT", "options", "plain", "primary", "yaml_keys"]
