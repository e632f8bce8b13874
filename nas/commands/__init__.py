"""The command layer: one module per entry point, and the one task wrapper they share.

Every ``python -m nas.X`` runs ``nas/X/__main__.py``, which calls ``nas.commands.X.main``.
A command module holds all of a command's own code (parsing, the plain ``run_*`` function
tests call, the summary it prints); the library never imports a command.

The rule: **Hydra for commands that write run folders** (``search``, ``tune``, ``train``,
``baselines``, ``supernet``: composed configs, overrides, multirun; :func:`hydra_app`),
**argparse for read-only tools** (``cost``, ``space``, ``report``, ``export``, ``latency``;
:func:`run`). One exit-code policy for all of them:

* 0: done;
* 2: a user's mistake (a bad value, an unknown name or key, a missing file, a run folder in
  use): one line ``error: ...`` naming the problem and the fix, no traceback;
* 1: a crash (a bug, a broken installation): the traceback;
* 130: interrupted (Ctrl-C), after saying how to continue where that applies;
* 143: terminated (SIGTERM, as sent by ``timeout``, SLURM or Kubernetes), handled as Ctrl-C.

Hydra's own composition errors (an unknown option ``data=foo``, an unknown key
``budget.evalutions=5``, an unparsable override) are user mistakes too and get the same
one line. A ``--multirun`` sweep checks every job's config before the first job starts;
a job that fails does not stop the others, and the sweep ends saying how many failed or
did not run (:class:`SweepReport`).

``python -m nas.cost resnet50 | head -3`` closes the pipe while the table is still being
printed; :func:`run` then ends quietly with status 0, as Unix tools do.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper  # Hydra's job expansion
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobStatus
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from nas.commands.schema import check_keys, check_override_order, unknown_key
from nas.config import COMMANDS, CONF_DIR
from nas.cost import human
from nas.recipe import CandidateFailed
from nas.registry import Registry
from nas.run import cleanup_hydra_dir

#: exit statuses
EXIT_OK, EXIT_CRASH, EXIT_USER, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143

#: each Hydra command's check of a composed config (run before its first file, and for
#: every job of a sweep before the first job starts)
CHECKS = Registry("command", {
    "search": "nas.commands.search:check",
    "tune": "nas.commands.tune:check",
    "train": "nas.commands.train:check",
    "baselines": "nas.commands.baselines:check",
    "supernet": "nas.commands.supernet:check",
})

#: the job function of each command whose package loads nothing heavy, so that
#: ``python -m nas.X`` composes and key-checks its command line before importing it
#: (:func:`run_command`)
TASKS = Registry("command", {
    "search": "nas.commands.search:task",
    "tune": "nas.commands.tune:task",
    "baselines": "nas.commands.baselines:task",
})


# --------------------------------------------------------------------------------------------
# Errors and exit codes
# --------------------------------------------------------------------------------------------


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that are a user's mistake, reported as one line with exit status 2: bad
    values and names (ValueError and its subclasses: SpecError, SearchError, ...), missing
    files, bad configs, and a candidate that cannot be trained (divergence, time limit)."""
    return (ValueError, FileNotFoundError, OmegaConfBaseException, CandidateFailed)


def error_line(e: BaseException) -> str:
    """``error: <first line of the message>`` (a missing ``???`` value names the key)."""
    if isinstance(e, MissingMandatoryValue):
        key = getattr(e, "full_key", None) or ""
        return (f"error: missing mandatory value {key or str(e).splitlines()[0]}; pass it on "
                f"the command line, e.g. {key or 'key'}=...")
    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    text = text.splitlines()[0] if text else type(e).__name__
    if isinstance(e, CandidateFailed):
        text = f"training failed: {text}"
    return f"error: {text}"


