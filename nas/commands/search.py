"""``python -m nas.search``: the main job, a search for the accuracy-versus-cost front.

    python -m nas.search +space=mobile                      # digits, surrogate NSGA-II
    python -m nas.search +space=residual data=cifar10 data.root=/data/cifar10.tar.gz
    python -m nas.search +space=mobile algorithm=random     # a comparator
    python -m nas.search resume=runs/2026-11-21/10-00-00    # continue a killed run
    python -m nas.search --multirun +space=mobile,residual seed=0,1,2

:func:`run_search` is the plain function behind it (tests and ``nas.tune`` call it): it
checks the whole composed configuration (:func:`check`) before the run folder gets its
first file, then runs the :class:`nas.search.Search` scheduler and prints the summary.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from nas import checks
from nas.algorithms import check_inputs, check_target, make_algorithm
from nas.commands.schema import check_keys
from nas.cost import human
from nas.estimate import duration
from nas.evaluate import check_evaluator_options
from nas.evaluate.proxies import check_features
from nas.grade import GradeError, grade, write_grade
from nas.objectives import check_constraints, check_objectives, objectives_of
from nas.registry import space_presets
from nas.run import (
    ARCHIVE,
    CONFIG,
    RunFolder,
    RunFolderError,
    cleanup_hydra_dir,
    cost_label,
    open_resume,
    read_run,
)
from nas.search import (
    Search,
    SearchError,
    fidelity_rungs,
    min_evaluated,
    show_value,
)
from nas.supernet import adopt_checkpoint_space
from nas.table import TableError, analog_nasbench_file
from nas.train import TrainConfig

log = logging.getLogger("nas.search")


def check(cfg: DictConfig) -> None:
    """Raise :class:`SearchError` naming the bad key or value and the fix: the whole
    composed config (every key against the schema, every value), before anything is
    written or trained. A ``resume=`` command's own config is only checked for its keys:
    the run's saved config, with the overrides applied, is checked by :func:`run_search`."""
    try:
        check_keys(cfg, "search")
    except ValueError as e:
        raise SearchError(str(e)) from None
    if cfg.get("resume"):
        return
    if cfg.get("space") is None:
        raise SearchError(f"no search space given: add +space=NAME, NAME one of "
                          f"{', '.join(space_presets())} (conf/space/)")
    b = cfg.budget
    try:
        checks.integer("seed", cfg.get("seed"), lo=0, error=SearchError)
        for key in ("evaluations", "initial", "per_iteration"):
            checks.integer(f"budget.{key}", b.get(key), lo=1, error=SearchError)
        tables = (bool((cfg.get("costs") or {}).get("table"))
                  or (cfg.get("evaluator") or {}).get("backend") == "table")
        check_constraints(OmegaConf.to_container(cfg.constraints, resolve=True), later=tables)
        train = TrainConfig.from_any(cfg.train)
        check_evaluator_options(cfg.evaluator)
        check_inputs(cfg.surrogate.get("inputs", "genes+costs"))
        check_features(_plain_value(cfg.surrogate.get("features")))
        checks.integer("surrogate.proxy_seed", cfg.surrogate.get("proxy_seed", 0), lo=0,
                       error=SearchError)
        check_target(cfg.surrogate.get("target", "log"))
        # the algorithm's own options, checked by building it (nothing runs yet)
        make_algorithm(OmegaConf.to_container(cfg.algorithm, resolve=True), seed=0,
                       surrogate=OmegaConf.to_container(cfg.surrogate, resolve=True))
        objectives = objectives_of(cfg)
        check_objectives(objectives,
                         table=(cfg.get("evaluator") or {}).get("backend") == "table",
                         cost_table=bool((cfg.get("costs") or {}).get("table")))
        if cfg.algorithm.get("acquisition") == "hypervolume" and len(objectives) != 2:
            raise SearchError(f"algorithm.acquisition=hypervolume needs two objectives (error "
                              f"and one cost), got objectives={list(objectives)}; use "
                              f"algorithm.acquisition=front or improvement")
    except ValueError as e:
        raise SearchError(str(e)) from None
    if b.initial > b.evaluations:
        raise SearchError(f"budget.initial={b.initial} exceeds budget.evaluations="
                          f"{b.evaluations}; lower budget.initial or raise the budget")
    need = min_evaluated(cfg)
    if b.initial < need and b.evaluations > b.initial:
        raise SearchError(f"budget.initial={b.initial} is below the {need} evaluated "
                          f"architectures the {cfg.algorithm.get('name')!r} algorithm's "
                          f"surrogate needs to fit; pass budget.initial={need} or more")
    rungs, _ = fidelity_rungs(cfg)
    backend = (cfg.get("evaluator") or {}).get("backend")
    if rungs is not None and backend in ("table", "supernet", "zero_cost"):
        raise SearchError(f"fidelity=sha trains candidates rung by rung, but "
                          f"evaluator={backend} trains none; drop fidelity=sha (or use a "
                          f"training evaluator: local, pool, ray)")
    checks.integer("keep_weights", cfg.get("keep_weights", 0), lo=0, error=SearchError)
    if train.advice():
        log.warning(train.advice())


