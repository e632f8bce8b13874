"""The configuration schema of every Hydra command, checked in one place.

Every key a command reads is declared once: in ``conf/`` (the command's primary file and
its groups' option files, each key with a one-line comment), or, where the code is the
declaration, there: a data set's keyword arguments (:func:`nas.registry.dataset_options`),
a space class's constructor, the training recipe's fields (:class:`nas.train.TrainConfig`).

:func:`check_keys` walks a *composed* config (after every default, experiment file and
``+key=value`` override is merged) and refuses the first key the schema does not declare,
anywhere in the tree, in one line that names it, the closest known key and the keys that
exist there. Hydra's struct mode refuses ``key=value`` for an unknown key but lets
``+key=value`` add one; this check covers both, before a command writes its first file.

A group's allowed keys are those of its option files that share the config's
*discriminator* (``evaluator.backend``, ``algorithm.name``, ``surrogate.name``,
``fidelity.kind``): ``evaluator.workers`` is known with ``backend: pool`` and unknown with
``backend: table``. Mappings whose keys are the user's own (``tune.params``,
``tune.sampler_options``, ``evaluator.runtime_env``, ``constraints.max``, whose columns
the search checks against the cost table) are open.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nas import registry
from nas.config import COMMANDS, CONF_DIR, options, primary, yaml_keys
from nas.recipe import TrainConfig

#: config groups each command reads (``space`` is added with ``+space=``)
GROUPS = {
    "search": ("data", "train", "evaluator", "fidelity", "surrogate", "algorithm", "preset",
               "space"),
    "tune": ("data", "train", "evaluator", "fidelity", "surrogate", "algorithm", "preset",
             "space"),
    "train": ("data", "train", "space"),
    "baselines": ("data", "train"),
    "supernet": ("data", "train", "preset", "space"),
}
#: the key whose value says which option file a group's config follows
DISCRIMINATORS = {"evaluator": "backend", "algorithm": "name", "surrogate": "name",
                  "fidelity": "kind"}
#: mappings whose keys are the user's own
OPEN = frozenset({"tune.params", "tune.sampler_options", "evaluator.runtime_env",
                  "constraints.max"})
#: groups whose keys the code declares (not their option files)
DECLARED_BY_CODE = ("data", "space", "train")


class ConfigKeyError(ValueError):
    """A key no part of the command reads (a typo, or a key of another option)."""


def group_keys(group: str, value: Mapping) -> set[str]:
    """The keys a group's config may hold: those its option files with the same
    discriminator declare, or what the code declares for data sets, spaces and the recipe.
    :class:`ConfigKeyError` when the discriminator names no option."""
    if group == "data":
        name = value.get("name")
        if name not in registry.DATASETS:
            raise ConfigKeyError(f"data.name={name!r} is not a data set; pass data=one of "
                                 f"{', '.join(registry.DATASETS)}")
        return {"name", *registry.dataset_options(name)} - set(registry.DATA_KEYS_SET_BY_TRAIN)
    if group == "space":
        target = str(value.get("_target_", ""))
        cls = registry.space_class_of(target)
        if cls is None:
            raise ConfigKeyError(f"space._target_={target!r} is not a registered space class; "
                                 f"pass +space=NAME, NAME one of "
                                 f"{', '.join(registry.space_presets())}")
        params = [p for p in inspect.signature(cls.__init__).parameters
                  if p not in ("self", "num_classes", "in_channels")]
        return {"_target_", "name", *params}
    if group == "train":
        return {f.name for f in dataclasses.fields(TrainConfig)}
    opts = options(group)
    key = DISCRIMINATORS.get(group)
    if key is None:
        return set().union(*(set(o) for o in opts))
    chosen = [o for o in opts if o.get(key) == value.get(key)]
    if not chosen:
        known = sorted({str(o.get(key)) for o in opts if key in o})
        raise ConfigKeyError(f"{group}.{key}={value.get(key)!r} is invalid; pass one of "
                             f"{', '.join(known)} (e.g. {group}={known[0]})")
    return set().union(*(set(o) for o in chosen))


def unknown_key(path: str, key: str, allowed: set[str]) -> ConfigKeyError:
    """The one message for a key nothing reads."""
    full = f"{path}.{key}" if path else key
    close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
    hint = f" (did you mean {path + '.' if path else ''}{close[0]}?)" if close else ""
    where = f"keys under {path}" if path else "top-level keys"
    return ConfigKeyError(f"unknown config key {full!r}{hint}: nothing reads it; "
                          f"{where}: {', '.join(sorted(allowed))}")


def _walk(node: Any, schema: Any, path: str) -> None:
    """Refuse keys of ``node`` that ``schema`` does not declare, recursing where both hold
    mappings."""
    if not isinstance(node, Mapping) or not isinstance(schema, Mapping) or path in OPEN:
        return
    for key in node:
        if key not in schema:
            raise unknown_key(path, str(key), set(map(str, schema)))
        _walk(node[key], schema[key], f"{path}.{key}" if path else str(key))


def check_keys(cfg: DictConfig | Mapping, command: str) -> None:
    """Raise :class:`ConfigKeyError` (one line) for the first key of ``cfg``, a config
    composed for ``command``, that no part of the command reads."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; known: {', '.join(COMMANDS)}")
    node = OmegaConf.to_container(cfg, resolve=False) if OmegaConf.is_config(cfg) else cfg
    node = {k: v for k, v in dict(node).items() if k != "hydra"}
    top, groups = primary(command), GROUPS[command]
    allowed = set(top) | set(groups)
    # the data group last: its keys are the data set class's arguments, and importing the
    # class loads torch; a typo anywhere else is named before that
    for key, value in sorted(node.items(), key=lambda kv: kv[0] == "data"):
        if key not in allowed:
            raise unknown_key("", str(key), allowed)
        if key not in groups:
            _walk(value, top[key], str(key))
            continue
        if value is None:
            continue
        if not isinstance(value, Mapping):
            raise ConfigKeyError(f"{key}={value!r} is not a config group's settings; pass "
                                 f"{key}=OPTION (see python -m nas.{command} --help)")
        keys = group_keys(key, value)
        for sub in value:
            if sub not in keys:
                raise unknown_key(key, str(sub), keys)
            if key in DECLARED_BY_CODE:
                continue
            declared = next((o[sub] for o in options(key) if isinstance(o.get(sub), Mapping)),
                            None)
            _walk(value[sub], declared, f"{key}.{sub}")


