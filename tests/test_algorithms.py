"""nas.algorithms: every search algorithm through `Context`, on a synthetic objective.

No network is trained: a candidate's error is a deterministic function of its genome and its
cost is the exact MAC count of its decoded network (the search's `Coster`), under a MAC
limit that half of the space breaks. The loop below drives an algorithm as `nas.search` does
(initial sample, then ask / tell per iteration, the context built from the archive as it
stood before the iteration) and checks what every algorithm must guarantee: proposals are
valid, canonical, feasible genomes of the space, new (not evaluated, not being evaluated,
not repeated in a batch), the same for the same seed, and the same after the algorithm is
pickled and restored mid-run (a resumed search proposes what the killed one would have).
"""

from __future__ import annotations

import functools
import math
import pickle
import zlib

import numpy as np
import pytest

from nas import registry
from nas.algorithms import ALGORITHMS, Context, make_algorithm
from nas.objectives import Coster

# Small settings of every algorithm (each trains nothing, so a run takes well under a second).
CONFIGS = {
    "surrogate": {"name": "surrogate", "generations": 3, "pop_size": 16},
    "surrogate-improvement": {"name": "surrogate", "generations": 3, "pop_size": 16,
                              "acquisition": "improvement"},
    "surrogate-hypervolume": {"name": "surrogate", "generations": 3, "pop_size": 16,
                              "acquisition": "hypervolume"},
    "nsga2": {"name": "nsga2"},
    "optuna": {"name": "optuna", "sampler": "nsga2", "population_size": 6},
    "random": {"name": "random"},
    "evolution": {"name": "evolution", "population": 8, "sample": 3},
    "local": {"name": "local"},
}
SURROGATE = {"name": "ridge"}
# mobile: an infinite-looking space (surrogate: NSGA-II on the model) whose canonical form
# zeroes the genes of skipped blocks; nb201: a finite space (surrogate: every network
# scored) whose canonical form maps genomes computing the same function to one (one stage of
# one cell: its 4,930 networks are costed in a fraction of the time the full ones take).
SPACES = {
    "mobile": {"resolutions": [12, 16], "width_mults": [0.25, 0.5]},
    "nb201": {"channels": [8], "cells": 1, "resolution": 8},
}
N_INITIAL, N_PER_ITERATION = 8, 4


def test_every_algorithm_is_covered():
    assert {c["name"] for c in CONFIGS.values()} == set(ALGORITHMS)


class Synthetic:
    """A space, its costs under a MAC limit, and an error that depends only on the genome."""

    def __init__(self, space: str):
        self.space = registry.SPACES.build(space, num_classes=10, in_channels=3, **SPACES[space])
        self.coster = Coster(self.space, ("macs",))
        sample = self.space.sample(200, np.random.default_rng(0))
        self.limit = float(np.median([self.coster.cost(g) for g in sample]))

    def feasible(self, genome) -> bool:
        return self.coster.cost(genome) <= self.limit

    def context(self, X: np.ndarray, F: np.ndarray, pending=()) -> Context:
        return Context(self.space, self.coster.cost, self.feasible, X, F,
                       {self.space.arch_id(x) for x in X}, True, self.coster.info,
                       objectives=("error", "macs"), costs=self.coster.costs,
                       pending=set(pending))

    def objectives(self, genomes) -> np.ndarray:
        rows = []
        for g in genomes:
            macs = self.coster.cost(g)
            noise = zlib.crc32(self.space.arch_id(g).encode())
            # Bigger networks err less; one in seven fails (error 1.0, costs still real).
            error = 1.0 if noise % 7 == 0 else \
                0.05 + 0.5 / (1.0 + math.log1p(macs) / 8) + 0.02 * (noise % 10) / 10
            rows.append([error, macs])
        return np.array(rows, dtype=float).reshape(len(genomes), 2)


@functools.cache
def synthetic(space: str) -> Synthetic:
    return Synthetic(space)


@pytest.fixture(scope="module", params=list(SPACES))
def problem(request) -> Synthetic:
    return synthetic(request.param)


