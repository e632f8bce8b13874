"""``python -m nas.tune``: tune a search's own settings with Optuna; every trial is a whole
search.

    python -m nas.tune +space=mobile +experiment=tune_proxy            # conf/experiment/tune_proxy.yaml
    python -m nas.tune +space=mobile "+tune.params={train.lr:'tag(log, interval(0.01, 0.5))'}"
    python -m nas.tune +space=mobile +experiment=tune_proxy tune.n_trials=20   # continue to 20
    python -m nas.tune +space=mobile +experiment=tune_proxy tune.storage=postgresql://host/db

The configuration is the search's (``conf/tune.yaml`` composes ``conf/search.yaml``) plus a
``tune`` section. ``tune.params`` maps search keys (or config groups) to the Hydra sweep
vocabulary, parsed with Hydra's own override grammar:

    interval(a, b)              a float in [a, b]
    int(interval(a, b))         an integer in [a, b]
    tag(log, interval(a, b))    sampled on a log scale
    range(a, b[, step])         integers a, a+step, ... < b
    choice(x, y, ...)           one of the values (numbers, strings, lists, group options)

Each trial composes the search configuration with the command line and its suggested
overrides, runs :func:`nas.commands.search.run_search` into ``trials/<number>/`` of the tune run folder
and reports ``tune.objectives`` (final hypervolume by default; several make a
multi-objective study).

The study lives in ``tune.storage`` (default ``study.sqlite`` in the tune run folder,
``runs/tune/<study_name>/``), so the same command again continues it: complete trials are
kept and it runs until ``tune.n_trials`` are complete. Several processes or machines pointed
at one storage share the study. A trial whose process died (killed on this machine, or, with
a database storage, silent for two heartbeats) or that was interrupted is marked failed and
retried with the same parameters; the retry resumes the killed trial's search folder.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, Transformer
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import IntegrityError, OperationalError

from nas import registry
from nas.commands.schema import check_keys
from nas.commands.search import check as check_search
from nas.commands.search import run_search
from nas.config import CONF_DIR
from nas.run import RunFolder, pid_alive
from nas.search import SearchError

log = logging.getLogger("nas.tune")

# objective name -> (direction, what it is); the values come from run_search's result
OBJECTIVES = {
    "hypervolume": ("maximize", "final hypervolume of the search"),
    "accuracy": ("maximize", "best validation accuracy among its architectures"),
    "train_seconds": ("minimize", "seconds spent training its architectures (all attempts)"),
    "wall_time": ("minimize", "seconds the trial's search ran (a resumed trial: this attempt)"),
}
TRIALS_DIR = "trials"
STUDY_FILE = "study.sqlite"
# suffixes of a tune.storage path that is a SQLite file (any other path is a journal file)
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
SWEEP_HELP = ("interval(a, b), int(interval(a, b)), tag(log, interval(a, b)), range(a, b) "
              "or choice(x, y, ...)")


class TuneError(ValueError):
    """A tune configuration or storage problem, reported as one clear line."""


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# --------------------------------------------------------------------------------------------
# The sweep space: Hydra sweep expressions -> Optuna distributions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepParam:
    """One tuned key: its Optuna distribution and how a suggestion becomes an override."""

    key: str  # the override key as written (train.lr, train, +new.key)
    distribution: Any  # optuna.distributions.BaseDistribution
    choice_strings: tuple[str, ...] = ()  # categorical: each choice as an override value

    def suggest(self, trial) -> str:
        """Ask ``trial`` for a value and return it as a Hydra override ``key=value``."""
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            v = trial.suggest_categorical(self.key, d.choices)
            return f"{self.key}={self.choice_strings[d.choices.index(v)]}"
        if isinstance(d, IntDistribution):
            return f"{self.key}={trial.suggest_int(self.key, d.low, d.high, step=d.step, log=d.log)}"
        return f"{self.key}={trial.suggest_float(self.key, d.low, d.high, step=d.step, log=d.log)!r}"

    def first(self) -> str:
        """An override with the distribution's first value (to check the key composes)."""
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return f"{self.key}={self.choice_strings[0]}"
        return f"{self.key}={d.low!r}"