def composition_error_line(e: BaseException, command: str) -> str:
    """One line for an error Hydra raises while composing the config from the command line
    (before any of the command's code runs)."""
    text = str(e)
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    if isinstance(e, MissingConfigException) or "Could not find" in first:
        missing = str(getattr(e, "missing_cfg_file", None) or first.split("'")[1]
                      if "'" in first else first)
        group, _, option = missing.partition("/")
        opts = getattr(e, "options", None) or []
        known = f"; options: {', '.join(opts)}" if opts else ""
        if option:
            return f"error: {group}={option} is not an option of the {group} group{known}"
        return f"error: {first}{known} (see python -m nas.{command} --help)"
    if "Could not override '" in first:
        key = first.split("'")[1]
        path, _, leaf = key.rpartition(".")
        if path.startswith("tune.params"):
            return (f"error: {key} is not a parameter of this study; add one with a leading "
                    f"+ and the expression quoted: '+{key}=\"interval(0.1, 0.9)\"'")
        try:
            node = OmegaConf.select(_compose_quiet(command), path) if path else None
        except Exception:  # noqa: BLE001 - the suggestion is a courtesy
            node = None
        allowed = set(node.keys()) if isinstance(node, DictConfig) else set()
        return "error: " + str(unknown_key(path, leaf, allowed) if allowed else
                               f"unknown config key {key!r}: nothing reads it")
    if "requires --multirun" in first:
        key = first.split("'")[1].split("=")[0] if "'" in first else ""
        if key.lstrip("+").startswith("tune.params"):
            return (f"error: quote the parameter's expression so it reaches the study as "
                    f"text: '{key}=\"interval(a, b)\"' (in the shell: single quotes around "
                    f"the whole item)")
        return f"error: {first}; a comma-separated list of values is a sweep: add --multirun"
    if isinstance(e, OverrideParseException):
        return (f"error: cannot parse an override: {first}; see "
                f"https://hydra.cc/docs/advanced/override_grammar/basic/")
    return f"error: {first}"


def _compose_quiet(command: str) -> DictConfig:
    with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra.compose(config_name=COMMANDS[command])


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


# --------------------------------------------------------------------------------------------
# Hydra commands
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobFailed:
    """What a sweep job returns when it failed (the sweep goes on; :class:`SweepReport`
    counts it)."""

    reason: str
    crashed: bool = False


def hydra_app(command: str, task: Callable[[Any, Path, list[str]], Any]) -> None:
    """Run ``task(cfg, run_dir, overrides)`` as the Hydra app of ``command`` (its config
    ``conf/<COMMANDS[command]>.yaml``) under the exit-code policy above: the command's check
    (:data:`CHECKS`) runs first, and a run folder that failed before writing anything is
    removed again."""

    @hydra.main(config_path=str(CONF_DIR), config_name=COMMANDS[command], version_base="1.3")
    def _app(cfg: Any) -> Any:
        hc = HydraConfig.get()
        run_dir = Path(hc.runtime.output_dir)
        sweep = hc.mode == RunMode.MULTIRUN
        try:
            with sigterm_interrupts():
                check_override_order(list(hc.overrides.task))
                # the keys first: a typo is named before the command's own modules (torch,
                # Lightning) load, in a second instead of several
                check_keys(cfg, command)
                CHECKS.get(command)(cfg)
                return task(cfg, run_dir, list(hc.overrides.task))
        except KeyboardInterrupt as e:
            cleanup_hydra_dir(run_dir)
            print(str(e) or "interrupted", file=sys.stderr)
            sys.exit(interrupted_status(e))
        except user_errors() as e:
            cleanup_hydra_dir(run_dir)
            print(error_line(e), file=sys.stderr)
            if sweep:
                return JobFailed(error_line(e)[len("error: "):])
            sys.exit(EXIT_USER)
        except Exception as e:
            if not sweep:
                raise
            traceback.print_exc()  # a crash: the traceback, and the sweep goes on
            return JobFailed(f"{type(e).__name__}: {e}", crashed=True)

    # Hydra then raises its composition errors here instead of printing them with a hint to
    # set this variable: they are a user's mistakes and get the one-line error
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        _app()
    except (HydraException, OmegaConfBaseException) as e:
        print(composition_error_line(e, command), file=sys.stderr)
        sys.exit(EXIT_USER)


