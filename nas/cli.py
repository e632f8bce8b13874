"""The command-line layer every entry point shares.

The rule: **Hydra for commands that write run folders** (``nas.search``, ``nas.tune``,
``nas.train``, ``nas.baselines``, ``nas.supernet``: composed configs, overrides, multirun),
**argparse for read-only tools** (``nas.cost``, ``nas.space``, ``nas.report``,
``nas.export``, ``nas.latency``).

One exit-code policy for all of them:

* 0: done;
* 2: a user's mistake (a bad value, an unknown name, a missing file, a run folder in use):
  one line ``error: ...`` naming the problem and the fix, no traceback;
* 1: a crash (a bug, a broken installation): the traceback;
* 130: interrupted (Ctrl-C), after saying how to continue where that applies;
* 143: terminated (SIGTERM, as sent by ``timeout``, SLURM or Kubernetes), handled as Ctrl-C.

Also here, so that every command accepts the same forms: :func:`resolve_arch` (a baseline
name, ``space:genome``, a spec string, inline spec JSON, a spec JSON file or an export
folder), :func:`load_space` (a registry name, a ``conf/space`` preset or a space config) and
:func:`data_info` (what a data set looks like to an architecture), plus the formatting
helpers :func:`fmt_count` and :func:`fmt_pct`.

``python -m nas.cost resnet50 | head -3`` closes the pipe while the table is still being
printed; :func:`run` then ends quietly with status 0, as Unix tools do, instead of a
``BrokenPipeError`` traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: the Hydra configs (``conf/``)
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
#: exit statuses
EXIT_OK, EXIT_CRASH, EXIT_USER, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


# --------------------------------------------------------------------------------------------
# Errors and exit codes
# --------------------------------------------------------------------------------------------


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that are a user's mistake, reported as one line with exit status 2: bad
    values and names (ValueError and its subclasses: SpecError, SearchError, ...), missing
    files, bad configs, and a candidate that cannot be trained (divergence, time limit)."""
    from omegaconf.errors import OmegaConfBaseException

    from nas.train import CandidateFailed

    return (ValueError, FileNotFoundError, OmegaConfBaseException, CandidateFailed)


def error_line(e: BaseException) -> str:
    """``error: <first line of the message>`` (a missing ``???`` value names the key)."""
    from omegaconf.errors import MissingMandatoryValue

    from nas.train import CandidateFailed

    if isinstance(e, MissingMandatoryValue):
        key = getattr(e, "full_key", None) or ""
        return (f"error: missing mandatory value {key or str(e).splitlines()[0]}; pass it on "
                f"the command line, e.g. {key or 'key'}=...")
    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    text = text.splitlines()[0] if text else type(e).__name__
    if isinstance(e, CandidateFailed):
        text = f"training failed: {text}"
    return f"error: {text}"


