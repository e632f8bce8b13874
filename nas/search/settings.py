"""A search's settings read from its config: the errors it raises, successive halving's
schedule, what the algorithm needs before its first ask, the fidelity of its results."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from nas.surrogate import MIN_POINTS

#: fidelity.kind values
FIDELITIES = ("fixed", "sha")


class SearchError(ValueError):
    """A configuration or run-folder problem, reported as one clear line."""


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C: the run folder is consistent (status ``interrupted``); the message says how
    to continue."""


def min_evaluated(cfg: DictConfig) -> int:
    """Successful evaluations the configured algorithm needs before its first ``ask``."""
    return MIN_POINTS if (cfg.get("algorithm") or {}).get("name") == "surrogate" else 0


def fidelity_rungs(cfg: DictConfig) -> tuple[list[int] | None, float]:
    """``(rungs, eta)`` of ``fidelity=sha`` (epochs per rung, increasing; reduction
    factor), or ``(None, 0)`` for fixed fidelity; SearchError naming the fix otherwise."""
    f = cfg.get("fidelity") or {}
    kind = f.get("kind", "fixed")
    if kind not in FIDELITIES:
        raise SearchError(f"fidelity.kind={kind!r} is invalid; use fidelity=fixed or "
                          f"fidelity=sha")
    if kind == "fixed":
        return None, 0.0
    rungs, eta = f.get("rungs"), f.get("eta")
    ok = (rungs is not None and not isinstance(rungs, str) and len(rungs) >= 2
          and all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in rungs)
          and all(a < b for a, b in zip(rungs, list(rungs)[1:])))
    if not ok:
        raise SearchError(f"fidelity.rungs={show_value(rungs)} is invalid: give two or more epoch "
                          f"counts in increasing order, e.g. fidelity.rungs=[1,3,9]")
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not eta > 1:
        raise SearchError(f"fidelity.eta={eta!r} is invalid: the reduction factor must be a "
                          f"number > 1, e.g. fidelity.eta=3")
    return [int(r) for r in rungs], float(eta)


def show_value(v: Any) -> str:
    try:
        v = OmegaConf.to_container(v) if OmegaConf.is_config(v) else v
    except ValueError:
        pass
    return str(v).replace(" ", "") if isinstance(v, list) else repr(v)


def fidelity_of(cfg: DictConfig) -> dict:
    """What every result of a training search was measured with, for the archive (for
    zero-cost scores: the proxy, its combination, batch, reference sample, seed and, where
    not the default, the initial weights)."""
    ev = OmegaConf.to_container(cfg.evaluator, resolve=True)
    if ev.get("backend") == "zero_cost":
        keys = ("proxy", "combine", "batch", "reference", "seed")
        init = ev.get("init") or "kaiming"  # absent from archives written before the option
        return {"data": cfg.data.get("name"), "evaluator": "zero_cost",
                **{k: ev.get(k) for k in keys if ev.get(k) is not None},
                **({"init": init} if init != "kaiming" else {})}
    t = OmegaConf.to_container(cfg.train, resolve=True)
    keys = ("epochs", "batch_size", "train_fraction", "val_fraction", "optimizer", "lr",
            "limit_train_batches")
    return {"data": cfg.data.get("name"), **{k: t.get(k) for k in keys if k in t}}


__all__ = ["FIDELITIES", "SearchError", "SearchInterrupted", "fidelity_of", "fidelity_rungs",
           "min_evaluated", "show_value"]