class Loop:
    """The search loop's view of a run: the archive so far and the iteration number."""

    def __init__(self, problem: Synthetic):
        self.p = problem
        self.X = np.empty((0, problem.space.n_var), np.int64)
        self.F = np.empty((0, 2))
        self.iteration = 0

    def step(self, algo) -> list[tuple[int, ...]]:
        ctx = self.p.context(self.X, self.F)
        if self.iteration == 0:
            genomes = algo.initial(ctx, N_INITIAL)
        else:
            genomes = algo.ask(ctx, N_PER_ITERATION)
        check_proposals(self.p, ctx, genomes,
                        N_INITIAL if self.iteration == 0 else N_PER_ITERATION)
        F = self.p.objectives(genomes)
        algo.tell(ctx, genomes, F)
        self.X = np.vstack([self.X, np.array(genomes, dtype=np.int64)])
        self.F = np.vstack([self.F, F])
        self.iteration += 1
        return genomes

    def copy(self) -> Loop:
        other = Loop(self.p)
        other.X, other.F, other.iteration = self.X.copy(), self.F.copy(), self.iteration
        return other


def check_proposals(p: Synthetic, ctx: Context, genomes, n: int) -> None:
    sp = p.space
    assert len(genomes) == n
    ids = []
    for g in genomes:
        assert isinstance(g, tuple) and all(type(v) is int for v in g), g
        assert sp.validate(g) == g  # n_var integers within the genes' bounds
        assert tuple(sp.canonical(g)) == g  # the one genome of its network
        assert p.feasible(g), f"{g} breaks the MAC limit"
        ids.append(sp.arch_id(g))
    assert len(set(ids)) == len(ids), "a network proposed twice in one batch"
    assert not set(ids) & ctx.seen, "an evaluated network proposed again"
    assert not set(ids) & ctx.pending, "a network being evaluated proposed again"


def make(name: str, seed: int):
    return make_algorithm(CONFIGS[name], seed=seed, surrogate=SURROGATE)


def run(name: str, problem: Synthetic, seed: int, iterations: int) -> list:
    algo, loop = make(name, seed), Loop(problem)
    return [loop.step(algo) for _ in range(iterations)]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_proposals_are_valid_new_and_deterministic_per_seed(name, problem):
    first = run(name, problem, seed=3, iterations=4)
    assert run(name, problem, seed=3, iterations=4) == first
    assert run(name, problem, seed=4, iterations=4) != first


@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_pickled_algorithm_proposes_what_the_original_would(name, problem):
    algo, loop = make(name, seed=5), Loop(problem)
    for _ in range(2):
        loop.step(algo)
    restored, loop2 = pickle.loads(pickle.dumps(algo)), loop.copy()
    assert [loop2.step(restored) for _ in range(2)] == [loop.step(algo) for _ in range(2)]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_networks_being_evaluated_are_not_proposed(name, problem):
    algo, loop = make(name, seed=7), Loop(problem)
    for _ in range(2):
        loop.step(algo)
    state = pickle.dumps(algo)
    # What it would propose now; then the same algorithm asked while those are in flight.
    ctx = problem.context(loop.X, loop.F)
    busy = pickle.loads(state).ask(ctx, N_PER_ITERATION)
    ctx = problem.context(loop.X, loop.F, pending={problem.space.arch_id(g) for g in busy})
    again = pickle.loads(state).ask(ctx, N_PER_ITERATION)
    check_proposals(problem, ctx, again, N_PER_ITERATION)


# Optuna's GP sampler optimises its acquisition over every gene: on the mobile space one
# ask takes a minute, and what is saved does not depend on the space, so GP runs on nb201.
@pytest.mark.parametrize(("sampler", "space"),
                         [(s, sp) for s in ("nsga2", "nsga3", "tpe") for sp in SPACES]
                         + [("gp", "nb201")])
