"""Every name a user can type, resolved in one place.

A :class:`Registry` maps the names of one kind of thing (search spaces, data sets, evaluator
tasks and runners, algorithms, surrogates, Optuna samplers, zero-cost proxies, supernets,
tables) to where it is defined, as ``"module:attribute"`` targets, the form Hydra's
``_target_`` uses in ``conf/``. A target is imported when its name is first looked up, so
this module imports no implementation and any module may resolve names through it without
an import cycle. Every registry answers "which names" (:meth:`Registry.names`), "is it
known" (``in``) and "what is it" (:meth:`Registry.get`), and refuses an unknown name with
one message shape: ``unknown <kind> 'x'; known: a, b, c`` and how to pass one.

Above the registries, the resolvers every command shares: :func:`space` (a space from a
registry name, a ``conf/space`` preset or a space config), :func:`arch` (an architecture
from any of :data:`ARCH_FORMS`), :func:`baseline_spec`, :func:`data_info`.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nas import checks
from nas.checks import UnknownName
from nas.config import CONF_DIR, plain
from nas.spec import ArchSpec, SpecError
from search_spaces import baselines as zoo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registry:
    """Names of one kind -> ``"module:attribute"`` targets, imported on first use.

    Args:
        kind: what the names name, for messages ("search space").
        targets: name -> target, in the order they are listed to users.
        how: how a user passes one, for messages ("+space=NAME").
    """

    kind: str
    targets: Mapping[str, str]
    how: str = ""

    def names(self) -> tuple[str, ...]:
        return tuple(self.targets)

    def __contains__(self, name: object) -> bool:
        return name in self.targets

    def __iter__(self) -> Iterator[str]:
        return iter(self.targets)

    def check(self, name: Any) -> str:
        """``name`` if it is registered, else :class:`UnknownName` in the one shape."""
        if not isinstance(name, str) or name not in self.targets:
            raise checks.unknown(self.kind, name, self.targets, self.how)
        return name

    def get(self, name: Any) -> Any:
        """The object registered as ``name``."""
        module, _, attr = self.targets[self.check(name)].partition(":")
        return getattr(importlib.import_module(module), attr)

    __getitem__ = get

    def build(self, name: Any, /, **kwargs: Any) -> Any:
        """``get(name)(**kwargs)``."""
        return self.get(name)(**kwargs)

    def items(self) -> Iterator[tuple[str, Any]]:
        """``(name, object)`` for every entry (imports them all)."""
        for name in self.targets:
            yield name, self.get(name)


#: search spaces (``+space=NAME``; ``conf/space/NAME.yaml`` holds each one's settings)
SPACES = Registry("search space", {
    "mobile": "search_spaces.mobile:MobileSpace",
    "residual": "search_spaces.residual:ResidualSpace",
    "inception": "search_spaces.inception:InceptionSpace",
    "nb201": "search_spaces.nb201:NB201Space",
}, "+space=NAME")

#: data sets (``data=NAME``)
DATASETS = Registry("data set", {
    "digits": "nas.data.datasets:DigitsDataModule",
    "cifar10": "nas.data.datasets:CIFAR10DataModule",
    "cifar100": "nas.data.datasets:CIFAR100DataModule",
    "imagefolder": "nas.data.datasets:ImageFolderDataModule",
    "synthetic": "nas.data.datasets:SyntheticDataModule",
}, "data=NAME")

#: search algorithms (``algorithm=NAME``)
ALGORITHMS = Registry("algorithm", {
    "surrogate": "nas.algorithms.surrogate_search:SurrogateSearch",
    "nsga2": "nas.algorithms.nsga2:EvolutionNSGA2",
    "optuna": "nas.algorithms.optuna_search:OptunaSearch",
    "random": "nas.algorithms.random_search:RandomSearch",
    "evolution": "nas.algorithms.evolution:RegularizedEvolution",
    "local": "nas.algorithms.local_search:LocalSearch",
}, "algorithm=NAME")

#: accuracy predictors (``surrogate=NAME``)
SURROGATES = Registry("surrogate", {
    "adaptive": "nas.surrogate:AdaptiveSurrogate",
    "rbf": "nas.surrogate:RBFSurrogate",
    "gp": "nas.surrogate:GPSurrogate",
    "mlp": "nas.surrogate:MLPSurrogate",
    "gbt": "nas.surrogate:GBTSurrogate",
    "ridge": "nas.surrogate:RidgeSurrogate",
}, "surrogate=NAME")

#: Optuna samplers, for the optuna comparator (``algorithm.sampler``) and ``nas.tune``
#: (``tune.sampler``): one factory, :func:`optuna_sampler`
SAMPLERS = Registry("Optuna sampler", {
    "nsga2": "optuna.samplers:NSGAIISampler",
    "nsga3": "optuna.samplers:NSGAIIISampler",
    "gp": "optuna.samplers:GPSampler",
    "tpe": "optuna.samplers:TPESampler",
    "random": "optuna.samplers:RandomSampler",
}, "algorithm.sampler=NAME or tune.sampler=NAME")

#: what an evaluator computes for a candidate (``evaluator.backend`` picks one with its
#: runner: see :data:`BACKENDS`)
TASKS = Registry("evaluator task", {
    "train": "nas.evaluate.tasks:TrainTask",
    "table": "nas.evaluate.tasks:TableTask",
    "supernet": "nas.evaluate.tasks:SupernetTask",
    "zero_cost": "nas.evaluate.tasks:ZeroCostTask",
}, "evaluator=NAME")

#: where an evaluator runs its tasks (``evaluator.runner``)
RUNNERS = Registry("evaluator runner", {
    "local": "nas.evaluate.runners:LocalRunner",
    "pool": "nas.evaluate.runners:PoolRunner",
    "ray": "nas.evaluate.cluster:RayRunner",
}, "evaluator.runner=local | pool | ray")

#: the evaluator options of conf/evaluator/: ``backend`` -> (task, default runner)
BACKENDS: dict[str, tuple[str, str]] = {
    "local": ("train", "local"),
    "pool": ("train", "pool"),
    "ray": ("train", "ray"),
    "table": ("table", "local"),
    "supernet": ("supernet", "local"),
    "zero_cost": ("zero_cost", "local"),
}

#: weight-sharing supernets, by the space they share weights over
SUPERNETS = Registry("supernet", {
    "mobile": "nas.supernet.spaces:MobileSupernet",
    "residual": "nas.supernet.spaces:ResidualSupernet",
}, "+space=NAME of a space with a supernet")


# --------------------------------------------------------------------------------------------
# Optuna samplers: one factory, one set of defaults
# --------------------------------------------------------------------------------------------


def optuna_sampler(name: str, *, seed: int | None, key: str = "algorithm.sampler",
                   **options: Any) -> Any:
    """The Optuna sampler ``name`` with this project's defaults: multivariate TPE with the
    constant liar (trials asked in a batch, or by parallel workers, see each other running);
    ``options`` are the sampler's own keyword arguments (e.g. ``population_size``).
    Constraints reach every sampler as trial constraint values (``Trial.set_constraint``,
    Optuna >= 5), so none takes a ``constraints_func``."""
    if not isinstance(name, str) or name not in SAMPLERS:
        raise checks.unknown("Optuna sampler", name, SAMPLERS, f"{key}=NAME")
    defaults = {"multivariate": True, "constant_liar": True} if name == "tpe" else {}
    cls = SAMPLERS.get(name)
    try:
        return cls(seed=seed, **{**defaults, **options})
    except TypeError as e:
        raise ValueError(f"{key}={name}: {str(e).splitlines()[0]}; see the options of "
                         f"optuna.samplers.{cls.__name__}") from None


# --------------------------------------------------------------------------------------------
# Data sets, spaces, architectures
# --------------------------------------------------------------------------------------------

#: make_datamodule arguments that training sets itself (from the spec and the recipe)
DATA_KEYS_SET_BY_TRAIN = ("batch_size", "train_fraction", "val_fraction", "resolution", "seed")


@dataclass(frozen=True)
class DataInfo:
    """What a data set looks like to an architecture (None: the network's own default)."""

    name: str | None = None
    num_classes: int | None = None
    in_channels: int | None = None
    resolution: int | None = None


def split_data_config(data: Mapping) -> tuple[str, dict]:
    """``(name, make_datamodule kwargs)`` of a data config, without the keys the training
    recipe sets (batch size, splits, seed); ValueError when it names no data set."""
    data = dict(plain(data))
    name = data.pop("name", None)
    if not name:
        raise ValueError("data config needs 'name', e.g. data=digits")
    for k in DATA_KEYS_SET_BY_TRAIN:
        data.pop(k, None)
    return name, data


def datamodule(name: str, **kwargs: Any) -> Any:
    """The data module of data set ``name`` with its keyword options; TypeError naming an
    option the data set does not take."""
    cls = DATASETS.get(name)
    allowed = dataset_options(name)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TypeError(f"{name} does not take {', '.join(unknown)}; accepted: "
                        f"{', '.join(allowed)}")
    return cls(**kwargs)


def dataset_options(name: str) -> list[str]:
    """Keyword arguments the data set ``name`` takes (its class hierarchy's keyword-only
    constructor arguments, up to Lightning's base class)."""
    names: list[str] = []
    for cls in DATASETS.get(name).__mro__:
        if not cls.__module__.startswith("nas."):  # Lightning's base classes and above
            break
        if "__init__" in vars(cls):
            for p in inspect.signature(cls.__init__).parameters.values():
                if p.kind is p.KEYWORD_ONLY and p.name not in names:
                    names.append(p.name)
    return names


def data_info(data: Mapping) -> DataInfo:
    """Classes, channels and native resolution of a data config (loads the data once)."""
    name, kwargs = split_data_config(data)
    dm = datamodule(name, **kwargs)
    return DataInfo(name, dm.num_classes, dm.in_channels, dm.resolution)


def space_presets() -> list[str]:
    """Names of the space config files in ``conf/space``."""
    d = CONF_DIR / "space"
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def space_class_of(target: str) -> Any:
    """The registered space class whose ``_target_`` is ``target``; None if none."""
    for name in SPACES:
        module, _, attr = SPACES.targets[name].partition(":")
        if target == f"{module}.{attr}":
            return SPACES.get(name)
    return None


def space_target(name: str) -> str:
    """The ``_target_`` of the registered space ``name``."""
    module, _, attr = SPACES.targets[SPACES.check(name)].partition(":")
    return f"{module}.{attr}"


def space(spec: str | Mapping, overrides: list[str] | None = None, *,
          num_classes: int | None = None, in_channels: int | None = None) -> Any:
    """A search space, the one way every command and library module builds one: from a
    registry name (``mobile``), a preset of ``conf/space`` (``mobile_imagenet``) or a space
    config (``_target_`` plus layout, as a search's ``cfg.space``), with ``KEY=VALUE`` config
    overrides.

    ``num_classes`` defaults to 10 for CIFAR-size configs and 1000 for ImageNet-size ones;
    ``in_channels`` to 3. Raises ValueError for unknown names, keys or values."""
    if isinstance(spec, str):
        path = CONF_DIR / "space" / f"{spec}.yaml"
        if path.is_file():
            cfg = OmegaConf.load(path)
        elif spec in SPACES:
            cfg = OmegaConf.create({"_target_": space_target(spec)})
        else:
            raise checks.unknown("search space", spec, SPACES,
                                 f"+space=NAME; presets in conf/space: "
                                 f"{', '.join(space_presets()) or 'none'}")
        where = str(path) if path.is_file() else spec
    else:
        cfg = OmegaConf.create(dict(plain(spec)))
        where = "the space config"
    name = cfg.pop("name", None) if "name" in cfg else None
    try:
        extra = OmegaConf.from_dotlist(list(overrides or []))
    except OmegaConfBaseException as e:
        raise ValueError(f"space overrides: cannot parse {overrides}: {e}") from None
    target = str(cfg.get("_target_", ""))
    cls = space_class_of(target)
    if cls is None:
        raise UnknownName(f"{where}: _target_ {target!r} is not a registered space class; "
                          f"spaces: {', '.join(SPACES)}")
    known = [p for p in inspect.signature(cls.__init__).parameters
             if p not in ("self", "num_classes", "in_channels")]
    for key in list(extra) + [k for k in cfg if k != "_target_"]:
        if key not in known:
            raise ValueError(f"unknown key {key!r} for the {cls.name} space; keys: "
                             f"{', '.join(known)}")
    layout = {k: v for k, v in OmegaConf.to_container(OmegaConf.merge(cfg, extra),
                                                      resolve=True).items() if k != "_target_"}

    def make(classes: int) -> Any:
        return cls(num_classes=classes, in_channels=in_channels or 3, **layout)

    obj = make(num_classes or 10)
    if num_classes is None and obj.default_resolution >= 96:
        obj = make(1000)
    if name is not None and name != obj.name:
        raise ValueError(f"{where}: name {name!r} does not match its class's space "
                         f"{obj.name!r}; make them agree")
    return obj


def baseline_spec(name: str, info: DataInfo | None = None, resolution: int | None = None, *,
                  head: str | None = None) -> ArchSpec:
    """Baseline ``name`` for a data set: its classes and channels (the net's defaults where
    ``info`` leaves them None), at ``resolution`` (None: the data's native resolution, or
    the net's own where its layers do not fit that); ``head`` picks the classifier form of
    the nets that have one (``"conv"``)."""
    info = info or DataInfo()
    kw: dict[str, Any] = {k: v for k, v in (("num_classes", info.num_classes),
                                            ("in_channels", info.in_channels),
                                            ("head", head)) if v is not None}
    res = resolution or info.resolution
    try:
        return zoo.get(name, **kw, **({} if res is None else {"resolution": res}))
    except SpecError:
        if resolution is not None or res is None:
            raise
        own = zoo.BASELINES[name].resolutions[0]
        log.info("%s does not fit %dx%d inputs; using its own resolution %d", name, res, res,
                 own)
        return zoo.get(name, **kw, resolution=own)


ARCH_FORMS = ("a baseline name (see python -m nas.cost --list), space:genome (e.g. "
              "mobile:1-0-2-...), a quoted spec string, inline spec JSON, a spec JSON file or "
              "an export folder")


def arch_form(text: str) -> str:
    """Which form of :data:`ARCH_FORMS` ``text`` is: ``json``, ``string``, ``file``,
    ``genome`` or ``baseline``."""
    text = str(text).strip()
    if text.startswith("{"):
        return "json"
    if " " in text:
        return "string"
    if text.endswith(".json") or os.sep in text or Path(text).expanduser().exists():
        return "file"
    if ":" in text:
        return "genome"
    return "baseline"


def arch(text: str, info: DataInfo | None = None, resolution: int | None = None, *,
         space_cfg: Mapping | None = None, head: str | None = None) -> ArchSpec:
    """``text`` as an ArchSpec. The forms every command accepts:

    * a baseline name (``resnet20``), built for ``info``'s data set (see `baseline_spec`);
    * ``space:genome`` (dash-separated integers) of a registry space or a ``conf/space``
      preset (``mobile_imagenet:...``), or of the space config ``space_cfg`` (a search's
      ``cfg.space``) when given;
    * a spec string with its input shape (``'3x32x32 cba_c16 head_c10'``);
    * inline spec JSON (``{...}``), a spec JSON file, or an export folder (its spec.json).

    ``head`` applies to baseline names only; ``resolution`` too (a spec fixes its own
    input)."""
    text = str(text).strip()
    if not text:
        raise ValueError(f"empty architecture; pass {ARCH_FORMS}")
    form = arch_form(text)
    if head is not None and form != "baseline":
        raise ValueError(f"head={head!r} applies to baseline names (vgg16, alexnet, ...), not "
                         f"to {text!r}; a spec fixes its own classifier")
    if form == "json":
        return ArchSpec.from_json(text)
    if form == "string":
        return ArchSpec.from_string(text)
    if form == "file":
        path = Path(text).expanduser()
        if path.is_dir() and (path / "spec.json").is_file():
            path = path / "spec.json"
        if not path.is_file():
            raise FileNotFoundError(f"spec file {text} does not exist; pass {ARCH_FORMS}")
        return ArchSpec.from_json(path.read_text())
    if form == "genome":
        space_name, _, genome_text = text.partition(":")
        info = info or DataInfo()
        obj = space(space_cfg if space_cfg else space_name, num_classes=info.num_classes,
                    in_channels=info.in_channels)
        if space_cfg and obj.name != space_name:
            raise ValueError(f"arch={text!r} names space {space_name!r} but the space config "
                             f"is {obj.name!r}; make them agree")
        return obj.decode(obj.parse_genome(genome_text))
    return baseline_spec(text, info, resolution, head=head)


__all__ = ["ALGORITHMS", "ARCH_FORMS", "BACKENDS", "DATASETS", "DATA_KEYS_SET_BY_TRAIN",
           "DataInfo", "RUNNERS", "Registry", "SAMPLERS", "SPACES", "SUPERNETS", "SURROGATES",
           "TASKS", "UnknownName", "arch", "arch_form", "baseline_spec", "data_info",
           "datamodule", "dataset_options", "optuna_sampler", "space", "space_class_of",
           "space_presets", "space_target", "split_data_config"]