class Terminated(KeyboardInterrupt):
    """SIGTERM (what ``timeout``, SLURM and Kubernetes send): handled as Ctrl-C is."""


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within: SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) in the main thread,
    so a command stops as it does on Ctrl-C (state saved, status ``interrupted``, how to
    resume), then exits with 143."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated("terminated (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupted_status(e: KeyboardInterrupt) -> int:
    """130 for Ctrl-C, 143 for SIGTERM (128 + the signal's number, as shells report)."""
    seen: BaseException | None = e
    while seen is not None:  # Lightning and the search re-raise it as other interrupts
        if isinstance(seen, Terminated):
            return EXIT_TERMINATED
        seen = seen.__context__
    return EXIT_INTERRUPTED


def hydra_app(config_name: str, task: Callable[[Any, Path, list[str]], Any]) -> None:
    """Run ``task(cfg, run_dir, overrides)`` as the Hydra app ``conf/<config_name>.yaml``
    under the exit-code policy above; a run folder that failed before writing anything is
    removed again."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from nas.run import cleanup_hydra_dir

    @hydra.main(config_path=str(CONF_DIR), config_name=config_name, version_base="1.3")
    def _app(cfg: Any) -> Any:
        hc = HydraConfig.get()
        run_dir = Path(hc.runtime.output_dir)
        try:
            with sigterm_interrupts():
                return task(cfg, run_dir, list(hc.overrides.task))
        except KeyboardInterrupt as e:
            cleanup_hydra_dir(run_dir)
            print(str(e) or "interrupted", file=sys.stderr)
            sys.exit(interrupted_status(e))
        except user_errors() as e:
            cleanup_hydra_dir(run_dir)
            print(error_line(e), file=sys.stderr)
            sys.exit(EXIT_USER)

    _app()


def run(main: Callable[[], int | None]) -> int:
    """Run an argparse ``main`` and return its exit status; a reader that closed standard
    output early is not an error, a user's mistake is one line with status 2."""
    try:
        with sigterm_interrupts():
            status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at /dev/null so that flush cannot
        # raise a second time (the recipe of the `signal` module's documentation).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt as e:
        print(str(e) or "interrupted", file=sys.stderr)
        return interrupted_status(e)
    except user_errors() as e:
        print(error_line(e), file=sys.stderr)
        return EXIT_USER
    return int(status or 0)


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """OmegaConf containers -> plain python (mandatory ``???`` values raise)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True, throw_on_missing=True)
    return value


def fmt_count(n: float | None) -> str:
    """``1.53M``, ``44.04k``; ``-`` for a missing value."""
    from nas.cost import human

    return "-" if n is None else human(n)


def fmt_pct(x: float | None) -> str:
    """A fraction as ``95.83%``; ``-`` for a missing value."""
    return "-" if x is None else f"{100 * x:.2f}%"


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


def data_info(data: Mapping) -> DataInfo:
    """Classes, channels and native resolution of a data config (loads the data once)."""
    from nas.data import make_datamodule

    name, data = split_data_config(data)
    dm = make_datamodule(name, **data)
    return DataInfo(name, dm.num_classes, dm.in_channels, dm.resolution)


def space_presets() -> list[str]:
    """Names of the space config files in ``conf/space``."""
    d = CONF_DIR / "space"
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def load_space(space: str | Mapping, overrides: list[str] | None = None, *,
               num_classes: int | None = None, in_channels: int | None = None) -> Any:
    """A search space from a registry name (``mobile``), a preset of ``conf/space``
    (``mobile_imagenet``) or a space config (``_target_`` plus layout, as a search's
    ``cfg.space``), with ``KEY=VALUE`` config overrides.

    ``num_classes`` defaults to 10 for CIFAR-size configs and 1000 for ImageNet-size ones;
    ``in_channels`` to 3. Raises ValueError for unknown names, keys or values."""
    import inspect

    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from search_spaces import SPACES

    if isinstance(space, str):
        path = CONF_DIR / "space" / f"{space}.yaml"
        if path.is_file():
            cfg = OmegaConf.load(path)
        elif space in SPACES:
            cfg = OmegaConf.create({"_target_": f"{SPACES[space].__module__}."
                                                f"{SPACES[space].__qualname__}"})
        else:
            raise ValueError(f"unknown search space {space!r}; spaces: {', '.join(SPACES)}; "
                             f"presets (conf/space): {', '.join(space_presets()) or 'none'}")
        where = str(path) if path.is_file() else space
    else:
        cfg = OmegaConf.create(dict(plain(space)))
        where = "the space config"
    name = cfg.pop("name", None) if "name" in cfg else None
    try:
        extra = OmegaConf.from_dotlist(list(overrides or []))
    except OmegaConfBaseException as e:
        raise ValueError(f"space overrides: cannot parse {overrides}: {e}") from None
    target = str(cfg.get("_target_", ""))
    cls = next((c for c in SPACES.values() if f"{c.__module__}.{c.__qualname__}" == target),
               None)
    if cls is None:
        raise ValueError(f"{where}: _target_ {target!r} is not a registered space class; "
                         f"spaces: {', '.join(SPACES)}")
    known = [p for p in inspect.signature(cls.__init__).parameters
             if p not in ("self", "num_classes", "in_channels")]
    for key in list(extra) + [k for k in cfg if k != "_target_"]:
        if key not in known:
            raise ValueError(f"unknown key {key!r} for the {cls.name} space; keys: "
                             f"{', '.join(known)}")
    cfg = OmegaConf.merge(cfg, extra)

    def make(classes: int) -> Any:
        try:
            return instantiate(cfg, num_classes=classes, in_channels=in_channels or 3,
                               _convert_="all")
        except InstantiationException as e:  # report the space's own message
            cause = e.__cause__
            raise (cause if isinstance(cause, (ValueError, TypeError)) else ValueError(e)) \
                from None

    obj = make(num_classes or 10)
    if num_classes is None and obj.default_resolution >= 96:
        obj = make(1000)
    if name is not None and name != obj.name:
        raise ValueError(f"{where}: name {name!r} does not match its class's space "
                         f"{obj.name!r}; make them agree")
    return obj


def baseline_spec(name: str, info: DataInfo | None = None, resolution: int | None = None, *,
                  head: str | None = None) -> Any:
    """Baseline ``name`` for a data set: its classes and channels (the net's defaults where
    ``info`` leaves them None), at ``resolution`` (None: the data's native resolution, or
    the net's own where its layers do not fit that); ``head`` picks the classifier form of
    the nets that have one (``"conv"``)."""
    from nas.spec import SpecError
    from search_spaces import baselines as zoo

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


def arch_form(arch: str) -> str:
    """Which form of :data:`ARCH_FORMS` ``arch`` is: ``json``, ``string``, ``file``,
    ``genome`` or ``baseline``."""
    arch = str(arch).strip()
    if arch.startswith("{"):
        return "json"
    if " " in arch:
        return "string"
    if arch.endswith(".json") or os.sep in arch or Path(arch).expanduser().exists():
        return "file"
    if ":" in arch:
        return "genome"
    return "baseline"


def resolve_arch(arch: str, info: DataInfo | None = None, resolution: int | None = None, *,
                 space: Mapping | None = None, head: str | None = None) -> Any:
    """``arch`` as an ArchSpec. The forms every command accepts:

    * a baseline name (``resnet20``), built for ``info``'s data set (see `baseline_spec`);
    * ``space:genome`` (dash-separated integers) of a registry space or a ``conf/space``
      preset (``mobile_imagenet:...``), or of the space config ``space`` (a search's
      ``cfg.space``) when given;
    * a spec string with its input shape (``'3x32x32 cba_c16 head_c10'``);
    * inline spec JSON (``{...}``), a spec JSON file, or an export folder (its spec.json).

    ``head`` applies to baseline names only; ``resolution`` too (a spec fixes its own
    input)."""
    from nas.spec import ArchSpec

    arch = str(arch).strip()
    if not arch:
        raise ValueError(f"empty architecture; pass {ARCH_FORMS}")
    form = arch_form(arch)
    if head is not None and form != "baseline":
        raise ValueError(f"head={head!r} applies to baseline names (vgg16, alexnet, ...), not "
                         f"to {arch!r}; a spec fixes its own classifier")
    if form == "json":
        return ArchSpec.from_json(arch)
    if form == "string":
        return ArchSpec.from_string(arch)
    if form == "file":
        path = Path(arch).expanduser()
        if path.is_dir() and (path / "spec.json").is_file():
            path = path / "spec.json"
        if not path.is_file():
            raise FileNotFoundError(f"spec file {arch} does not exist; pass {ARCH_FORMS}")
        return ArchSpec.from_json(path.read_text())
    if form == "genome":
        space_name, _, genome_text = arch.partition(":")
        info = info or DataInfo()
        obj = load_space(space if space else space_name, num_classes=info.num_classes,
                         in_channels=info.in_channels)
        if space and obj.name != space_name:
            raise ValueError(f"arch={arch!r} names space {space_name!r} but the space config "
                             f"is {obj.name!r}; make them agree")
        return obj.decode(obj.parse_genome(genome_text))
    return baseline_spec(arch, info, resolution, head=head)


__all__ = ["ARCH_FORMS", "CONF_DIR", "DATA_KEYS_SET_BY_TRAIN", "DataInfo", "EXIT_CRASH",
           "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USER", "arch_form", "baseline_spec", "data_info",
           "error_line", "fmt_count", "fmt_pct", "hydra_app", "load_space", "plain",
           "resolve_arch", "run", "space_presets", "split_data_config", "user_errors"]