def test_optuna_state_is_plain_data_and_resumes_between_ask_and_tell(sampler, space):
    """The search saves its state after an ask and before the tell. The optuna comparator's
    saved state references no Optuna class (what a library's objects hold internally changes
    between releases: Optuna 5.1's NSGA-II sampler holds a lock), and a comparator restored
    from it, told the same results, proposes what the live one proposes."""
    import pickletools

    problem = synthetic(space)

    algo = make_algorithm({"name": "optuna", "sampler": sampler, "population_size": 6},
                          seed=2, surrogate=SURROGATE)
    loop = Loop(problem)
    loop.step(algo)
    ctx = problem.context(loop.X, loop.F)
    asked = algo.ask(ctx, 3)
    state = pickle.dumps(algo)
    modules = {arg.split()[0] for op, arg, _ in pickletools.genops(state)
               if op.name in ("GLOBAL", "INST")}
    modules |= {arg for op, arg, _ in pickletools.genops(state)
                if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE")
                and isinstance(arg, str) and arg.startswith("optuna.")}
    assert not any(m.startswith("optuna") for m in modules), modules
    restored = pickle.loads(state)
    F = problem.objectives(asked)
    for a in (algo, restored):
        a.tell(ctx, asked, F)
    X, F2 = np.vstack([loop.X, np.array(asked)]), np.vstack([loop.F, F])
    ctx = problem.context(X, F2)
    assert restored.ask(ctx, 2) == algo.ask(ctx, 2)

    def untimed(state):  # the same trials, attributes and generators (times differ)
        return {**state, "trials": [{k: v for k, v in t.items() if not k.startswith("datetime")}
                                    for t in state["trials"]]}

    assert untimed(restored._state) == untimed(algo._state)


class _Ids:
    """The part of a space select_improvement reads: one id per genome."""

    @staticmethod
    def arch_id(g) -> str:
        return "-".join(str(int(v)) for v in g)


def _improvement(X, F, observed, n, sigma=0.1, seen=(), pending=()):
    from types import SimpleNamespace

    from nas.algorithms.surrogate_search import select_improvement

    ctx = SimpleNamespace(space=_Ids(), seen=set(seen), pending=set(pending))
    return select_improvement(ctx, np.array(X), np.array(F, float), None, n,
                              observed=np.array(observed, float), sigma=sigma)


# The evaluated front: error 0.30 at cost 10, error 0.20 at cost 20.
OBSERVED = [[0.30, 10.0], [0.20, 20.0], [0.50, 15.0]]


def test_improvement_picks_the_largest_margin_over_the_front_at_its_cost():
    # Candidate (1,) at cost 12 is predicted 0.25 (below 0.30, the best costing <= 12);
    # (2,) at cost 25 is predicted 0.19, a smaller margin under 0.20 in log error.
    got = _improvement([[1], [2], [3]], [[0.25, 12], [0.19, 25], [0.40, 30]], OBSERVED, 1)
    assert got == [(1,)]
    # Cheaper than everything evaluated: nothing dominates it, it improves the front surely.
    got = _improvement([[1], [2]], [[0.25, 12], [0.90, 5]], OBSERVED, 1)
    assert got == [(2,)]


def test_improvement_batches_by_believing_each_pick():
    # Two near-copies at cost 12-13 and one smaller gain at cost 30. Believing the first
    # pick (0.22 at cost 12) leaves the copy at 0.225 unlikely to improve, so the second
    # pick is the network at cost 30, although its own margin is smaller than the copy's.
    X, F = [[1], [2], [3]], [[0.22, 12], [0.225, 13], [0.185, 30]]
    assert _improvement(X, F, OBSERVED, 1) == [(1,)]
    assert _improvement(X, F, OBSERVED, 2) == [(1,), (3,)]
    assert _improvement(X, F, OBSERVED, 3) == [(1,), (3,), (2,)]


def test_improvement_skips_evaluated_and_pending_networks_and_failed_rows():
    X, F = [[1], [2], [3]], [[0.22, 12], [0.225, 13], [0.185, 30]]
    assert _improvement(X, F, OBSERVED, 3, seen={"1"}, pending={"3"}) == [(2,)]
    # A failed evaluation (error 1.0) covers nothing: the front at cost 12 is still 0.30.
    assert _improvement([[1]], [[0.5, 12]], OBSERVED + [[1.0, 1.0]], 1) == [(1,)]


def test_residual_spread_is_the_rmse_of_predictions_made_before_evaluation():
    from nas.algorithms.surrogate_search import SurrogateSearch

    algo = SurrogateSearch(seed=0, surrogate={"name": "ridge"}, acquisition="improvement")
    ctx = Synthetic("nb201").context(np.empty((0, 1)), np.empty((0, 2)))
    # Fewer than five told predictions: the cross-validated RMSE of the chosen model.
    algo._told = [(0.2, 0.2)] * 4
    assert algo.residual_spread(ctx, {"cv_rmse": 0.07}) == pytest.approx(0.07)
    # Predictions made before evaluation: log-error residuals of exactly +-0.1.
    algo._told = [(0.2 * math.exp(0.1 * s), 0.2) for s in (1, -1, 1, -1, 1, -1)]
    assert algo.residual_spread(ctx, {"cv_rmse": 0.07}) == pytest.approx(0.1)


