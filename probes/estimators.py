"""Linear probes that follow the scikit-learn estimator contract (binary classification).

* :class:`DiffMeanProbe`: the difference-of-means direction, with a 1-D logistic calibration of its projection.
* :class:`LogisticProbe`: L2 logistic regression whose ``C`` is chosen by inner (group) cross-validation.
* :class:`TorchLogisticProbe`: L2 logistic regression solved by the batched solvers of :mod:`probes.newton` (CPU or
  GPU), with the same objective as scikit-learn's ``LogisticRegression`` (``C * sum(loss) + ||w||^2 / 2``,
  intercept unpenalised); :func:`~probes.newton.fit_logistic_batched` fits many such probes at once, e.g. one per
  layer and language.

``fit`` returns ``self``; learned state ends in ``_``; so the probes work with ``GroupKFold``, pipelines and the
rest of scikit-learn.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from probes.newton import fit_logistic_batched, solve_logistic

__all__ = ["DiffMeanProbe", "LogisticProbe", "TorchLogisticProbe", "fit_logistic_batched"]


class _BinaryLinear(ClassifierMixin, BaseEstimator):
    """Shared prediction code: ``coef_`` (1, d), ``intercept_`` (1,), ``classes_`` (2,)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _targets(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=False)
        check_classification_targets(y)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) != 2:
            raise ValueError(f"Only binary classification is supported by {type(self).__name__}; "
                             f"got {len(self.classes_)} classes")
        return X, y_idx.astype(np.float64)

    def decision_function(self, X) -> np.ndarray:
        """Signed distance to the boundary (positive means ``classes_[1]``)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.coef_[0] + self.intercept_[0]

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shaped (n, 2)."""
        p = 1.0 / (1.0 + np.exp(-np.clip(self.decision_function(X), -500, 500)))
        return np.stack([1 - p, p], axis=1)

    def predict(self, X) -> np.ndarray:
        """Predicted class labels."""
        positive = self.decision_function(X) > 0  # checks fitting before classes_ is touched
        return self.classes_[positive.astype(int)]


class DiffMeanProbe(_BinaryLinear):
    """Project on mean(class 1) - mean(class 0); calibrate the projection with a 1-D logistic fit."""

    def fit(self, X, y):
        """Fit the direction and its calibration; returns self."""
        X, y = self._targets(X, y)
        direction = X[y == 1].mean(0) - X[y == 0].mean(0)
        norm = np.linalg.norm(direction)
        direction = direction / norm if norm > 0 else direction
        proj = (X @ direction)[:, None]
        cal = LogisticRegression(C=1e4).fit(proj, y)
        self.direction_ = direction
        self.coef_ = cal.coef_[0, 0] * direction[None, :]
        self.intercept_ = cal.intercept_.copy()
        return self


class TorchLogisticProbe(_BinaryLinear):
    """L2 logistic regression through :func:`probes.newton.solve_logistic` (numba or torch L-BFGS on CPU, Newton on
    a GPU or for small problems); scikit-learn's objective and regularisation.

    Args:
        C: Inverse regularisation strength (the intercept is not penalised).
        max_iter: Solver steps at most.
        tol: Stopping tolerance; None (default) takes the solver's own (L-BFGS: largest gradient entry of
            scikit-learn's scaled objective <= 1e-5; Newton: gradient 2-norm / n <= 1e-6). A value below 1e-5
            makes ``auto`` pick Newton.
        device: Torch device.
        dtype: ``float64`` (default) or ``float32``.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 100, tol: float | None = None, device: str = "cpu",
                 dtype: str = "float64") -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.device = device
        self.dtype = dtype

    def fit(self, X, y):
        """Fit; returns self."""
        X, y = self._targets(X, y)
        fit = solve_logistic(X[None], y[None], self.C, max_iter=self.max_iter, tol=self.tol, device=self.device,
                             dtype=getattr(torch, self.dtype))
        if not fit.converged[0]:
            warnings.warn(f"TorchLogisticProbe did not converge in {self.max_iter} {fit.solver} steps "
                          f"(tol={self.tol}): raise max_iter or tol", ConvergenceWarning, stacklevel=2)
        self.coef_, self.intercept_, self.n_iter_ = fit.coef, fit.intercept, fit.n_iter.copy()
        return self


class LogisticProbe(_BinaryLinear):
    """L2 logistic regression with ``C`` chosen by inner cross-validation (grouped when groups are given)."""

    def __init__(self, Cs: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0), inner_folds: int = 3,
                 max_iter: int = 1000) -> None:
        self.Cs = Cs
        self.inner_folds = inner_folds
        self.max_iter = max_iter

    def fit(self, X, y, groups=None):
        """Choose ``C`` by inner CV (``GroupKFold`` when ``groups`` is given), refit on all rows; returns self."""
        X, y = self._targets(X, y)
        folds = min(self.inner_folds, int(np.bincount(y.astype(int)).min()))
        scores = np.zeros(len(self.Cs))
        if folds >= 2:
            if groups is not None and len(np.unique(groups)) >= folds:
                splits = list(GroupKFold(folds).split(X, y, groups))
            else:
                splits = list(StratifiedKFold(folds, shuffle=True, random_state=0).split(X, y))
            for i, c in enumerate(self.Cs):
                for tr, te in splits:
                    model = LogisticRegression(C=c, max_iter=self.max_iter).fit(X[tr], y[tr])
                    scores[i] += model.score(X[te], y[te])
        self.C_ = float(self.Cs[int(np.argmax(scores))])
        model = LogisticRegression(C=self.C_, max_iter=self.max_iter).fit(X, y)
        self.coef_, self.intercept_, self.n_iter_ = model.coef_.copy(), model.intercept_.copy(), model.n_iter_
        return self
