"""The search: a space searched for the accuracy-versus-cost Pareto front (the command is
:mod:`nas.commands.search`). The package: :mod:`~nas.search.scheduler` (the loop),
:mod:`~nas.search.outputs` (what it writes), :mod:`~nas.search.settings` (its config).

A run folder holds everything that must survive a crash: ``config.yaml`` (resolved),
``archive.sqlite`` (every evaluated architecture, written as each one finishes),
``state.pkl`` (the algorithm between iterations, random generators included) and
``status.json``. From these it writes ``evaluated.csv``, ``pareto.csv``, ``baselines.csv``,
``hypervolume.csv``, ``surrogate.csv``, ``pareto.png`` and ``pareto.html``.

Evaluation is asynchronous: the evaluator's slots (one per core or GPU by default) are kept
busy. Once the initial sample steers the algorithm, a slot's worth of candidates waits in the
queue; a freed slot starts one before the result is looked at, and whenever the queue runs
empty the algorithm is asked for a slot's worth more while every slot trains, knowing which
architectures are still training or queued (``Context.pending``). With ``reproducible:
true`` (the default) every such ask sees exactly the results of all proposals but the last
two slots' worth, in the order proposed, whichever finished first, so a seed gives the same
search on every run; an ask whose results are not all in yet waits for them. Generational comparators
(``nsga2``, ``optuna``) are asked for a whole generation once the previous one is told; with
a single slot every algorithm is asked for ``budget.per_iteration`` at a time, as nothing
runs while it thinks.

Resume: every ask is saved (``state.pkl``: the algorithm after the ask, random generators
included, and the proposals in order) before its architectures are queued, and every result
is archived the moment it arrives; on resume the proposals without a result are queued
again first, batches whose results all arrived are told, and the search goes on. Nothing is
lost or trained twice, and with one slot (``evaluator=local``) the archive equals that of an
uninterrupted run.

``fidelity=sha`` trains by asynchronous successive halving (ASHA, Li et al. 2020): every
architecture first trains ``fidelity.rungs[0]`` epochs of a schedule that spans the last
rung; whenever a rung's results allow, the best ``1/eta`` of them (by Pareto rank, then error,
as multi-objective ASHA ranks, Schmucker et al. 2021) continue from their checkpoint to the
next rung. Each rung is an archive row; the CSVs and fronts hold each architecture's highest
rung, with its ``epochs``.
"""

from __future__ import annotations

import importlib
from typing import Any

#: what the package exports, and the module each comes from; loaded on first use, so that
#: ``python -m nas.search`` checks a command line before the search stack (torch,
#: Lightning, scikit-learn) is imported
_EXPORTS = {
    "SearchOutputs": "nas.search.outputs",
    "Search": "nas.search.scheduler",
    **{name: "nas.search.settings" for name in (
        "FIDELITIES", "SearchError", "SearchInterrupted", "fidelity_of", "fidelity_rungs",
        "min_evaluated", "show_value")},
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'nas.search' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