def test_an_unknown_acquisition_is_one_line_naming_the_choices():
    with pytest.raises(ValueError) as info:
        make_algorithm({**CONFIGS["surrogate"], "acquisition": "ei"}, seed=0,
                       surrogate=SURROGATE)
    msg = str(info.value)
    assert "\n" not in msg
    assert "algorithm.acquisition" in msg
    assert all(f"'{a}'" in msg for a in ("front", "improvement", "hypervolume"))


def _ehvi(X, F, observed, n, sigma, seed=0):
    from types import SimpleNamespace

    from nas.algorithms.surrogate_search import select_ehvi

    ctx = SimpleNamespace(space=_Ids(), seen=set(), pending=set())
    return select_ehvi(ctx, np.array(X), np.array(F, float), None, n,
                       observed=np.array(observed, float), sigma=sigma,
                       rng=np.random.default_rng(seed))


# Three near-copies just ahead of the front at cost 12-14, one network ahead at cost 25.
EHVI_X = [[1], [2], [3], [4]]
EHVI_F = [[0.28, 12], [0.281, 13], [0.282, 14], [0.19, 25]]
EHVI_OBSERVED = [[0.30, 10.0], [0.20, 20.0], [0.60, 1.0]]


def test_hypervolume_acquisition_spreads_when_predictions_are_sure():
    # Exact predictions: the copy at cost 13 adds nothing once the one at 12 is believed.
    assert _ehvi(EHVI_X, EHVI_F, EHVI_OBSERVED, 2, sigma=1e-6) == [(1,), (4,)]


def test_hypervolume_acquisition_retries_a_region_under_noise():
    # A spread of 5% in log error: any of the copies may draw the improvement, and the
    # region's expected gain beats the single network at cost 25.
    for seed in range(3):
        assert _ehvi(EHVI_X, EHVI_F, EHVI_OBSERVED, 2, sigma=0.05, seed=seed)[1] in {(2,), (3,)}
    assert _ehvi(EHVI_X, EHVI_F, EHVI_OBSERVED, 4, sigma=0.05, seed=1) == \
        _ehvi(EHVI_X, EHVI_F, EHVI_OBSERVED, 4, sigma=0.05, seed=1)


def test_hypervolume_acquisition_needs_two_objectives():
    with pytest.raises(ValueError, match=r"needs two objectives .* got 3; use "
                                         r"algorithm.acquisition=front"):
        _ehvi([[1]], [[0.2, 1.0, 2.0]], [[0.3, 1.0, 1.0]], 1, sigma=0.1)


def test_exclusive_area_against_a_hand_computed_staircase():
    from nas.algorithms.surrogate_search import _exclusive_area

    front = np.array([[0.5, 0.2], [0.3, 0.6]])  # (error, cost)
    # (0.4, 0.1) dominates [0.1, 1.1] x [0.4, 1.1] (0.7); the front covers [0.2, 1.1] x
    # [0.5, 1.1] (0.54) and [0.6, 1.1] x [0.4, 0.5] (0.05): 0.11 is its own.
    got = _exclusive_area(front, np.array([0.1, 0.7, 0.0]), np.array([0.4, 0.6, 1.2]))
    assert got == pytest.approx([0.11, 0.0, 0.0])
    assert _exclusive_area(np.empty((0, 2)), np.array([0.1]), np.array([0.1])) == \
        pytest.approx([1.0])


def test_acquisitions_take_each_network_once_when_the_candidates_repeat_it():
    # NSGA-II's final population (the candidates on a space too large to list) may hold
    # one network several times: a batch must still name it once.
    X, F = [[1], [1], [2]], [[0.5, 5.0], [0.5, 5.0], [0.9, 50.0]]
    observed = [[0.3, 10.0]]
    assert _ehvi(X, F, observed, 2, sigma=1e-6) == [(1,), (2,)]
    assert _improvement(X, F, observed, 2) == [(1,), (2,)]