#: what a resumed run may change (the rest fixes what its archive and state mean)
RESUMABLE = ("budget", "evaluator", "train", "progress", "baselines.max_macs")


def apply_resume_overrides(saved: DictConfig, cfg: DictConfig, overrides: list[str]) -> list[str]:
    """Copy the command line's overrides (``key=value`` as Hydra records them) from the
    composed ``cfg`` into a resumed run's ``saved`` config: those under :data:`RESUMABLE`
    are applied (returned, for the log); any other must leave the run's value as it is
    (re-running the start command with ``resume=`` appended repeats them), and one that
    would change it is refused, naming the run's value and the new one."""
    applied = []
    for text in overrides:
        key = text.split("=", 1)[0].lstrip("+~")
        if key in ("resume", "") or key.startswith("hydra."):
            continue
        value = OmegaConf.select(cfg, key, default=None)
        if not any(key == r or key.startswith(r + ".") for r in RESUMABLE):
            old = OmegaConf.select(saved, key, default=None)
            if _plain_value(value) == _plain_value(old):
                continue  # the run's own value, as its start command gave it
            raise SearchError(f"{key} cannot change when a run is resumed (its archive and "
                              f"search state depend on it): the run has {key}="
                              f"{show_value(old)}, this command gives {show_value(value)}; resumable: "
                              f"{', '.join(k + '.*' if k in ('budget', 'evaluator', 'train') else k for k in RESUMABLE)}. "
                              f"Drop {text!r} to resume, or start a new run to change {key}")
        OmegaConf.update(saved, key, value, merge=False, force_add=True)
        applied.append(f"{key}={text.split('=', 1)[1] if '=' in text else value}")
    return applied


def _plain_value(v: Any) -> Any:
    """A config value as plain, resolved data (None where it cannot be resolved)."""
    if OmegaConf.is_config(v):
        try:
            return OmegaConf.to_container(v, resolve=True)
        except Exception:  # noqa: BLE001 - an unresolvable interpolation differs from any value
            return None
    return v


def print_summary(search: Search) -> None:
    """The front as a table, the hypervolume, estimated and actual time, the run folder."""
    pf = search.pareto_frame()
    ev = search.evaluated_frame()
    t = Table(title=f"Pareto front: {search.space.name}, {len(ev)} evaluated "
                    f"({(ev['status'] == 'failed').sum()} failed)")
    extra_costs = [c for c in ("activations", "latency_ms", *search.column_names)
                   if c in search.cost_cols or c in search.column_names]
    label = search.out.quality_label  # accuracy, or "score (synflow)": never both
    for col in ("rank", "source", "name", "MACs", "params", *map(cost_label, extra_costs), label,
                *search.metric_names, "spec"):
        t.add_column(col, overflow="fold")
    front = pf if len(pf) <= 40 else pf.head(40)
    for _, r in front.iterrows():
        value = (f"{r['accuracy']:.4f}" if label == "accuracy" else f"{r['score']:.4g}")
        t.add_row(str(r["rank"]), r["source"], str(r["name"]), human(r["macs"]),
                  human(r["params"]), *(f"{r[c]:.4g}" for c in extra_costs),
                  value, *(f"{r[m]:.4f}" for m in search.metric_names),
                  str(r["spec"])[:80] + ("..." if len(str(r["spec"])) > 80 else ""))
    con = Console(file=sys.stdout, width=160)
    con.print(t)
    if len(pf) > len(front):
        con.print(f"(first {len(front)} of {len(pf)} front rows; all in pareto.csv)")
    hv = search.hypervolume(ev)
    axes = " x ".join(o if r == 1.0 else f"{o}/{human(r)}" for o, r in
                      zip(search.objective_columns(), search.objective_refs()))
    con.print(f"hypervolume {hv:.4f} ({axes}, reference point 1 in each)")
    if search.bill is not None:
        ratio = search.wall_s / max(search.bill.total_s, 1e-9)
        con.print(f"time: estimated {duration(search.bill.total_s)}, took "
                  f"{duration(search.wall_s)} (actual / estimate = {ratio:.2f})")
    pf_ = search.proxy_features
    if pf_ is not None:
        con.print(f"surrogate features: {', '.join(pf_.proxies)} of {pf_.computed} networks "
                  f"computed in {duration(pf_.seconds)} (the rest read from {pf_.path})")
    run_dir = Path(search.run_dir).absolute()
    try:  # the path to type from here (the shell's directory), else the whole path
        run_dir = run_dir.relative_to(Path.cwd())
    except ValueError:
        pass
    con.print(f"run folder: {run_dir}")