__all__ = ["ConfigKeyError", "DISCRIMINATORS", "GROUPS", "OPEN", "check_keys", "group_keys",
           "unknown_key"]


class OverrideOrderError(ValueError):
    """An experiment that configures the space given before ``+space=``."""


def check_override_order(overrides: list[str]) -> None:
    """Hydra merges ``+group=option`` overrides in the order given, so an experiment file
    that sets ``space.*`` keys (``conf/experiment/nb201_c1r16e2s20.yaml``: one cell per
    stage) placed before ``+space=`` would be overwritten by the space's defaults without
    a word: refused, with the order that works."""
    pos: dict[str, tuple[int, str]] = {}
    for i, o in enumerate(overrides):
        key, sep, value = o.partition("=")
        key = key.lstrip("+~")
        if sep and key in ("space", "experiment"):
            pos.setdefault(key, (i, value))
    if "space" not in pos or "experiment" not in pos:
        return
    (i_exp, exp), (i_space, space) = pos["experiment"], pos["space"]
    if i_exp > i_space:
        return
    path = CONF_DIR / "experiment" / f"{exp}.yaml"
    sets = yaml_keys(path).get("space") if path.is_file() else None
    if isinstance(sets, dict):
        raise OverrideOrderError(
            f"+experiment={exp} sets space keys ({', '.join(sorted(sets))}) and must come "
            f"after +space={space}, which would overwrite them: pass +space={space} "
            f"+experiment={exp}")
