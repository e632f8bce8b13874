"""Accuracy predictors that screen candidate architectures (NSGANetV2 style).

A surrogate maps architecture features ``X`` (n, d) -- mostly one-hot columns from
``SearchSpace.features`` -- to a scalar ``y`` (error or accuracy) so that the search can rank
thousands of candidates without training them. Only the ranking matters, so surrogates are
judged by Kendall tau. ``adaptive`` follows NSGANetV2 (Lu et al., "NSGANetV2: Evolutionary
Multi-Objective Surrogate-Assisted Neural Architecture Search", ECCV 2020, Sec. 3.2):
on every fit it cross-validates each base model and keeps the one with the best tau.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sklearn
from scipy.interpolate import RBFInterpolator
from scipy.optimize import minimize
from scipy.stats import kendalltau, spearmanr
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from threadpoolctl import threadpool_limits

__all__ = [
    "BASE_SURROGATES",
    "MIN_POINTS",
    "SURROGATES",
    "AdaptiveSurrogate",
    "GBTSurrogate",
    "GPSurrogate",
    "MLPSurrogate",
    "NotEnoughDataError",
    "RBFSurrogate",
    "RidgeSurrogate",
    "Surrogate",
    "cross_val_metrics",
    "make_surrogate",
    "rank_metrics",
]

SURROGATES = ("rbf", "gp", "mlp", "gbt", "ridge", "adaptive")
BASE_SURROGATES = ("rbf", "gp", "mlp", "gbt", "ridge")
# Fewer than three points cannot rank anything (Kendall tau of two points is +-1 by chance).
MIN_POINTS = 3


class NotEnoughDataError(ValueError):
    """Raised by ``fit`` when there are too few (distinct) evaluated architectures."""


# --------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------


def _as_features(X: Any, *, what: str = "X") -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(
            f"{what} must be a 2-D array (n_architectures, n_features); got shape {X.shape}. "
            "Stack the feature vectors, e.g. np.stack([space.features(g) for g in genomes])."
        )
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{what} contains non-finite values; features must be finite numbers.")
    return X


def _as_targets(y: Any, *, n: int, what: str = "y") -> np.ndarray:
    y = np.asarray(y, dtype=float)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(
            f"{what} must be a 1-D array with {n} values (one per row of X); got shape {y.shape}."
        )
    bad = int(np.sum(~np.isfinite(y)))
    if bad:
        raise ValueError(
            f"{what} contains {bad} non-finite value(s); drop failed candidates "
            "(status 'failed', accuracy None) before fitting a surrogate."
        )
    return y


def _check_training_data(X: Any, y: Any, *, who: str) -> tuple[np.ndarray, np.ndarray]:
    X = _as_features(X)
    y = _as_targets(y, n=len(X))
    if len(y) < MIN_POINTS:
        raise NotEnoughDataError(
            f"the {who!r} surrogate needs at least {MIN_POINTS} evaluated architectures to fit, "
            f"got {len(y)}; evaluate more candidates (e.g. a larger initial sample) first."
        )
    return X, y


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    return int(seed)


# --------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------


class Surrogate(ABC):
    """Regressor from architecture features to error (or accuracy).

    Subclasses implement ``_fit`` and ``_predict``; this class validates inputs once.
    """

    name: str = "surrogate"

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = _check_seed(seed)
        self._n_features: int | None = None

    def fit(self, X: Any, y: Any) -> Surrogate:
        """Fit on ``X`` (n, d) and ``y`` (n,); needs ``n >= MIN_POINTS``. Returns self."""
        X, y = _check_training_data(X, y, who=self.name)
        self._n_features = None  # a failed refit must not leave a stale model usable
        # Archives are small (n ~ 10^2..10^3): multi-threaded BLAS only adds overhead, and on a
        # busy machine its spinning threads made a 200x200 Cholesky 400x slower (measured).
        # assume_finite: checked above; scikit-learn would re-check inside every sub-fit.
        with (
            threadpool_limits(limits=1, user_api="blas"),
            sklearn.config_context(assume_finite=True),
        ):
            self._fit(X, y)
        self._n_features = X.shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted ``y`` for each row of ``X``, shape (n,)."""
        if self._n_features is None:
            raise NotFittedError(
                f"the {self.name!r} surrogate is not fitted; call fit(X, y) first."
            )
        X = _as_features(X)
        if X.shape[1] != self._n_features:
            raise ValueError(
                f"X has {X.shape[1]} features but the surrogate was fitted on "
                f"{self._n_features}; use the same SearchSpace.features encoding."
            )
        with (
            threadpool_limits(limits=1, user_api="blas"),
            sklearn.config_context(assume_finite=True),
        ):
            return np.asarray(self._predict(X), dtype=float).reshape(-1)

    @abstractmethod
    def _fit(self, X: np.ndarray, y: np.ndarray) -> None: ...

    @abstractmethod
    def _predict(self, X: np.ndarray) -> np.ndarray: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed})"