def flatten_params(params: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{train: {lr: x}}`` and ``{train.lr: x}`` both give ``{"train.lr": x}``."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten_params(v, f"{key}."))
        else:
            out[key] = v
    return out


def parse_param(key: str, text: Any) -> SweepParam:
    """Parse ``key: text`` of ``tune.params`` with Hydra's override grammar.

    Raises:
        TuneError: ``text`` is not a sweep Hydra can parse, or its bounds are unusable.
    """
    where = f"tune.params: {key}={text}"
    if not isinstance(text, str):
        raise TuneError(f"{where} is not a sweep; write {SWEEP_HELP} (fixed values go on the "
                        f"command line)")
    try:
        o = OverridesParser.create().parse_override(f"{key}={text}")
    except HydraException as e:
        raise TuneError(f"{where} cannot be parsed ({_first_line(e)}); write {SWEEP_HELP}, "
                        f"e.g. interval(0.01, 0.5)") from None
    if o.is_delete() or not o.is_sweep_override():
        raise TuneError(f"{where} is not a sweep; write {SWEEP_HELP} (fixed values go on the "
                        f"command line)")
    v = o.value()
    tags = set(getattr(v, "tags", None) or ())
    if tags - {"log"}:
        raise TuneError(f"{where}: unknown tag {sorted(tags - {'log'})}; the only tag is log, "
                        f"as in tag(log, interval(1e-5, 1e-2))")
    log_scale = "log" in tags
    if o.is_interval_sweep():
        lo, hi = v.start, v.end
        if not lo < hi:
            raise TuneError(f"{where}: the interval is empty; write interval(low, high) with "
                            f"low < high")
        if log_scale and lo <= 0:
            raise TuneError(f"{where}: a log-scale interval needs low > 0")
        if isinstance(lo, int) and isinstance(hi, int):
            return SweepParam(key, IntDistribution(lo, hi, log=log_scale))
        return SweepParam(key, FloatDistribution(float(lo), float(hi), log=log_scale))
    if log_scale:
        raise TuneError(f"{where}: tag(log, ...) applies to interval(...) only")
    if o.is_range_sweep():
        values = list(v.range())
        if not values:
            raise TuneError(f"{where}: the range is empty; write range(start, stop) with "
                            f"start < stop")
        if all(isinstance(x, int) for x in (v.start, v.stop, v.step)):
            return SweepParam(key, IntDistribution(values[0], values[-1], step=v.step))
        return SweepParam(key, CategoricalDistribution(values), tuple(repr(x) for x in values))
    if isinstance(v, Glob):
        raise TuneError(f"{where}: glob(...) is not supported; list the options with "
                        f"choice(...)")
    choices = list(o.sweep_iterator(transformer=Transformer.encode))
    return SweepParam(key, CategoricalDistribution(choices), tuple(o.sweep_string_iterator()))


def parse_params(params: Mapping) -> list[SweepParam]:
    """Every entry of ``tune.params`` (nested or dotted keys) as a :class:`SweepParam`."""
    flat = flatten_params(params)
    if not flat:
        raise TuneError("tune.params is empty: nothing to tune; e.g. +experiment=tune_proxy, "
                        "or tune.params in your own experiment file, "
                        "train.lr: tag(log, interval(0.01, 0.5))")
    return [parse_param(k, v) for k, v in flat.items()]


# --------------------------------------------------------------------------------------------
# Composition: the search config of a trial
# --------------------------------------------------------------------------------------------


def compose_config(overrides: list[str]) -> DictConfig:
    """``conf/tune.yaml`` composed with ``overrides`` (inside a Hydra app, with its search
    path; otherwise from ``conf/``)."""
    if GlobalHydra.instance().is_initialized():
        return compose(config_name="tune", overrides=overrides)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="tune", overrides=overrides)


def without_tune(cfg: DictConfig) -> DictConfig:
    """The search configuration in a composed tune config: all but its ``tune`` section."""
    cfg = cfg.copy()
    OmegaConf.set_struct(cfg, False)
    cfg.pop("tune", None)
    return cfg


def search_config(overrides: list[str]) -> DictConfig:
    """The search configuration of a trial: the tune config without its ``tune`` section."""
    return without_tune(compose_config(overrides))


