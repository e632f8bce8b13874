"""Tests for nas.surrogate: ranking quality, adaptive switching, determinism, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from nas.surrogate import (
    BASE_SURROGATES,
    MIN_POINTS,
    SURROGATES,
    AdaptiveSurrogate,
    NotEnoughDataError,
    RBFSurrogate,
    cross_val_metrics,
    make_surrogate,
    rank_metrics,
)


def ranking_problem(
    n: int, *, seed: int = 0, groups: int = 12, choices: int = 4, noise: float = 0.02
) -> tuple[np.ndarray, np.ndarray]:
    """One-hot architectures (``groups`` decisions of ``choices`` options) and a noisy
    smooth function of an additive score, like error versus per-layer choices."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=groups * choices)
    picks = rng.integers(0, choices, size=(n, groups))
    X = np.zeros((n, groups * choices))
    X[np.arange(n)[:, None], np.arange(groups) * choices + picks] = 1.0
    z = X @ weights / math.sqrt(groups)
    y = np.tanh(z) + 0.3 * np.sin(2 * z) + noise * rng.normal(size=n)
    return X, y


@pytest.fixture(scope="module")
def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y = ranking_problem(350, seed=0)
    return X[:150], y[:150], X[150:], y[150:]


@pytest.fixture(scope="module")
def fitted_adaptive(split) -> AdaptiveSurrogate:
    X, y, _, _ = split
    return make_surrogate("adaptive", seed=0).fit(X, y)


# ----------------------------------------------------------------------------- quality


@pytest.mark.parametrize("name", SURROGATES)
def test_every_surrogate_ranks_held_out_architectures(name, split, fitted_adaptive):
    X, y, X_test, y_test = split
    model = fitted_adaptive if name == "adaptive" else make_surrogate(name, seed=0).fit(X, y)
    tau = rank_metrics(y_test, model.predict(X_test))["kendall_tau"]
    assert tau >= 0.5, f"{name}: held-out Kendall tau {tau:.3f} < 0.5"


def test_adaptive_picks_the_best_cross_validated_base(fitted_adaptive):
    model = fitted_adaptive
    assert model.chosen in BASE_SURROGATES
    assert set(model.cv_scores) == set(BASE_SURROGATES)
    for scores in model.cv_scores.values():
        assert set(scores) == {"kendall_tau", "spearman_rho", "rmse"}
        assert -1.0 <= scores["kendall_tau"] <= 1.0
    best = max(model.cv_scores, key=lambda c: model.cv_scores[c]["kendall_tau"])
    assert model.chosen == best
    assert "chosen=" in repr(model)


def test_adaptive_fits_a_realistic_archive():
    # n=200 evaluated architectures, d=200 one-hot features. How long the fit takes is
    # measured by benchmarks/bench_table.py --taus (CPU seconds per fit), not asserted here.
    X, y = ranking_problem(200, seed=3, groups=50, choices=4)
    model = make_surrogate("adaptive", seed=0).fit(X, y)
    assert model.chosen in BASE_SURROGATES
    pred = model.predict(X)
    assert pred.shape == (200,) and np.isfinite(pred).all()
    assert rank_metrics(y, pred)["kendall_tau"] > 0.5


def test_adaptive_on_a_tiny_archive_uses_the_fallback():
    X, y = ranking_problem(MIN_POINTS, seed=1)
    model = AdaptiveSurrogate(seed=0, fallback="gp").fit(X, y)
    assert model.chosen == "gp"
    assert all(math.isnan(s["kendall_tau"]) for s in model.cv_scores.values())
    assert model.predict(X).shape == (MIN_POINTS,)


def test_adaptive_leave_one_out_on_a_small_archive():
    X, y = ranking_problem(6, seed=2)  # folds = 5 -> some held-out folds have one point
    model = AdaptiveSurrogate(seed=0, candidates=("gp", "gbt")).fit(X, y)
    assert model.chosen in ("gp", "gbt")
    assert set(model.cv_scores) == {"gp", "gbt"}


@pytest.mark.parametrize("name", SURROGATES)
def test_predictions_are_deterministic_for_a_seed(name):
    X, y = ranking_problem(60, seed=4)
    first = make_surrogate(name, seed=7).fit(X, y).predict(X)
    second = make_surrogate(name, seed=7).fit(X, y).predict(X)
    np.testing.assert_array_equal(first, second)
    assert first.shape == (60,) and first.dtype == float


@pytest.mark.parametrize("seed", [0, 3])
def test_gp_on_noisy_targets_still_ranks_unseen_architectures(seed):
    # Noisy errors on few points: a length scale below the distance between architectures
    # would memorise the training points and predict one constant for every unseen one.
    X, y = ranking_problem(90, seed=seed, groups=40, choices=3, noise=0.3)
    model = make_surrogate("gp", seed=0).fit(X[:50], y[:50])
    pred = model.predict(X[50:])
    assert np.ptp(pred) > 0.1 * np.ptp(y)
    assert rank_metrics(y[50:], pred)["kendall_tau"] > 0.15


