"""``surrogate``: NSGANetV2-style surrogate-assisted search (Lu et al. 2020). Each ask fits
a surrogate on every evaluated architecture, runs pymoo's NSGA-II for many cheap generations
on (predicted error, costs) (or, in a space small enough, scores every network), and
proposes a diverse handful from the predicted front."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
from pymoo.core.problem import Problem
from pymoo.optimize import minimize
from scipy.stats import norm

from nas import checks, pareto
from nas.algorithms.base import (
    Algorithm,
    Context,
    check_inputs,
    check_target,
    from_target,
    moo_algorithm,
    new_neighbours,
    objective_matrix,
    operators,
    sample_new,
    surrogate_inputs,
    to_target,
)
from nas.surrogate import make_surrogate, rank_metrics

log = logging.getLogger(__name__)

#: how the surrogate search picks a batch from the predicted objectives:
#: ``front``: the predicted Pareto front, spread along the cost axis (NSGANetV2);
#: ``improvement``: the highest probability of improving the evaluated front, under the
#: surrogate's out-of-sample residual spread (noise included), one pick at a time
#: ``hypervolume``: the batch of greatest expected hypervolume improvement (two objectives),
#: the expectation taken by Monte Carlo over errors drawn around the predictions with that
#: spread
ACQUISITIONS = ("front", "improvement", "hypervolume")

#: Monte Carlo draws of the candidates' errors for ``acquisition=hypervolume``
EHVI_SAMPLES = 32

#: the residual spread is the RMSE of the latest this many predictions made before training
SPREAD_WINDOW = 30


class SurrogateProblem(Problem):
    """Every objective of a genome, predicted (error, table metrics) or exact (costs), with
    optional inequality constraints g <= 0 (a thin adapter)."""

    def __init__(self, space, predict, ctx, constraint):
        super().__init__(n_var=space.n_var, n_obj=ctx.n_obj,
                         n_ieq_constr=1 if constraint else 0, xl=space.xl, xu=space.xu,
                         vtype=int)
        self.space, self.predict, self.ctx, self.constraint = space, predict, ctx, constraint

    def _evaluate(self, X, out, *args, **kwargs):
        X = X.astype(np.int64)
        out["F"] = objective_matrix(self.ctx, X, self.predict)
        if self.constraint:
            out["G"] = np.array([[self.constraint(x)] for x in X], dtype=float)


class SurrogateSearch(Algorithm):
    """NSGANetV2-style surrogate-assisted search (see the module docstring)."""

    name = "surrogate"

    def __init__(self, *, seed: int, surrogate: dict, generations: int = 30,
                 pop_size: int = 64, enumerate_limit: int = 20_000,
                 reselect_growth: float = 0.25, local_share: float = 0.0,
                 rank_with_archive: bool = True, acquisition: str = "front"):
        super().__init__(seed=seed)
        if acquisition not in ACQUISITIONS:
            raise ValueError(f"algorithm.acquisition must be one of {list(ACQUISITIONS)}, got "
                             f"{acquisition!r}; e.g. algorithm.acquisition=front")
        self.acquisition = acquisition
        generations = checks.integer("algorithm.generations", generations, lo=1)
        pop_size = checks.integer("algorithm.pop_size", pop_size, lo=4)
        # 0: never enumerate
        self.enumerate_limit = checks.integer("algorithm.enumerate_limit", enumerate_limit,
                                              lo=0)
        # 0: choose the adaptive surrogate every iteration
        self.reselect_growth = checks.number("algorithm.reselect_growth", reselect_growth,
                                             lo=0.0)
        self.local_share = checks.fraction("algorithm.local_share", local_share, zero=True)
        self.rank_with_archive = checks.boolean("algorithm.rank_with_archive",
                                                rank_with_archive)
        self._chosen: list[str] | None = None
        self._chosen_at = 0
        self.surrogate_cfg = dict(surrogate)
        self.inputs = check_inputs(self.surrogate_cfg.pop("inputs", "genes+costs"))
        # zero-cost proxy features: the search computes them (ctx.proxy_features)
        # (the names are checked with the search's config: nas.evaluate.proxies)
        features = self.surrogate_cfg.pop("features", None) or ()
        if isinstance(features, str):
            raise ValueError(f"surrogate.features={features!r} is invalid; pass a list, "
                             f"e.g. surrogate.features=[synflow,jacov]")
        self.features = tuple(features)
        self.surrogate_cfg.pop("proxy_cache", None)
        self.surrogate_cfg.pop("proxy_seed", None)
        self.target = check_target(self.surrogate_cfg.pop("target", "log"))
        self.generations = generations
        self.pop_size = pop_size
        self._pending_pred: dict[str, float] = {}  # arch id -> predicted error, until told
        self._told: list[tuple[float, float]] = []  # (true, predicted) error of told ones

    def fit(self, ctx: Context):
        """Fit one surrogate per predicted objective (error, table metrics) on the evaluated
        archive; returns ``predict(genomes) -> (n, n_predicted)`` and the log entry."""
        ok = ctx.F[:, 0] < 1.0
        cfg = dict(self.surrogate_cfg)
        name = cfg.pop("name", "adaptive")

        if self.features and ctx.proxy_features is None:
            raise ValueError(f"surrogate.features={list(self.features)} needs the search to "
                             f"compute zero-cost proxies (Context.proxy_features is None)")
        proxies = ctx.proxy_features if self.features else None

        def encode(G):
            return surrogate_inputs(ctx.space, G, self.inputs, ctx.info, proxies)

        EX = encode(ctx.X[ok])
        n_ok = int(ok.sum())
        # The adaptive model's choice is re-made by cross-validation when the archive has
        # grown by `reselect_growth` since the last choice; in between the chosen model is
        # refitted alone (its choice rarely changes between nearby archive sizes, and the
        # cross-validation of every candidate is most of an iteration's time).
        reuse = (name == "adaptive" and self._chosen is not None
                 and n_ok < self._chosen_at * (1.0 + self.reselect_growth))
        models = []
        for col in ctx.predicted_index:
            seed = int(self.rng.integers(2**31))
            if reuse:
                model = make_surrogate(self._chosen[len(models)], seed=seed)
            else:
                model = make_surrogate(name, seed=seed, **cfg)
            model.fit(EX, to_target(ctx.F[ok, col], self.target))
            models.append(model)
        if name == "adaptive" and not reuse:
            self._chosen = [m.chosen for m in models]
            self._chosen_at = n_ok
        first = models[0]
        entry = {"surrogate": getattr(first, "chosen", first.name), "train_size": n_ok}
        for k, v in (getattr(first, "cv_scores", {}) or {}).get(entry["surrogate"], {}).items():
            entry[f"cv_{k}"] = float(v)

        def predict(G):
            E = encode(np.asarray(G, dtype=np.int64))
            return np.column_stack([from_target(m.predict(E), self.target) for m in models])

        return predict, entry

    def candidates(self, ctx: Context, predict) -> tuple[np.ndarray, np.ndarray, Any]:
        """Genomes to choose from, their objectives (predicted where unknown) and constraint
        violations: every distinct architecture when the space can list them within
        ``enumerate_limit`` (the predicted front is then exact), else the final population of
        NSGA-II (NSGA-III beyond three objectives) run on the surrogate."""
        pool = ctx.space.all_canonical(limit=self.enumerate_limit) \
            if self.enumerate_limit else None
        if pool is not None:
            keep = np.array([ctx.is_new(g) for g in pool], bool)
            if ctx.constrained:
                keep &= np.array([ctx.feasible(tuple(int(v) for v in g)) for g in pool], bool)
            pool = pool[keep]
            return pool, objective_matrix(ctx, pool, predict), None
        constraint = ((lambda x: 0.0 if ctx.feasible(tuple(int(v) for v in x)) else 1.0)
                      if ctx.constrained else None)
        problem = SurrogateProblem(ctx.space, predict, ctx, constraint)
        # Seed the population with the evaluated non-dominated set plus random samples.
        front = ctx.X[pareto.non_dominated(ctx.F)] if len(ctx.X) else np.empty((0, ctx.space.n_var))
        init = [tuple(int(v) for v in g) for g in front][: self.pop_size // 2]
        init += [tuple(int(v) for v in g)
                 for g in ctx.space.sample(self.pop_size - len(init), self.rng)]
        algo = moo_algorithm(ctx.n_obj, self.pop_size, sampling=np.array(init, dtype=np.int64),
                             **operators(ctx.space, set()))
        res = minimize(problem, algo, ("n_gen", self.generations),
                       seed=int(self.rng.integers(2**31)), verbose=False)
        pop = res.pop if res.pop is not None else algo.pop
        return pop.get("X").astype(np.int64), pop.get("F"), pop.get("CV")

    def _against(self, ctx: Context) -> np.ndarray | None:
        return ctx.F if self.rank_with_archive else None

    def neighbours(self, ctx: Context, predict) -> tuple[np.ndarray, np.ndarray]:
        """The new, feasible one-gene neighbours of the evaluated front, with their
        objectives (predicted where unknown)."""
        front = pareto.non_dominated(ctx.F) if len(ctx.F) else np.empty(0, int)
        X = np.array(list(new_neighbours(ctx, front)),
                     dtype=np.int64).reshape(-1, ctx.space.n_var)
        return X, (objective_matrix(ctx, X, predict) if len(X) else np.empty((0, ctx.n_obj)))

    def ask(self, ctx: Context, n: int) -> list[tuple[int, ...]]:
        predict, entry = self.fit(ctx)
        chosen: list[tuple[int, ...]] = []
        n_local = int(round(self.local_share * n))
        if n_local:
            # Exploit: the predicted front of the evaluated front's neighbourhood (a local
            # search guided by the surrogate; networks near good ones are often good).
            NX, NF = self.neighbours(ctx, predict)
            chosen = select_diverse(ctx, NX, NF, None, n_local, against=self._against(ctx)) \
                if len(NX) else []
        ctx_g = dataclasses.replace(ctx, pending=ctx.pending | {ctx.space.arch_id(g)
                                                                for g in chosen})
        cand_X, cand_F, cv = self.candidates(ctx_g, predict)
        # Constant liar (Ginsbourger et al. 2010): architectures still training count as
        # evaluated at the surrogate's own prediction, so candidates they would dominate
        # wait, and new picks spread away from them.
        lies = None
        if ctx.pending_X is not None and len(ctx.pending_X):
            lies = objective_matrix(ctx, np.asarray(ctx.pending_X, np.int64), predict)
        against = self._against(ctx)
        if against is not None and lies is not None:
            against = np.vstack([against, lies])
        if self.acquisition == "front":
            chosen += select_diverse(ctx_g, cand_X, cand_F, cv, n - len(chosen),
                                     against=against, spread_from=lies)
        else:
            sigma = entry["residual_spread"] = self.residual_spread(ctx, entry)
            observed = ctx.F if lies is None else np.vstack([ctx.F, lies])
            if self.acquisition == "improvement":
                chosen += select_improvement(ctx_g, cand_X, cand_F, cv, n - len(chosen),
                                             observed=observed, sigma=sigma,
                                             target=self.target)
            else:
                chosen += select_ehvi(ctx_g, cand_X, cand_F, cv, n - len(chosen),
                                      observed=observed, sigma=sigma, target=self.target,
                                      rng=np.random.default_rng(int(self.rng.integers(2**31))))
        if len(chosen) < n:  # the predicted front ran dry: fill with new random samples
            ctx2 = dataclasses.replace(
                ctx, seen=ctx.seen | {ctx.space.arch_id(g) for g in chosen})
            chosen += sample_new(ctx2, n - len(chosen), self.rng)
        preds = predict(np.array(chosen, dtype=np.int64))[:, 0] if chosen else []
        self._pending_pred.update({ctx.space.arch_id(g): float(p)
                                   for g, p in zip(chosen, preds)})
        self.log.append(entry)
        return chosen

    def residual_spread(self, ctx: Context, entry: dict) -> float:
        """How far a new network's error may fall from its prediction, in the surrogate's
        target space: the RMSE of the latest ``SPREAD_WINDOW`` predictions made before their
        networks were evaluated (model error and the evaluations' own noise together);
        until five exist, the chosen model's cross-validated RMSE, else the spread of the
        evaluated errors themselves (the model is not trusted yet)."""
        told = getattr(self, "_told", [])[-SPREAD_WINDOW:]
        if len(told) >= 5:
            true, pred = (np.array(v) for v in zip(*told))
            return float(np.sqrt(np.mean(
                (to_target(true, self.target) - to_target(pred, self.target)) ** 2)))
        cv = entry.get("cv_rmse", float("nan"))
        if np.isfinite(cv) and cv > 0:
            return float(cv)
        ok = ctx.F[:, 0] < 1.0
        spread = float(np.std(to_target(ctx.F[ok, 0], self.target))) if ok.sum() > 1 else 0.0
        return spread if spread > 0 else 1.0

    #: held-out quality is measured on at least this many of the latest told predictions
    HELDOUT_WINDOW = 6

    def tell(self, ctx: Context, genomes, F) -> None:
        # Held-out quality: the surrogate's predictions, made before training, of the told
        # architectures (the latest HELDOUT_WINDOW of them when asks are smaller).
        if not hasattr(self, "_told"):  # a state pickled before asynchronous evaluation
            self._told = []
        for g, f in zip(genomes, F):
            p = self._pending_pred.pop(ctx.space.arch_id(g), None)
            if p is not None and f[0] < 1.0:
                self._told.append((float(f[0]), p))
        window = self._told[-max(self.HELDOUT_WINDOW, len(genomes)):]
        if self.log and len(window) >= 3:
            true, pred = (np.array(v) for v in zip(*window))
            m = rank_metrics(true, pred)
            self.log[-1].update({f"heldout_{k}": float(v) for k, v in m.items()})


def select_diverse(ctx: Context, X: np.ndarray, F: np.ndarray, cv, n: int,
                   against: np.ndarray | None = None,
                   spread_from: np.ndarray | None = None) -> list[tuple[int, ...]]:
    """Pick ``n`` new architectures from the predicted front, spread along the cost axis:
    candidates are taken front by front, and within a front at evenly spaced cost quantiles
    (NSGANetV2 picks a diverse subset of the predicted front in the same spirit).

    ``against``: the evaluated objectives; when given, the fronts are those of the
    candidates sorted together with the evaluated architectures, so a candidate predicted
    to be dominated by a trained network waits behind those predicted to be dominated only
    by other candidates (it spends no evaluation where the front is already known).

    ``spread_from``: objectives of architectures still training (predicted); when given,
    each front is sampled farthest-first from them instead of at cost quantiles, so an
    ask for one architecture while others train does not repeat their region."""
    keys, fresh = _fresh(ctx, X, cv)
    if not fresh.any():
        return []
    idx = np.flatnonzero(fresh)
    if against is not None and len(against):
        ranks = pareto.pareto_ranks(np.vstack([against, F[idx]]))[len(against):]
    else:
        ranks = pareto.pareto_ranks(F[idx])
    chosen: list[int] = []
    for r in np.unique(ranks):
        layer = idx[ranks == r]
        layer = layer[np.argsort(F[layer, 1], kind="stable")]
        need = n - len(chosen)
        if len(layer) <= need:
            chosen += list(layer)
        elif spread_from is not None and len(spread_from):
            chosen += list(layer[_farthest_points(F[layer], need, anchors=spread_from)])
        elif F.shape[1] == 2:
            pos = np.unique(np.round(np.linspace(0, len(layer) - 1, need)).astype(int))
            chosen += list(layer[pos])
        else:  # K > 2: farthest-point spread over the normalised objectives
            chosen += list(layer[_farthest_points(F[layer], need)])
        if len(chosen) >= n:
            break
    out, keys_out = [], set()
    for i in chosen[:n]:
        if keys[i] not in keys_out:
            keys_out.add(keys[i])
            out.append(tuple(int(v) for v in X[i]))
    return out


def select_improvement(ctx: Context, X: np.ndarray, F: np.ndarray, cv, n: int, *,
                       observed: np.ndarray, sigma: float,
                       target: str = "log") -> list[tuple[int, ...]]:
    """Pick ``n`` new architectures, each the one most likely to improve the front.

    A candidate improves the front when its error falls below the least error of every
    evaluated architecture that costs no more on each other objective (``observed``, error
    in column 0). Its error is taken as normal around the prediction (``F[:, 0]``) in the
    surrogate's target space, with standard deviation ``sigma`` (the out-of-sample residual
    spread), so the probability is ``Phi((t(e*) - t(mu)) / sigma)``: it weighs a margin by
    how far predictions miss, and on noisy evaluations it favours networks whose draw can
    beat a lucky one. Batches are built one pick at a time (kriging believer, Ginsbourger et
    al. 2010): a pick joins ``observed`` at its prediction before the next is chosen, so
    picks that would merely repeat it lose their margin. Ties (candidates that no evaluated
    architecture dominates on cost) go to the lower predicted error."""
    idx, C, A = _candidates_and_observed(ctx, X, F, cv, observed)
    if not len(idx) or n <= 0:
        return []

    def best_below(rows: np.ndarray) -> np.ndarray:
        """Least error of ``rows`` costing no more than each candidate (inf if none)."""
        if not len(rows):
            return np.full(len(C), np.inf)
        covers = np.all(rows[None, :, 1:] <= C[:, None, 1:], axis=2)
        return np.where(covers, rows[None, :, 0], np.inf).min(axis=1)

    e_star = best_below(A)
    mu = to_target(np.clip(C[:, 0], 1e-12, None), target)
    sigma = max(float(sigma), 1e-9)
    out, taken = [], np.zeros(len(C), bool)
    while len(out) < n and not taken.all():
        finite = np.isfinite(e_star)
        z = np.full(len(C), np.inf)
        z[finite] = (to_target(np.clip(e_star[finite], 1e-12, None), target)
                     - mu[finite]) / sigma
        prob = norm.cdf(z)
        prob[taken] = -1.0
        order = np.lexsort((C[:, 0], -prob))
        i = int(order[0])
        taken[i] = True
        out.append(tuple(int(v) for v in X[idx[i]]))
        e_star = np.minimum(e_star, best_below(C[i:i + 1]))
    return out


def select_ehvi(ctx: Context, X: np.ndarray, F: np.ndarray, cv, n: int, *,
                observed: np.ndarray, sigma: float, target: str = "log",
                rng: np.random.Generator,
                samples: int = EHVI_SAMPLES) -> list[tuple[int, ...]]:
    """Pick ``n`` new architectures greedily by expected hypervolume improvement (q-EHVI by
    sequential greedy Monte Carlo, as Daulton et al. 2020), for two objectives: the error
    (predicted, column 0) and one exact cost (column 1).

    Each candidate's error is drawn ``samples`` times around its prediction, normal in the
    surrogate's target space with standard deviation ``sigma`` (the out-of-sample residual
    spread: model error and evaluation noise). In every draw, a candidate's improvement is
    the area (objectives min-max scaled over the evaluated and candidate points, reference
    point 1.1) that it dominates and the evaluated front does not; a pick joins that draw's
    front with its own drawn error before the next pick. With a small spread this is the
    predicted front, spread along the cost axis; with a large one, networks predicted just
    behind the front are tried several times over, as a noisy evaluation's lucky draws make
    the front."""
    if F.shape[1] != 2:
        raise ValueError(f"algorithm.acquisition=hypervolume needs two objectives (error and "
                         f"one cost), got {F.shape[1]}; use algorithm.acquisition=front")
    idx, C, A = _candidates_and_observed(ctx, X, F, cv, observed)
    if not len(idx) or n <= 0:
        return []
    mu = to_target(np.clip(C[:, 0], 1e-12, None), target)
    draws = from_target(mu[None, :] + max(float(sigma), 0.0)
                        * rng.standard_normal((samples, len(C))), target)
    both = np.vstack([A, C])
    lo = both.min(axis=0)
    span = np.where(np.ptp(both, axis=0) > 0, np.ptp(both, axis=0), 1.0)
    cost = (C[:, 1] - lo[1]) / span[1]
    E = np.clip((draws - lo[0]) / span[0], None, 1.1)
    base = (A - lo) / span
    fronts = [base[pareto.non_dominated(base)] if len(base) else base
              for _ in range(samples)]
    out: list[tuple[int, ...]] = []
    taken = np.zeros(len(C), bool)
    while len(out) < n and not taken.all():
        gain = np.zeros(len(C))
        for s in range(samples):
            gain += _exclusive_area(fronts[s], cost, E[s])
        gain[taken] = -1.0
        # ties (no gain anywhere) go to the lower predicted error
        i = int(np.lexsort((C[:, 0], -gain))[0])
        taken[i] = True
        out.append(tuple(int(v) for v in X[idx[i]]))
        for s in range(samples):
            P = np.vstack([fronts[s], [[E[s, i], cost[i]]]])
            fronts[s] = P[pareto.non_dominated(P)]
    return out


def _exclusive_area(front: np.ndarray, cost: np.ndarray, error: np.ndarray,
                    ref: float = 1.1) -> np.ndarray:
    """For each point (``error[j]``, ``cost[j]``), the area it dominates within the
    reference box that ``front`` (rows (error, cost), non-dominated) does not. The front's
    attainment curve is a step function of cost: below its cheapest point the box's top,
    then each point's error up to the next point's cost."""
    order = np.argsort(front[:, 1], kind="stable") if len(front) else np.empty(0, int)
    fc, fe = front[order, 1], front[order, 0]
    starts = np.concatenate([[-np.inf], fc])  # step j spans [starts[j], ends[j])
    ends = np.concatenate([fc, [ref]])
    level = np.concatenate([[ref], fe])  # the attained error on that step
    lo = np.maximum(starts[None, :], cost[:, None])
    width = np.clip(np.minimum(ends[None, :], ref) - lo, 0.0, None)
    height = np.clip(np.minimum(level[None, :], ref) - error[:, None], 0.0, None)
    return (width * height).sum(axis=1)


def _candidates_and_observed(ctx: Context, X: np.ndarray, F: np.ndarray, cv,
                             observed: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the acquisitions that score candidates one by one: the rows of ``X`` to choose
    from (fresh, feasible, each network once, as NSGA-II's population may repeat one), their
    objectives, and the evaluated objectives that can be improved (failed evaluations, error
    1.0, improve nothing)."""
    keys, fresh = _fresh(ctx, X, cv)
    first: dict[str, int] = {}
    for i in np.flatnonzero(fresh):
        first.setdefault(keys[i], int(i))
    idx = np.array(sorted(first.values()), dtype=int)
    C = np.asarray(F, float)[idx].reshape(len(idx), -1)
    A = np.asarray(observed, float).reshape(-1, C.shape[1])
    return idx, C, A[A[:, 0] < 1.0]