def check_params(base: list[str], params: list[SweepParam]) -> None:
    """Each tuned key must override the search config (TuneError names the first that does
    not, and the fix)."""
    fixed = {o.split("=", 1)[0].lstrip("+~") for o in base}
    for p in params:
        if p.key.lstrip("+") in fixed:
            raise TuneError(f"tune.params: {p.key} is tuned and also set on the command line; "
                            f"drop one of them")
    try:
        compose_config([*base, *(p.first() for p in params)])
        return
    except HydraException:
        pass
    for p in params:  # find which one
        try:
            compose_config([*base, p.first()])
        except HydraException as e:
            raise TuneError(f"tune.params: {p.key!r} does not override the search config "
                            f"({_first_line(e)}); use a key that `python -m nas.search "
                            f"+space=NAME --cfg job` prints (e.g. train.lr), a config group "
                            f"(e.g. train), or +{p.key.lstrip('+')} to add a new key") from None
    try:
        compose_config([*base, *(p.first() for p in params)])
    except HydraException as e:  # each composes alone, not all together
        raise TuneError(f"tune.params: {', '.join(p.key for p in params)} do not compose "
                        f"together ({_first_line(e)}); tune fewer keys at once") from None


# --------------------------------------------------------------------------------------------
# Storage and sampler
# --------------------------------------------------------------------------------------------


def open_storage(spec: str | None, run_dir: Path, *, heartbeat_s: int, on_stale):
    """The Optuna storage ``tune.storage`` names, and its description for messages.

    ``None``: ``study.sqlite`` in ``run_dir``. A URL (``sqlite:///``, ``postgresql://``,
    ``mysql://``...): Optuna's RDB storage with heartbeats; ``on_stale`` receives each trial
    whose worker fell silent. Any other string is a file: SQLite if it ends in .db, .sqlite or
    .sqlite3, otherwise an Optuna journal file (file-locked; for workers on one machine or a
    shared file system).
    """
    if spec is None:
        url = f"sqlite:///{(run_dir / STUDY_FILE).resolve()}"
    elif "://" in str(spec):
        url = str(spec)
    elif str(spec).endswith(SQLITE_SUFFIXES):
        url = f"sqlite:///{Path(spec).expanduser().resolve()}"
    else:
        path = Path(spec).expanduser().resolve()
        try:
            return JournalStorage(JournalFileBackend(str(path))), str(path)
        except OSError as e:
            raise TuneError(f"tune.storage={spec}: cannot open the journal file "
                            f"({_first_line(e)}); give a path in an existing, writable folder, "
                            f"or leave tune.storage unset") from None
    kw: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kw["connect_args"] = {"timeout": 60}  # wait for other workers' writes
    for attempt in range(4):
        try:
            with warnings.catch_warnings():  # the heartbeat options are flagged experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(
                    url, engine_kwargs=kw, heartbeat_interval=heartbeat_s,
                    grace_period=2 * heartbeat_s, heartbeat_stale_trial_callback=on_stale)
            return storage, url
        except (IntegrityError, OperationalError) as e:
            # workers creating a new database at the same moment race to write its schema:
            # the losers find it written when they try again
            racing = isinstance(e, IntegrityError) or "already exists" in str(e)
            if racing and attempt < 3:
                time.sleep(0.5 * (attempt + 1))
                continue
            error = e
        except Exception as e:  # noqa: BLE001 - SQLAlchemy, driver and OS errors alike
            error = e
        raise TuneError(f"tune.storage={url}: cannot open the storage ({_first_line(error)}); "
                        f"check the URL, that the database server is reachable and its Python "
                        f"driver installed, or leave tune.storage unset for a SQLite file in "
                        f"the run folder") from None
    raise AssertionError("unreachable")


def make_sampler(name: str, seed: int | None, options: Mapping | None = None):
    """The Optuna sampler ``tune.sampler`` names (:func:`nas.registry.optuna_sampler`, the
    one factory the optuna comparator uses too)."""
    try:
        return registry.optuna_sampler(name, seed=seed, key="tune.sampler", **dict(options or {}))
    except ValueError as e:
        raise TuneError(str(e)) from None


# --------------------------------------------------------------------------------------------
# Trials
# --------------------------------------------------------------------------------------------