# ----------------------------------------------------------------------------- rbf


def test_rbf_averages_duplicate_rows():
    X, y = ranking_problem(40, seed=5)
    X_dup = np.vstack([X, X[:1]])
    y_dup = np.append(y, y[0] + 1.0)  # same architecture trained twice, different result
    model = RBFSurrogate(smoothing=0.0).fit(X_dup, y_dup)
    assert model.predict(X[:1])[0] == pytest.approx(y[0] + 0.5, abs=1e-6)


def test_rbf_switches_kernel_with_the_amount_of_data():
    X, y = ranking_problem(300, seed=6)
    small = RBFSurrogate().fit(X[:20], y[:20])
    assert (small.kernel_used_, small.degree_used_) == ("linear", 0)
    large = RBFSurrogate(kernel="cubic").fit(X, y)
    assert (large.kernel_used_, large.degree_used_) == ("cubic", 1)


def test_rbf_needs_three_distinct_architectures():
    X, y = ranking_problem(3, seed=7)
    X[2] = X[1]
    with pytest.raises(NotEnoughDataError, match="3 distinct architectures, got 2"):
        RBFSurrogate().fit(X, y)


# ----------------------------------------------------------------------------- errors


def test_unknown_surrogate_lists_the_names():
    with pytest.raises(ValueError, match="unknown surrogate 'xgb'.*rbf, gp, mlp, gbt, ridge, adaptive"):
        make_surrogate("xgb")


@pytest.mark.parametrize("name", SURROGATES)
def test_too_little_data_says_how_many_are_needed(name):
    X, y = ranking_problem(2, seed=8)
    with pytest.raises(ValueError, match="at least 3 evaluated architectures to fit, got 2"):
        make_surrogate(name).fit(X, y)


def test_failed_candidates_must_be_dropped_before_fitting():
    X, y = ranking_problem(10, seed=9)
    y[3] = np.nan
    with pytest.raises(ValueError, match="non-finite.*drop failed candidates"):
        make_surrogate("gp").fit(X, y)


def test_predict_checks_fit_and_width():
    X, y = ranking_problem(10, seed=10)
    model = make_surrogate("gbt")
    with pytest.raises(NotFittedError, match="call fit"):
        model.predict(X)
    model.fit(X, y)
    with pytest.raises(ValueError, match="X has 5 features but the surrogate was fitted on 48"):
        model.predict(X[:, :5])
    with pytest.raises(ValueError, match="2-D"):
        model.predict(X[0])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "rbf", "kernel": "gaussian"}, "unknown RBF kernel 'gaussian'"),
        ({"name": "gp", "nu": 3}, "nu must be one of"),
        ({"name": "adaptive", "candidates": ("gp", "svm")}, "must be base surrogates"),
        ({"name": "adaptive", "folds": 1}, "folds must be an int >= 2"),
        ({"name": "mlp", "seed": -1}, "seed must be a non-negative int"),
    ],
)
def test_bad_options_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_surrogate(**kwargs)


# ----------------------------------------------------------------------------- metrics


def test_rank_metrics_known_values():
    y = np.array([0.1, 0.2, 0.3, 0.4])
    assert rank_metrics(y, y) == {"kendall_tau": 1.0, "spearman_rho": 1.0, "rmse": 0.0}
    reversed_ = rank_metrics(y, y[::-1])
    assert reversed_["kendall_tau"] == pytest.approx(-1.0)
    assert reversed_["spearman_rho"] == pytest.approx(-1.0)
    # one swapped pair out of six: tau = (5 - 1) / 6
    assert rank_metrics(y, [0.1, 0.3, 0.2, 0.4])["kendall_tau"] == pytest.approx(4 / 6)
    assert rank_metrics(y, y + 0.1)["rmse"] == pytest.approx(0.1)


def test_rank_metrics_undefined_correlation_is_nan():
    out = rank_metrics([0.1, 0.2, 0.3], [0.5, 0.5, 0.5])
    assert math.isnan(out["kendall_tau"]) and math.isnan(out["spearman_rho"])
    assert out["rmse"] > 0
    with pytest.raises(ValueError, match="y_pred must be a 1-D array with 3 values"):
        rank_metrics([0.1, 0.2, 0.3], [0.1, 0.2])


def test_cross_val_metrics_mean_over_folds():
    X, y = ranking_problem(60, seed=11)
    out = cross_val_metrics(lambda: make_surrogate("gp", seed=0), X, y, folds=5, seed=0)
    assert set(out) == {"kendall_tau", "spearman_rho", "rmse"}
    assert out["kendall_tau"] > 0.3
    again = cross_val_metrics(lambda: make_surrogate("gp", seed=0), X, y, folds=5, seed=0)
    assert out == again
    with pytest.raises(ValueError, match=r"folds must be an int in \[2, n=60\], got 61"):
        cross_val_metrics(lambda: make_surrogate("gp"), X, y, folds=61)