def grade_at_end(search: Search, cfg: DictConfig) -> None:
    """Where a table of known accuracies covers the space (analog-nasbench, installed, for
    nb201) and the run did not read its accuracies from it: the grade
    (:func:`nas.grade.grade`) printed and written beside the rows (``true_accuracy``)."""
    if search.space.name != "nb201" or cfg.evaluator.get("backend") == "table":
        return
    try:
        analog_nasbench_file()
    except TableError:
        return  # not installed: `python -m nas.report RUN --grade --table PATH` later
    run = read_run(search.run_dir)
    try:
        graded = grade(run)
    except GradeError as e:
        log.warning("not graded: %s", e)
        return
    write_grade(run, graded)
    print("\n".join(graded.lines()))


def run_search(cfg: DictConfig, run_dir: str | os.PathLike,
               overrides: list[str] | None = None) -> dict:
    """Run (or resume, with ``cfg.resume``) a search; the plain function behind the CLI.

    ``overrides`` are the command line's ``key=value`` items: with ``resume`` those that a
    resumed run may change (:data:`RESUMABLE`) are applied to its saved config, any other
    is refused by name. One process works in a run folder at a time (:class:`RunLock`)."""
    run_dir = Path(run_dir)
    resumed, retry = bool(cfg.get("resume")), False
    if resumed:
        try:
            run_dir, saved = open_resume(cfg.resume)
        except RunFolderError as e:
            raise SearchError(str(e)) from None
        OmegaConf.set_struct(saved, False)
        applied = apply_resume_overrides(saved, cfg, list(overrides or []))
        if applied:
            log.warning("resumed with %s", " ".join(applied))
        retry = any(a.startswith(("train", "evaluator")) for a in applied)
        saved.resume = None
        cfg = saved
    elif (cfg.get("evaluator") or {}).get("backend") == "supernet" and cfg.get("space") \
            is not None and cfg.evaluator.get("checkpoint") not in (None, "???"):
        cfg = _space_of_checkpoint(cfg, list(overrides or []))
    check(cfg)
    folder = RunFolder(run_dir)
    try:
        with folder.lock():
            if not resumed and folder.file(ARCHIVE).exists():
                raise SearchError(f"{run_dir} already holds a search; resume it with "
                                  f"resume={run_dir} or choose another hydra.run.dir")
            folder.load_state()  # a corrupt state is named before anything trains
            # validates everything before a file is written
            search = Search(cfg, run_dir, retry_failed=retry)
            if resumed:
                # the changes a resume applied are the run's configuration from now on
                folder.write_config(cfg, version=False)
            elif not folder.file(CONFIG).exists():
                folder.write_config(cfg)
            try:
                out = search.run()
                if cfg.get("progress", True):
                    print_summary(search)
                    grade_at_end(search, cfg)
            finally:
                search.close()
            return out
    except RunFolderError as e:
        raise SearchError(str(e)) from None


def _space_of_checkpoint(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """``cfg`` with the space settings of its supernet checkpoint (evaluator=supernet)."""
    typed = {}
    for text in overrides:
        key = text.split("=", 1)[0].lstrip("+~")
        if key.startswith("space.") and key.count(".") == 1:
            typed[key[len("space."):]] = _plain_value(OmegaConf.select(cfg, key))
    try:
        space, taken = adopt_checkpoint_space(_plain_value(cfg.space), cfg.evaluator.checkpoint,
                                              typed)
    except ValueError as e:
        raise SearchError(str(e)) from None
    if taken:
        log.info("space settings from the supernet checkpoint: %s", " ".join(taken))
    cfg = cfg.copy()
    OmegaConf.set_struct(cfg, False)
    cfg.space = OmegaConf.create(space)
    return cfg


def task(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> float:
    """One search job of the command line (Hydra has composed and checked ``cfg``)."""
    try:
        return float(run_search(cfg, run_dir, overrides)["hypervolume"])
    finally:
        if cfg.get("resume"):  # the resumed folder holds the run, not this one
            cleanup_hydra_dir(run_dir)