def fail_dead_trials(study, retry) -> list[int]:
    """Mark failed, and queue for retry, the running trials of this machine whose process no
    longer exists (killed). Trials of other machines are left to the storage's heartbeat."""
    host = socket.gethostname()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w = t.user_attrs.get("worker") or {}
        # a retry starts with its killed original's attributes: "trial" tells them apart
        if w.get("trial") != t.number or w.get("host") != host or pid_alive(int(w["pid"])):
            continue
        try:
            study.tell(t.number, state=TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another worker got there first
        retry(study, t)
        failed.append(t.number)
    return failed


def _frozen(study, number: int):
    return next(t for t in study.get_trials(deepcopy=False) if t.number == number)


@dataclass
class Tuner:
    """The objective: one trial = one search in ``trials_dir``."""

    base: list[str]
    params: list[SweepParam]
    objectives: list[str]
    trials_dir: Path
    retry: Any
    n_trials: int

    def __call__(self, trial) -> list[float]:
        trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid(),
                                       "trial": trial.number})
        fail_dead_trials(trial.study, self.retry)  # a worker killed since this one started
        # Several workers share the study: MaxTrialsCallback stops each one after a trial
        # ends, so two that start together would both run the last one. A trial started
        # once the complete trials and those running ahead of it reach n_trials runs nothing.
        held = [t for t in trial.study.get_trials(deepcopy=False)
                if t.state == TrialState.COMPLETE
                or (t.state == TrialState.RUNNING and t.number < trial.number)]
        if len(held) >= self.n_trials:
            trial.study.stop()
            raise optuna.TrialPruned(f"tune.n_trials={self.n_trials} held by other workers")
        overrides = [p.suggest(trial) for p in self.params]
        run_dir = Path(trial.user_attrs.get("run_dir")
                       or self.trials_dir / f"{trial.number:04d}")
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("overrides", overrides)
        cfg = search_config([*self.base, *overrides])
        resumed = (run_dir / "archive.sqlite").exists()
        if resumed:
            cfg.resume = str(run_dir)
        log.info("trial %d: %s%s -> %s", trial.number, " ".join(overrides),
                 " (resuming its search)" if resumed else "", run_dir)
        t0 = time.perf_counter()
        try:
            out = run_search(cfg, run_dir)
        except KeyboardInterrupt:
            self.retry(trial.study, _frozen(trial.study, trial.number))  # resumed next time
            raise
        out["wall_time"] = time.perf_counter() - t0
        for k in ("hypervolume", "evaluations", "accuracy", "train_seconds", "wall_time"):
            trial.set_user_attr(k, float(out[k]))
        return [float(out[k]) for k in self.objectives]


def check_tune(t: DictConfig) -> None:
    """Raise :class:`TuneError` naming a bad ``tune.*`` value and the fix."""
    n = t.get("n_trials")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise TuneError(f"tune.n_trials must be a positive integer, got {n!r}; e.g. "
                        f"tune.n_trials=8")
    objectives = list(t.get("objectives") or [])
    bad = [o for o in objectives if o not in OBJECTIVES]
    if not objectives or bad or len(set(objectives)) != len(objectives):
        raise TuneError(f"tune.objectives must be distinct names from {list(OBJECTIVES)}, got "
                        f"{objectives}; e.g. tune.objectives=[hypervolume,wall_time]")
    for key in ("heartbeat_s", "show"):
        v = t.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise TuneError(f"tune.{key} must be a positive integer, got {v!r}")
    r = t.get("max_retries")
    if isinstance(r, bool) or not isinstance(r, int) or r < 0:
        raise TuneError(f"tune.max_retries must be an integer >= 0, got {r!r}")
    name = t.get("study_name")
    if not isinstance(name, str) or not name:
        raise TuneError(f"tune.study_name must be a non-empty string, got {name!r}")


