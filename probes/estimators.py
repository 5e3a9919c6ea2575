"""Linear probes that follow the scikit-learn estimator contract (binary classification).

* :class:`DiffMeanProbe`: the difference-of-means direction, with a 1-D logistic calibration of its projection.
* :class:`LogisticProbe`: L2 logistic regression whose ``C`` is chosen by inner (group) cross-validation.
* :class:`TorchLogisticProbe`: L2 logistic regression solved by L-BFGS in torch (CPU or GPU), with the same objective
  as scikit-learn's ``LogisticRegression`` (``C * sum(loss) + ||w||^2 / 2``, intercept unpenalised);
  :func:`fit_logistic_batched` fits many such probes at once, e.g. one per layer.

``fit`` returns ``self``; learned state ends in ``_``; so the probes work with ``GroupKFold``, pipelines and the
rest of scikit-learn.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data


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


def _standardise(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mu = X.mean(-2, keepdim=True)
    sd = X.std(-2, keepdim=True).clamp_min(1e-8)
    return (X - mu) / sd, mu, sd


def fit_logistic_batched(X, y, C: float = 1.0, max_iter: int = 200, device: str | None = None,
                         tol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Fit P independent L2 logistic regressions at once.

    Args:
        X: (P, n, d) features (one problem per leading index, e.g. one per layer).
        y: (P, n) or (n,) 0/1 targets.
        C: Inverse regularisation strength, as in scikit-learn.
        max_iter: L-BFGS iterations.
        device: Torch device (default: the tensor's, or cpu).
        tol: Gradient tolerance.

    Returns:
        ``coef`` (P, d) and ``intercept`` (P,) in the original feature scale.
    """
    dev = torch.device(device) if device else (X.device if isinstance(X, torch.Tensor) else torch.device("cpu"))
    Xt = torch.as_tensor(np.array(X) if not isinstance(X, torch.Tensor) else X, dtype=torch.float64, device=dev)
    yt = torch.as_tensor(np.array(y) if not isinstance(y, torch.Tensor) else y, dtype=torch.float64, device=dev)
    if yt.ndim == 1:
        yt = yt.expand(Xt.shape[0], -1)
    Z, mu, sd = _standardise(Xt)
    P, _, d = Z.shape
    w = torch.zeros(P, d + 1, dtype=torch.float64, device=dev, requires_grad=True)
    # In standardised coordinates the penalty on w is ||w / sd||^2: the same objective as in the original scale.
    inv_sd2 = (1.0 / sd[:, 0, :]) ** 2
    opt = torch.optim.LBFGS([w], lr=1, max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = torch.einsum("pnd,pd->pn", Z, w[:, :d]) + w[:, d:]
        loss = C * torch.nn.functional.binary_cross_entropy_with_logits(logits, yt, reduction="sum")
        loss = loss + 0.5 * (w[:, :d] ** 2 * inv_sd2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        coef = w[:, :d] / sd[:, 0, :]
        intercept = w[:, d] - (coef * mu[:, 0, :]).sum(-1)
    return coef.cpu().numpy(), intercept.cpu().numpy()


class TorchLogisticProbe(_BinaryLinear):
    """L2 logistic regression solved with L-BFGS in torch; scikit-learn's objective and regularisation."""

    def __init__(self, C: float = 1.0, max_iter: int = 200, device: str = "cpu") -> None:
        self.C = C
        self.max_iter = max_iter
        self.device = device

    def fit(self, X, y):
        """Fit; returns self."""
        X, y = self._targets(X, y)
        coef, intercept = fit_logistic_batched(X[None], y[None], self.C, self.max_iter, self.device)
        self.coef_, self.intercept_ = coef, intercept
        self.n_iter_ = np.array([self.max_iter])  # an upper bound: L-BFGS stops earlier on convergence
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
