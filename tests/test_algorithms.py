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
    assert set(CONFIGS) == set(ALGORITHMS)


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


@pytest.fixture(scope="module", params=list(SPACES))
def problem(request) -> Synthetic:
    return Synthetic(request.param)


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


@pytest.mark.parametrize("sampler", ["nsga2", "nsga3", "tpe", "gp"])
def test_optuna_state_is_plain_data_and_resumes_between_ask_and_tell(sampler, problem):
    """The search saves its state after an ask and before the tell. The optuna comparator's
    saved state references no Optuna class (what a library's objects hold internally changes
    between releases: Optuna 5.1's NSGA-II sampler holds a lock), and a comparator restored
    from it, told the same results, proposes what the live one proposes."""
    import pickletools

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