def run_command(command: str) -> None:
    """``python -m nas.<command>`` for a command of :data:`TASKS`: :func:`hydra_app` with
    the command's task, whose module (and with it torch, Lightning, scikit-learn) is
    imported only once Hydra has composed the command line and its keys are checked: a
    typo is named in about a second."""
    hydra_app(command, lambda cfg, run_dir, overrides: TASKS.get(command)(cfg, run_dir,
                                                                          overrides))


def sweep_jobs(config: DictConfig) -> list[list[str]]:
    """The override list of every job of the sweep ``config`` describes (its sweeper's
    ``params`` and the command line's overrides), in Hydra's order."""
    params = config.hydra.sweeper.get("params") or {}
    items = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(items)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


class SweepReport(Callback):
    """Hydra callback of every command (``hydra.callbacks.sweep`` in its config): before a
    ``--multirun`` sweep starts, every job's config is composed and checked, and the first
    bad one stops the sweep with one line naming the job; at the end, one line says how
    many jobs failed (and which) or did not run, and the exit status is 2 (a user's
    mistake) or 1 (a crash) when any failed."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.jobs: list[list[str]] = []
        self.ended: list[tuple[list[str], JobFailed | None]] = []

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.jobs = sweep_jobs(config)
        check = CHECKS.get(self.command)
        for i, job in enumerate(self.jobs):
            try:
                check_override_order(job)
                cfg = hydra.compose(config_name=COMMANDS[self.command], overrides=job)
                check(cfg)
            except (HydraException, OmegaConfBaseException, *user_errors()) as e:
                line = (composition_error_line(e, self.command)
                        if isinstance(e, HydraException) else error_line(e))
                print(f"error: sweep job #{i} ({' '.join(job)}): {line[len('error: '):]}; no "
                      f"job was started", file=sys.stderr)
                sys.exit(EXIT_USER)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        value = None
        if job_return.status == JobStatus.FAILED:
            value = JobFailed(str(job_return._return_value), crashed=True)
        elif isinstance(job_return._return_value, JobFailed):
            value = job_return._return_value
        self.ended.append((list(job_return.overrides or []), value))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        failed = [(o, f) for o, f in self.ended if f is not None]
        not_run = max(0, len(self.jobs) - len(self.ended))
        total = len(self.jobs) or len(self.ended)
        if not failed and not not_run:
            print(f"sweep: all {total} jobs done", file=sys.stderr)
            return
        detail = "; ".join(f"{' '.join(o)}: {f.reason}" for o, f in failed[:3])
        print(f"sweep: {len(failed)} of {total} failed, {not_run} not run"
              + (f" ({detail})" if detail else ""), file=sys.stderr)
        sys.exit(EXIT_CRASH if any(f.crashed for _, f in failed) else EXIT_USER)


# --------------------------------------------------------------------------------------------
# argparse tools
# --------------------------------------------------------------------------------------------


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
# Formatting shared by the summaries
# --------------------------------------------------------------------------------------------


def fmt_count(n: float | None) -> str:
    """``1.53M``, ``44.04k``; ``-`` for a missing value."""
    return "-" if n is None else human(n)


def fmt_pct(x: float | None) -> str:
    """A fraction as ``95.83%``; ``-`` for a missing value."""
    return "-" if x is None else f"{100 * x:.2f}%"


__all__ = ["CHECKS", "EXIT_CRASH", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_TERMINATED",
           "EXIT_USER", "JobFailed", "SweepReport", "Terminated", "composition_error_line",
           "error_line", "fmt_count", "fmt_pct", "hydra_app", "interrupted_status", "run",
           "sigterm_interrupts", "sweep_jobs", "user_errors"]