def _fresh(ctx: Context, X: np.ndarray, cv) -> tuple[list[str], np.ndarray]:
    """Each candidate's arch id, and which are feasible (``cv`` <= 0, or no ``cv``), not
    evaluated and not being evaluated."""
    feas = np.ones(len(X), bool) if cv is None else (cv.reshape(-1) <= 0)
    keys = [ctx.space.arch_id(x) for x in X]
    fresh = np.array([feas[i] and keys[i] not in ctx.seen and keys[i] not in ctx.pending
                      for i in range(len(X))], bool)
    return keys, fresh


def _farthest_points(F: np.ndarray, k: int, anchors: np.ndarray | None = None) -> np.ndarray:
    """Indices of ``k`` rows of ``F`` spread out: start at the lowest first objective (or,
    with ``anchors``, at the row farthest from them), then repeatedly the row farthest from
    those chosen (objectives min-max normalised over ``F`` and the anchors)."""
    both = F if anchors is None else np.vstack([F, anchors])
    lo, span = both.min(axis=0), np.ptp(both, axis=0)
    Z = (F - lo) / np.where(span > 0, span, 1.0)
    if anchors is not None and len(anchors):
        A = (np.asarray(anchors, float) - lo) / np.where(span > 0, span, 1.0)
        dist = np.min(np.linalg.norm(Z[:, None, :] - A[None, :, :], axis=2), axis=1)
        chosen = [int(np.argmax(dist))]
        dist = np.minimum(dist, np.linalg.norm(Z - Z[chosen[0]], axis=1))
    else:
        chosen = [int(np.argmin(F[:, 0]))]
        dist = np.linalg.norm(Z - Z[chosen[0]], axis=1)
    while len(chosen) < k:
        i = int(np.argmax(dist))
        chosen.append(i)
        dist = np.minimum(dist, np.linalg.norm(Z - Z[i], axis=1))
    return np.array(chosen)