class _EstimatorSurrogate(Surrogate):
    """A surrogate backed by one scikit-learn estimator built per fit."""

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self._model = self._estimator(n_samples=X.shape[0], n_features=X.shape[1]).fit(X, y)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self._model.predict(X)

    @abstractmethod
    def _estimator(self, *, n_samples: int, n_features: int) -> Any: ...


# --------------------------------------------------------------------------------------
# Base models
# --------------------------------------------------------------------------------------


class RBFSurrogate(Surrogate):
    """Radial-basis-function interpolant (scipy ``RBFInterpolator``) with light smoothing.

    Features are min-max scaled to [0, 1] so that numeric columns (resolution, width) do not
    swamp the one-hot ones; duplicate rows are merged by averaging their targets, since an
    interpolant cannot pass through two values at one point.

    ``thin_plate_spline`` and ``cubic`` are conditionally positive definite of order 2 and need
    a linear polynomial tail (``degree=1``) to be well posed (Fasshauer, "Meshfree
    Approximation Methods with MATLAB", 2007, ch. 8). One-hot columns are linearly dependent,
    so the tail is fitted in coordinates of the data's affine hull (SVD), which keeps every
    pairwise distance. When there are fewer than two distinct points per tail coefficient the
    tail merely interpolates the data by itself (measured: tau drops well below the
    fallback), so the model falls back to the ``linear`` kernel (order 1, ``degree=0``),
    which is well posed for any number of distinct points.
    """

    name = "rbf"
    KERNELS = ("thin_plate_spline", "cubic")

    def __init__(
        self, *, seed: int = 0, kernel: str = "thin_plate_spline", smoothing: float = 1e-3
    ) -> None:
        super().__init__(seed=seed)  # the interpolant is deterministic; seed kept for the API
        if kernel not in self.KERNELS:
            raise ValueError(f"unknown RBF kernel {kernel!r}; choose one of {self.KERNELS}.")
        if not (isinstance(smoothing, int | float) and smoothing >= 0):
            raise ValueError(f"smoothing must be a number >= 0, got {smoothing!r}.")
        self.kernel = kernel
        self.smoothing = float(smoothing)

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self._scaler = MinMaxScaler().fit(X)
        Z = self._scaler.transform(X)
        Z, inverse = np.unique(Z, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        y = np.bincount(inverse, weights=y) / np.bincount(inverse)
        if len(Z) < MIN_POINTS:
            raise NotEnoughDataError(
                f"the 'rbf' surrogate needs at least {MIN_POINTS} distinct architectures, got "
                f"{len(Z)} distinct among {len(X)} rows; evaluate more distinct candidates."
            )
        self._center = Z.mean(axis=0)
        _, s, vt = np.linalg.svd(Z - self._center, full_matrices=False)
        rank = int(np.sum(s > s[0] * max(Z.shape) * np.finfo(float).eps))
        if len(Z) >= 2 * (rank + 1):
            self._basis: np.ndarray | None = vt[:rank].T
            self.kernel_used_, self.degree_used_ = self.kernel, 1
        else:
            self._basis = None
            self.kernel_used_, self.degree_used_ = "linear", 0
        self._interp = RBFInterpolator(
            self._coords(Z),
            y,
            kernel=self.kernel_used_,
            degree=self.degree_used_,
            smoothing=self.smoothing,
        )

    def _coords(self, Z: np.ndarray) -> np.ndarray:
        return Z if self._basis is None else (Z - self._center) @ self._basis

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self._interp(self._coords(self._scaler.transform(X)))


def _short_lbfgs(
    obj_func: Callable, initial_theta: np.ndarray, bounds: np.ndarray
) -> tuple[np.ndarray, float]:
    """L-BFGS-B on the GP log-marginal likelihood, stopped early.

    scikit-learn's default optimiser runs to tight convergence (~40 evaluations); on our
    ranking problems the predicted order stopped changing well before (measured: the same
    tau to 0.001 on nine problems with 10 iterations, half the time); ranking is all we
    need.
    """
    result = minimize(
        obj_func,
        initial_theta,
        method="L-BFGS-B",
        jac=True,
        bounds=bounds,
        options={"maxiter": 10, "gtol": 1e-3},
    )
    return result.x, float(result.fun)


class GPSurrogate(_EstimatorSurrogate):
    """Gaussian process: Constant * Matern(nu) + White noise, targets normalised.

    Matern 5/2 is the usual default for response surfaces (Snoek et al., "Practical Bayesian
    Optimization of Machine Learning Algorithms", NeurIPS 2012). One isotropic length scale:
    with d ~ n, per-feature length scales would overfit and cost d gradient dimensions.
    """

    name = "gp"

    def __init__(self, *, seed: int = 0, nu: float = 2.5, n_restarts: int = 0) -> None:
        super().__init__(seed=seed)
        if nu not in (0.5, 1.5, 2.5, math.inf):
            raise ValueError(f"nu must be one of 0.5, 1.5, 2.5 or inf, got {nu!r}.")
        if not isinstance(n_restarts, int) or n_restarts < 0:
            raise ValueError(f"n_restarts must be an int >= 0, got {n_restarts!r}.")
        self.nu = nu
        self.n_restarts = n_restarts

    def _estimator(self, *, n_samples: int, n_features: int) -> Any:
        # After min-max scaling, two one-hot encodings differing in k choices are sqrt(2k)
        # apart, so sqrt(d) is a length scale of the right order to start from. The lower
        # bound sqrt(d)/4 matters on noisy targets: with (1e-2, ...) the likelihood often
        # collapsed to a length scale far below the distance between any two architectures,
        # where the GP memorises its points and predicts the constant mean everywhere else
        # (measured: 2 of 3 search-benchmark archives; held-out tau undefined, vs 0.42-0.58
        # with this bound, and no loss on noiseless problems).
        scale = math.sqrt(max(n_features, 1))
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(
            length_scale=scale, length_scale_bounds=(scale / 4, 1e4), nu=self.nu
        ) + WhiteKernel(1e-2, (1e-6, 1e1))
        gp = GaussianProcessRegressor(
            kernel,
            normalize_y=True,
            optimizer=_short_lbfgs,
            n_restarts_optimizer=self.n_restarts,
            random_state=self.seed,
        )
        return make_pipeline(MinMaxScaler(), gp)

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        # A hyperparameter at its bound (typically the noise floor on near-noiseless targets)
        # is expected here, not a failure; the warning would repeat on every adaptive fold.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            super()._fit(X, y)


class MLPSurrogate(_EstimatorSurrogate):
    """Multi-layer perceptron (scikit-learn; two hidden layers of 64 by default) on
    standardised features and targets."""

    name = "mlp"
    # Early stopping holds out 10 % for validation; below this many points that hurts more
    # than the overfitting it prevents.
    EARLY_STOPPING_MIN_N = 500

    def __init__(
        self,
        *,
        seed: int = 0,
        hidden_layer_sizes: Sequence[int] = (64, 64),
        alpha: float = 3.0,
        max_iter: int = 2000,
    ) -> None:
        super().__init__(seed=seed)
        sizes = tuple(hidden_layer_sizes)
        if not sizes or not all(isinstance(h, int) and h > 0 for h in sizes):
            raise ValueError(
                f"hidden_layer_sizes must be positive ints, got {hidden_layer_sizes!r}."
            )
        self.hidden_layer_sizes = sizes
        self.alpha = float(alpha)
        self.max_iter = int(max_iter)

    def _estimator(self, *, n_samples: int, n_features: int) -> Any:
        # Strong L2 (alpha=3), small batches and a large step: with n ~ d ~ 100s this was among
        # the best and the fastest of a small grid (alpha 0.3..3, lr 1e-3..1e-2, batch 32..n,
        # tol 1e-4..1e-3, patience 5..10).
        mlp = MLPRegressor(
            hidden_layer_sizes=self.hidden_layer_sizes,
            alpha=self.alpha,
            batch_size=min(64, n_samples),
            learning_rate_init=1e-2,
            max_iter=self.max_iter,
            tol=1e-3,
            n_iter_no_change=5,
            early_stopping=n_samples >= self.EARLY_STOPPING_MIN_N,
            random_state=self.seed,
        )
        return TransformedTargetRegressor(
            regressor=make_pipeline(StandardScaler(), mlp), transformer=StandardScaler()
        )


class GBTSurrogate(_EstimatorSurrogate):
    """Gradient-boosted shallow trees (scikit-learn ``GradientBoostingRegressor``)."""

    name = "gbt"

    def __init__(
        self,
        *,
        seed: int = 0,
        n_estimators: int = 150,
        max_depth: int = 2,
        learning_rate: float = 0.15,
    ) -> None:
        super().__init__(seed=seed)
        for key, value in (("n_estimators", n_estimators), ("max_depth", max_depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be an int >= 1, got {value!r}.")
        if not (isinstance(learning_rate, int | float) and 0 < learning_rate <= 1):
            raise ValueError(f"learning_rate must be in (0, 1], got {learning_rate!r}.")
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = float(learning_rate)

    def _estimator(self, *, n_samples: int, n_features: int) -> Any:
        # Row subsampling and sqrt(d) features per split: stochastic gradient boosting
        # (Friedman, 2002); also ~2x faster on wide one-hot inputs.
        return GradientBoostingRegressor(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            learning_rate=self.learning_rate,
            subsample=0.8,
            max_features="sqrt",
            random_state=self.seed,
        )

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        # Our constructor validated the options; scikit-learn would re-validate every one of
        # the n_estimators trees, which was ~40 % of the fit time on small archives.
        with sklearn.config_context(skip_parameter_validation=True):
            super()._fit(X, y)


class RidgeSurrogate(_EstimatorSurrogate):
    """Ridge regression, the penalty chosen by efficient leave-one-out (``RidgeCV``).

    On one-hot genes this is an additive model: one learned effect per choice of every gene.
    With few evaluations such a model extrapolates to unexplored regions of a space better
    than local models (White et al., "How Powerful are Performance Predictors in Neural
    Architecture Search?", NeurIPS 2021, find linear models competitive at small training
    sizes). Features are deliberately *not* rescaled: the one-hot and [0, 1] gene columns share
    one scale and the log-cost columns of ``genes+costs`` inputs (ranges of several units)
    are then penalised less, which makes them a lightly regularised global trend in capacity
    with per-choice corrections on top (measured on the search benchmark's archives: held-out
    tau 0.57 unscaled vs 0.51 min-max scaled and 0.34 standardised).
    """

    name = "ridge"
    ALPHAS = tuple(np.logspace(-2, 3, 21))

    def _estimator(self, *, n_samples: int, n_features: int) -> Any:
        return RidgeCV(alphas=self.ALPHAS)


class AdaptiveSurrogate(Surrogate):
    """NSGANetV2's adaptive switching: keep the base model with the best cross-validated tau.

    Each ``fit`` runs ``cross_val_metrics`` with ``min(folds, n)`` folds for every candidate,
    stores the results in ``cv_scores`` and refits the winner (``chosen``) on all data. Ties
    go to the earlier candidate. When no candidate can be scored -- the training folds would
    hold fewer than ``MIN_POINTS`` points, or every tau is undefined (constant ``y``) --
    ``fallback`` is used and the scores are NaN.
    """

    name = "adaptive"

    def __init__(
        self,
        *,
        seed: int = 0,
        candidates: Sequence[str] = BASE_SURROGATES,
        folds: int = 5,
        fallback: str = "gp",
    ) -> None:
        super().__init__(seed=seed)
        candidates = tuple(candidates)
        bad = [c for c in (*candidates, fallback) if c not in BASE_SURROGATES]
        if bad or not candidates:
            raise ValueError(
                f"adaptive candidates/fallback must be base surrogates {BASE_SURROGATES}, "
                f"got candidates={candidates!r}, fallback={fallback!r}."
            )
        if not isinstance(folds, int) or folds < 2:
            raise ValueError(f"folds must be an int >= 2, got {folds!r}.")
        self.candidates = candidates
        self.folds = folds
        self.fallback = fallback
        self.chosen: str | None = None
        self.cv_scores: dict[str, dict[str, float]] = {}

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        n = len(y)
        folds = min(self.folds, n)
        nan = {"kendall_tau": math.nan, "spearman_rho": math.nan, "rmse": math.nan}
        scores = {c: dict(nan) for c in self.candidates}
        if n - math.ceil(n / folds) >= MIN_POINTS:
            for c in self.candidates:
                try:
                    scores[c] = cross_val_metrics(
                        lambda c=c: make_surrogate(c, seed=self.seed),
                        X,
                        y,
                        folds=folds,
                        seed=self.seed,
                    )
                except NotEnoughDataError:
                    pass  # e.g. rbf on a fold with too few distinct rows: not a contender
        taus = {c: s["kendall_tau"] for c, s in scores.items() if not math.isnan(s["kendall_tau"])}
        chosen = max(taus, key=taus.__getitem__) if taus else self.fallback
        self._model = make_surrogate(chosen, seed=self.seed).fit(X, y)
        self.chosen, self.cv_scores = chosen, scores

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self._model.predict(X)

    def __repr__(self) -> str:
        return f"AdaptiveSurrogate(seed={self.seed}, chosen={self.chosen!r})"


_REGISTRY: dict[str, type[Surrogate]] = {
    "rbf": RBFSurrogate,
    "gp": GPSurrogate,
    "mlp": MLPSurrogate,
    "gbt": GBTSurrogate,
    "ridge": RidgeSurrogate,
    "adaptive": AdaptiveSurrogate,
}


def make_surrogate(name: str, *, seed: int = 0, **kwargs: Any) -> Surrogate:
    """Build an unfitted surrogate by name (one of ``SURROGATES``); kwargs go to its class."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown surrogate {name!r}; choose one of {', '.join(SURROGATES)}.")
    return _REGISTRY[name](seed=seed, **kwargs)


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------


def rank_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Kendall tau-b, Spearman rho and RMSE of predictions.

    A correlation is NaN when it is undefined: fewer than two points or a constant input.
    """
    y_true = np.asarray(y_true, dtype=float)
    if y_true.ndim != 1:
        raise ValueError(f"y_true must be a 1-D array, got shape {y_true.shape}.")
    y_true = _as_targets(y_true, n=len(y_true), what="y_true")
    y_pred = _as_targets(y_pred, n=len(y_true), what="y_pred")
    if len(y_true) == 0:
        raise ValueError("rank_metrics needs at least one (y_true, y_pred) pair, got none.")
    rmse = float(np.sqrt(np.mean((y_true - y_pred) ** 2)))
    # Checked here rather than left to scipy, which warns on constant input.
    if len(y_true) < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return {"kendall_tau": math.nan, "spearman_rho": math.nan, "rmse": rmse}
    return {
        "kendall_tau": float(kendalltau(y_true, y_pred).statistic),
        "spearman_rho": float(spearmanr(y_true, y_pred).statistic),
        "rmse": rmse,
    }


def cross_val_metrics(
    model_factory: Callable[[], Surrogate], X: Any, y: Any, *, folds: int = 5, seed: int = 0
) -> dict[str, float]:
    """Mean ``rank_metrics`` over shuffled ``KFold`` splits.

    ``model_factory()`` must return a fresh unfitted model. Folds where a correlation is
    undefined are left out of its mean. When some held-out fold has a single point (e.g.
    leave-one-out on a small archive) per-fold correlations do not exist, so the metrics are
    computed once on the pooled out-of-fold predictions instead.
    """
    X = _as_features(X)
    y = _as_targets(y, n=len(X))
    if not isinstance(folds, int) or not 2 <= folds <= len(y):
        raise ValueError(f"folds must be an int in [2, n={len(y)}], got {folds!r}.")
    splitter = KFold(n_splits=folds, shuffle=True, random_state=_check_seed(seed))
    oof = np.empty_like(y)
    per_fold = []
    for train, test in splitter.split(X):
        oof[test] = model_factory().fit(X[train], y[train]).predict(X[test])
        per_fold.append(rank_metrics(y[test], oof[test]))
    if len(y) < 2 * folds:  # KFold sizes differ by at most one: some fold has one point
        return rank_metrics(y, oof)
    out = {}
    for key in ("kendall_tau", "spearman_rho", "rmse"):
        values = [m[key] for m in per_fold if not math.isnan(m[key])]
        out[key] = float(np.mean(values)) if values else math.nan
    return out
