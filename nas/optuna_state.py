"""An Optuna study and its sampler as plain data, so a search's saved state survives releases.

Optuna's sampler objects are not a storage format: what they hold changes between releases
(Optuna 5.1's NSGA-II sampler holds a thread lock and cannot be pickled at all). What a
search must keep to propose again exactly what it would have proposed is smaller and stable:

* every trial as Optuna's storages keep it (state, parameters with their distributions as
  JSON, objective values, system and user attributes: generations, parents and constraint
  values live there), and the study's system attributes;
* the state of every random generator the sampler draws from (numpy's documented,
  release-independent state dicts).

:func:`snapshot` turns a study and its sampler into that (JSON-compatible) dict and
:func:`restore` rebuilds both from it with a freshly made sampler. A caller that rebuilds
the study from its snapshot before every batch of asks (as ``OptunaSearch`` does) drops the
caches some samplers keep between asks (the GP sampler's kernel parameters, a warm start),
so a live search and one resumed from the snapshot run the same code on the same data.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import numpy as np
import optuna
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)

#: bumped when the layout of a snapshot changes
FORMAT = 1


def _generators(sampler: Any) -> list:
    """The random generators reachable from ``sampler``'s attributes, in attribute order
    (each once). Only Optuna's own objects are walked."""
    found: list = []
    seen: set[int] = set()

    def walk(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, np.random.RandomState | np.random.Generator):
            found.append(obj)
            return
        if isinstance(obj, list | tuple):
            for v in obj:
                walk(v)
            return
        if isinstance(obj, dict):
            for v in obj.values():
                walk(v)
            return
        if type(obj).__module__.startswith("optuna") and hasattr(obj, "__dict__"):
            for v in vars(obj).values():
                walk(v)

    walk(sampler)
    return found


def _rng_state(g: np.random.RandomState | np.random.Generator) -> dict:
    if isinstance(g, np.random.RandomState):
        s = g.get_state(legacy=False)
        return {"kind": "RandomState", **s,
                "state": {"key": s["state"]["key"].tolist(), "pos": int(s["state"]["pos"])}}
    return {"kind": "Generator", "state": g.bit_generator.state}


def _set_rng_state(g: np.random.RandomState | np.random.Generator, s: dict) -> None:
    s = dict(s)
    kind = s.pop("kind")
    if kind == "RandomState":
        s["state"] = {"key": np.asarray(s["state"]["key"], np.uint32), "pos": s["state"]["pos"]}
        g.set_state(s)
    else:
        g.bit_generator.state = s["state"]


def _time(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _trial(t: FrozenTrial) -> dict:
    return {
        "state": t.state.name,
        "params": dict(t.params),
        "distributions": {k: distribution_to_json(d) for k, d in t.distributions.items()},
        "values": None if t.values is None else [float(v) for v in t.values],
        "intermediate_values": {str(k): float(v) for k, v in t.intermediate_values.items()},
        "system_attrs": dict(t.system_attrs),
        "user_attrs": dict(t.user_attrs),
        "datetime_start": _time(t.datetime_start),
        "datetime_complete": _time(t.datetime_complete),
    }


def _frozen(rec: dict) -> FrozenTrial:
    parse = dt.datetime.fromisoformat
    return FrozenTrial(
        number=0, trial_id=0,  # numbered by the storage in the order added
        state=TrialState[rec["state"]], value=None, values=rec["values"],
        datetime_start=None if rec["datetime_start"] is None else parse(rec["datetime_start"]),
        datetime_complete=(None if rec["datetime_complete"] is None
                           else parse(rec["datetime_complete"])),
        params=rec["params"],
        distributions={k: json_to_distribution(d) for k, d in rec["distributions"].items()},
        user_attrs=rec["user_attrs"], system_attrs=rec["system_attrs"],
        intermediate_values={int(k): v for k, v in rec["intermediate_values"].items()})


def snapshot(study: optuna.Study, sampler: Any) -> dict:
    """``study`` (its directions, trials, system attributes) and ``sampler``'s random
    generators as plain data (lists, dicts, numbers, strings)."""
    # the study's system attributes hold samplers' bookkeeping (e.g. the GA samplers' parent
    # population cache); Optuna offers them only through its storage
    attrs = study._storage.get_study_system_attrs(study._study_id)
    return {
        "format": FORMAT,
        "optuna": optuna.__version__,
        "directions": [d.name for d in study.directions],
        "system_attrs": dict(attrs),
        "trials": [_trial(t) for t in study.get_trials(deepcopy=False)],
        "rng": [_rng_state(g) for g in _generators(sampler)],
    }


def restore(snap: dict, sampler: Any) -> optuna.Study:
    """A new in-memory study holding ``snap``'s trials, driven by ``sampler`` (freshly made
    with the same settings) whose random generators are set to ``snap``'s."""
    if snap.get("format") != FORMAT:
        raise ValueError(f"Optuna state format {snap.get('format')!r} is not {FORMAT}; "
                         "this state was written by another version of nas")
    gens = _generators(sampler)
    if len(gens) == len(snap["rng"]):
        for g, s in zip(gens, snap["rng"]):
            _set_rng_state(g, s)
    if snap["optuna"] != optuna.__version__ or len(gens) != len(snap["rng"]):
        # the trials still carry the whole history; what may differ is how this release's
        # sampler draws from them
        log.warning("the search state was saved with Optuna %s, this is Optuna %s: the "
                    "sampler resumes from every trial, but its next proposals may differ "
                    "from those the saved run would have made", snap["optuna"],
                    optuna.__version__)
    study = optuna.create_study(
        directions=[optuna.study.StudyDirection[d] for d in snap["directions"]], sampler=sampler)
    for k, v in snap["system_attrs"].items():
        study._storage.set_study_system_attr(study._study_id, k, v)
    for rec in snap["trials"]:
        study.add_trial(_frozen(rec))
    return study


def running_trial(study: optuna.Study, number: int) -> optuna.trial.Trial:
    """The live handle (for ``set_constraint``) of the running trial numbered ``number``."""
    return optuna.trial.Trial(study, study.get_trials(deepcopy=False)[number]._trial_id)


__all__ = ["FORMAT", "restore", "running_trial", "snapshot"]
