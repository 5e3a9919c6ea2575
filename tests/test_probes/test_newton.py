"""The batched Newton solver: scikit-learn's objective, primal = dual, padding, precision, convergence masks; and the
group-bootstrap intervals for AUROC and ECE."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from drift import DriftError
from probes.newton import fit_logistic_batched, solve_logistic
from probes.resample import bootstrap_auroc_ece, group_bootstrap_weights, weighted_auroc, weighted_ece
from probes.sweep import expected_calibration_error
from tiny import logistic_problems


def _problems(P, n, d, seed=0):
    return logistic_problems(P, n, d, seed)


def _objective(w, b, X, y, C):
    z = X @ w + b
    return C * np.sum(np.logaddexp(0, z) - y * z) + 0.5 * w @ w


@pytest.mark.parametrize("shape", [(4, 120, 30), (4, 60, 150)], ids=["n>d", "n<d"])
@pytest.mark.parametrize("C", [0.05, 1.0, 50.0])
def test_matches_sklearn_objective_primal_and_dual(shape, C):
    X, y = _problems(*shape)
    dual = solve_logistic(X, y, C, solver="dual", tol=1e-9)
    primal = solve_logistic(X, y, C, solver="primal", tol=1e-9)
    assert dual.converged.all() and primal.converged.all()
    np.testing.assert_allclose(dual.coef, primal.coef, atol=1e-6)
    np.testing.assert_allclose(dual.intercept, primal.intercept, atol=1e-6)
    for p in range(shape[0]):
        ref = LogisticRegression(C=C, tol=1e-10, max_iter=20000).fit(X[p], y[p])
        ours = _objective(dual.coef[p], dual.intercept[p], X[p], y[p], C)
        theirs = _objective(ref.coef_[0], ref.intercept_[0], X[p], y[p], C)
        assert ours <= theirs + 1e-7 * abs(theirs)  # the intercept is unpenalised, as in scikit-learn
        np.testing.assert_allclose(dual.coef[p], ref.coef_[0], atol=2e-3 * max(1.0, np.abs(ref.coef_).max()))


def test_shift_invariance_of_the_unpenalised_intercept():
    X, y = _problems(3, 80, 20)
    a = solve_logistic(X, y, 0.3, tol=1e-10)
    b = solve_logistic(X + 5.0, y, 0.3, tol=1e-10)
    np.testing.assert_allclose(a.coef, b.coef, atol=1e-7)
    np.testing.assert_allclose(a.intercept - 5.0 * a.coef.sum(1), b.intercept, atol=1e-6)


@pytest.mark.parametrize("solver", ["dual", "primal"])
def test_zero_weight_padding_equals_the_unpadded_fit(solver):
    X, y = _problems(2, 90, 40, seed=3)
    full = solve_logistic(X, y, 0.5, solver=solver, tol=1e-10)
    Xp = np.concatenate([X, np.random.default_rng(1).normal(size=(2, 25, 40))], 1)
    yp = np.concatenate([y, np.ones((2, 25), dtype=int)], 1)
    weight = np.r_[np.ones(90), np.zeros(25)]
    padded = solve_logistic(Xp, yp, 0.5, solver=solver, tol=1e-10, sample_weight=weight)
    np.testing.assert_allclose(padded.coef, full.coef, atol=1e-7)
    np.testing.assert_allclose(padded.intercept, full.intercept, atol=1e-7)


def test_integer_weights_equal_repeated_rows():
    X, y = _problems(1, 50, 10, seed=4)
    reps = np.random.default_rng(0).integers(1, 4, size=50)
    weighted = solve_logistic(X, y, 0.7, sample_weight=reps, tol=1e-10)
    repeated = solve_logistic(np.repeat(X, reps, axis=1), np.repeat(y, reps, axis=1), 0.7, tol=1e-10)
    np.testing.assert_allclose(weighted.coef, repeated.coef, atol=1e-7)


def test_convergence_masks_float32_and_warnings():
    X, y = _problems(6, 100, 200, seed=5)
    X[0] *= 0.01  # nearly no signal: converges in fewer steps than the strongly separable problems
    fit64 = solve_logistic(X, y, 10.0)
    assert fit64.converged.all() and len(set(fit64.n_iter.tolist())) > 1
    fit32 = solve_logistic(torch.as_tensor(X, dtype=torch.float32), y, 10.0, dtype=torch.float32)
    assert fit32.converged.all()
    np.testing.assert_allclose(fit32.coef, fit64.coef, atol=2e-3 * np.abs(fit64.coef).max())
    chunked = solve_logistic(X, y, 10.0, batch_size=4)
    np.testing.assert_allclose(chunked.coef, fit64.coef, atol=1e-9)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        fit_logistic_batched(X, y, C=10.0, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_logistic_batched(X, y, C=10.0)


def test_rejects_single_class_and_bad_arguments():
    X, y = _problems(2, 40, 5)
    y[1] = 1
    with pytest.raises(DriftError, match="both classes"):
        solve_logistic(X, y)
    with pytest.raises(DriftError, match="solver"):
        solve_logistic(X, np.r_[np.zeros(20), np.ones(20)], solver="sgd")


def test_weighted_auroc_and_ece_match_unweighted_definitions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 150)
    p = np.round(np.clip(rng.uniform(size=150) * 0.6 + 0.3 * y, 0, 1), 2)  # rounded: many ties
    w = rng.integers(0, 4, size=(4, 150)).astype(float)
    np.testing.assert_allclose(weighted_auroc(y, p, w), [roc_auc_score(y, p, sample_weight=wi) for wi in w])
    assert weighted_ece(y, p, np.ones((1, 150)))[0] == pytest.approx(expected_calibration_error(y, p))


def test_group_bootstrap_keeps_groups_whole_and_is_seeded():
    groups = np.repeat(np.arange(30), 3)  # three translations per prompt group
    w = group_bootstrap_weights(groups, 200, seed=1)
    assert (w.reshape(200, 30, 3).std(-1) == 0).all() and np.allclose(w.sum(1), 90)
    rng = np.random.default_rng(2)
    y = np.repeat(rng.integers(0, 2, 30), 3)
    p = np.clip(0.5 + 0.3 * (2 * y - 1) + rng.normal(0, 0.25, 90), 0, 1)
    ci = bootstrap_auroc_ece(y, p, groups, seed=3)
    assert ci == bootstrap_auroc_ece(y, p, groups, seed=3)
    assert ci["auroc"][0] <= roc_auc_score(y, p) <= ci["auroc"][1]
    assert ci["ece"][0] <= expected_calibration_error(y, p) <= ci["ece"][1]


@pytest.mark.parametrize("solver", ["auto", "dual", "primal", "lbfgs"])
def test_non_finite_features_are_a_clear_error(solver):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 300, 120)).astype(np.float32)
    y = (rng.random((3, 300)) > 0.5).astype(float)
    X[1, 5, 5] = np.nan
    with pytest.raises(DriftError, match=r"NaN or infinite values in problems \[1\]"):
        solve_logistic(X, y, 1.0, solver=solver)
