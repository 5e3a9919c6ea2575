"""Probe estimators: the scikit-learn contract, planted data, and the batched torch probe versus scikit-learn."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.utils.estimator_checks import check_estimator

from probes import DiffMeanProbe, LogisticProbe, TorchLogisticProbe, fit_logistic_batched

ESTIMATORS = [DiffMeanProbe(), LogisticProbe(Cs=(0.1, 1.0)), TorchLogisticProbe()]


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_check_estimator(est):
    check_estimator(est)


def _planted(n=400, d=32, seed=0, separable=True):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, d))
    if separable:
        X[:, 0] += 4.0 * (2 * y - 1)
    groups = np.arange(n) // 2
    return X, y, groups


@pytest.mark.parametrize("est", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_planted_separable_and_random(est):
    X, y, groups = _planted()
    acc = cross_val_score(est, X, y, groups=groups, cv=GroupKFold(5)).mean()
    assert acc > 0.97
    Xr, yr, groups = _planted(separable=False, seed=1)
    chance = cross_val_score(est, Xr, yr, groups=groups, cv=GroupKFold(5)).mean()
    assert abs(chance - 0.5) < 0.1


def test_batched_matches_sklearn():
    rng = np.random.default_rng(2)
    P, n, d = 6, 300, 40
    X = rng.normal(size=(P, n, d))
    y = rng.integers(0, 2, n)
    X[:, :, :3] += (2 * y - 1)[None, :, None] * np.linspace(0.2, 1.0, P)[:, None, None]
    coef, intercept = fit_logistic_batched(X, y, C=0.5)
    for p in range(P):
        ref = LogisticRegression(C=0.5, max_iter=2000).fit(X[p], y)
        ours = ((X[p] @ coef[p] + intercept[p]) > 0).astype(int)
        assert abs((ours == y).mean() - ref.score(X[p], y)) <= 0.01
        np.testing.assert_allclose(coef[p], ref.coef_[0], atol=5e-3)


def test_logistic_probe_uses_groups_for_inner_cv():
    X, y, groups = _planted()
    probe = LogisticProbe(Cs=(0.01, 1.0)).fit(X, y, groups=groups)
    assert probe.C_ in (0.01, 1.0) and probe.score(X, y) > 0.97
