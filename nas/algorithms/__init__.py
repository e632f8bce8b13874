"""Search algorithms behind one ask/tell interface.

* ``surrogate``: NSGANetV2-style (Lu et al. 2020). Each iteration fits a surrogate on every
  evaluated architecture, runs pymoo's NSGA-II for many cheap generations on (predicted
  error, cost), and proposes a diverse handful from the predicted front.
* ``nsga2``: pymoo's NSGA-II with every individual trained (no surrogate).
* ``optuna``: an Optuna sampler (NSGA-II, NSGA-III, Gaussian process or TPE; constraints as
  trial constraint values), every trial trained.
* ``random``: uniform samples of the space.
* ``evolution``: regularized (aging) evolution (Real et al. 2019), multi-objective tournaments.
* ``local``: Pareto local search over one-gene neighbourhoods (White et al. 2021).

An algorithm is asked for ``n`` genomes given the archive so far and told their objective
values (the lifecycle: :mod:`nas.algorithms.base`). Its whole state (including random
generators) is pickled by the search after each ask, so a resumed run asks exactly what
the interrupted one asked. One algorithm per module; :func:`make_algorithm` builds one by
name through :data:`nas.registry.ALGORITHMS`.
"""

from __future__ import annotations

from nas import registry
from nas.algorithms.base import (
    INPUTS,
    TARGETS,
    Algorithm,
    Context,
    check_inputs,
    check_target,
    from_target,
    sample_new,
    surrogate_inputs,
    to_target,
)
from nas.algorithms.evolution import RegularizedEvolution
from nas.algorithms.local_search import LocalSearch
from nas.algorithms.nsga2 import EvolutionNSGA2
from nas.algorithms.optuna_search import CONSTRAINT, OptunaSearch
from nas.algorithms.random_search import RandomSearch
from nas.algorithms.surrogate_search import SurrogateSearch, select_diverse

#: the algorithm names (``algorithm=NAME``)
ALGORITHMS = registry.ALGORITHMS.names()


def make_algorithm(cfg: dict, *, seed: int, surrogate: dict) -> Algorithm:
    """The algorithm ``cfg['name']`` names (:data:`ALGORITHMS`), with the rest of ``cfg`` as
    its options (checked by its constructor); the surrogate search also gets ``surrogate``,
    the ``surrogate`` config section."""
    cfg = dict(cfg)
    name = registry.ALGORITHMS.check(cfg.pop("name", None))
    if name == "surrogate":
        cfg["surrogate"] = surrogate
    return registry.ALGORITHMS.build(name, seed=seed, **cfg)


__all__ = ["ALGORITHMS", "CONSTRAINT", "INPUTS", "TARGETS", "Algorithm", "Context",
           "EvolutionNSGA2", "LocalSearch", "OptunaSearch", "RandomSearch",
           "RegularizedEvolution", "SurrogateSearch", "check_inputs", "check_target",
           "from_target", "make_algorithm", "sample_new", "select_diverse",
           "surrogate_inputs", "to_target"]