def run_tune(overrides: list[str], run_dir: str | os.PathLike) -> dict:
    """Create or continue the study and run trials until ``tune.n_trials`` are complete;
    the plain function behind ``python -m nas.tune`` (``overrides`` as on its command line).

    Returns:
        ``study_name``, ``storage``, ``complete`` (number of complete trials) and ``best``
        (the best trials as dicts: number, values, params, run_dir).
    """
    run_dir = Path(run_dir)
    base = list(overrides)
    cfg = compose_config(base)
    t = cfg.tune
    check_tune(t)
    params = parse_params(OmegaConf.to_container(t.params, resolve=True) or {})
    check_search(without_tune(cfg))  # e.g. no space given
    check_params(base, params)
    objectives = list(t.objectives)
    directions = [OBJECTIVES[o][0] for o in objectives]
    sampler = make_sampler(t.sampler, t.get("seed"),
                           OmegaConf.to_container(t.sampler_options, resolve=True)
                           if t.get("sampler_options") else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=int(t.max_retries))
    run_dir.mkdir(parents=True, exist_ok=True)
    storage, where = open_storage(t.storage, run_dir, heartbeat_s=int(t.heartbeat_s),
                                  on_stale=retry)
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        study = optuna.create_study(storage=storage, study_name=t.study_name, sampler=sampler,
                                    directions=directions, load_if_exists=True)
    except ValueError as e:
        raise TuneError(f"study {t.study_name!r} in {where}: {_first_line(e)}; choose another "
                        f"tune.study_name") from None
    declared = {"objectives": objectives, "params": flatten_params(
        OmegaConf.to_container(t.params, resolve=True))}
    saved = study.user_attrs.get("tune")
    if saved is None:
        study.set_user_attr("tune", declared)
    elif saved != declared:
        raise TuneError(f"study {t.study_name!r} in {where} tunes {saved}, not {declared}; "
                        f"choose another tune.study_name for a different sweep")
    retried = fail_dead_trials(study, retry)
    if retried:
        log.info("trials %s were killed: marked failed, their searches will be resumed",
                 retried)
    n = int(t.n_trials)
    tuner = Tuner(base, params, objectives, run_dir / TRIALS_DIR, retry, n)
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if done < n:
        study.optimize(tuner, callbacks=[MaxTrialsCallback(n, states=(TrialState.COMPLETE,))],
                       catch=(SearchError,), gc_after_trial=True)
    else:
        log.info("study %r already holds %d complete trials (tune.n_trials=%d)",
                 t.study_name, done, n)
    best = best_trials(study, int(t.show))
    RunFolder(run_dir).write_csv("trials.csv", study.trials_dataframe())
    print_summary(study, best, objectives, where)
    return {"study_name": t.study_name, "storage": where, "best": best,
            "complete": len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))}


def best_trials(study, show: int) -> list[dict]:
    """The best complete trials: by value (one objective) or the Pareto front (several),
    at most ``show``."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return []
    if len(study.directions) == 1:
        sign = -1.0 if study.direction.name == "MAXIMIZE" else 1.0
        rows = sorted(done, key=lambda tr: (sign * tr.value, tr.number))
    else:
        rows = sorted(study.best_trials, key=lambda tr: (tr.values[0], tr.number))
        if study.directions[0].name == "MAXIMIZE":
            rows = rows[::-1]
    return [{"number": tr.number, "values": list(tr.values), "params": dict(tr.params),
             "run_dir": tr.user_attrs.get("run_dir")} for tr in rows[:show]]


def print_summary(study, best: list[dict], objectives: list[str], where: str) -> None:
    counts = {s: len(study.get_trials(deepcopy=False, states=(s,))) for s in TrialState}
    kind = "best trials" if len(objectives) == 1 else "Pareto-optimal trials"
    t = Table(title=f"Study {study.study_name}: {kind} ({counts[TrialState.COMPLETE]} "
                    f"complete, {counts[TrialState.FAIL]} failed)")
    keys = sorted({k for b in best for k in b["params"]})
    for col in ["trial", *objectives, *keys, "search folder"]:
        t.add_column(col, overflow="fold")
    for b in best:
        vals = [f"{v:.4f}" if math.isfinite(v) and abs(v) < 1e4 else f"{v:.4g}"
                for v in b["values"]]
        ps = [_fmt(b["params"].get(k)) for k in keys]
        t.add_row(str(b["number"]), *vals, *ps, str(b["run_dir"]))
    con = Console(file=sys.stdout, width=160)
    con.print(t)
    pending = counts[TrialState.RUNNING] + counts[TrialState.WAITING]
    if pending:
        con.print(f"{counts[TrialState.RUNNING]} running, {counts[TrialState.WAITING]} waiting "
                  f"(other workers, or killed trials queued for a retry)")
    con.print(f"storage: {where}")
    con.print(f"dashboard: optuna-dashboard {where}")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def check(cfg: DictConfig) -> None:
    """What ``python -m nas.tune`` checks before its first file: every key, the ``tune``
    section and the search configuration each trial builds on."""
    check_keys(cfg, "tune")
    check_tune(cfg.tune)
    check_search(without_tune(cfg))


def task(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> Any:
    """One ``python -m nas.tune`` job (Hydra has composed and checked ``cfg``)."""
    return run_tune(overrides, run_dir)
