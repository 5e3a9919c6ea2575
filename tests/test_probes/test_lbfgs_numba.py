"""The compiled L-BFGS kernel (probes.lbfgs_numba): scikit-learn's coefficients with and without sample weights and
zero-weight padding, float32 and float64 features, any row layout, convergence flags, thread-count independence, its
use by ``solve_logistic`` and the torch fallback when numba cannot be imported."""

import multiprocessing
import os
import sys

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from probes.newton import solve_logistic
from tiny import logistic_problems

kernel = pytest.importorskip("probes.lbfgs_numba")


def _problems(P, n, d, seed=0):
    return logistic_problems(P, n, d, seed, offset=3)


def _with_padding(X, y, sw, rng, k=25):
    """Insert k junk rows of weight 0 at random positions (not only at the end)."""
    P, n, d = X.shape
    at = np.sort(rng.choice(n + k, size=k, replace=False))
    real = np.setdiff1d(np.arange(n + k), at)
    Xp, yp, swp = np.empty((P, n + k, d)), np.ones((P, n + k), dtype=int), np.zeros((P, n + k))
    Xp[:, real], yp[:, real], swp[:, real] = X, y, sw
    Xp[:, at] = rng.normal(size=(P, k, d)) * 50
    return Xp, yp, swp


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("weights", ["none", "random", "padding"])
def test_matches_sklearn_coefficients(dtype, weights):
    P, n, d, C = 3, 160, 24, 0.5
    X, y = _problems(P, n, d, seed=1)
    X = X.astype(dtype).astype(np.float64)  # the numbers both solvers see
    rng = np.random.default_rng(2)
    sw = rng.uniform(0.2, 3.0, size=(P, n)) if weights == "random" else np.ones((P, n))
    Xk, yk, swk = _with_padding(X, y, sw, rng) if weights == "padding" else (X, y, sw)
    w, b, n_iter, converged = kernel.solve_numba(Xk.astype(dtype), yk, swk, C, 1000, 1e-10)
    assert converged.all() and w.dtype == np.float64 and (n_iter > 0).all()
    for p in range(P):
        ref = LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(X[p], y[p], sample_weight=sw[p])
        scale = np.abs(ref.coef_).max()
        np.testing.assert_allclose(w[p], ref.coef_[0], atol=1e-4 * scale)
        np.testing.assert_allclose(b[p], ref.intercept_[0], atol=1e-4 * scale)


def test_any_row_layout_gives_the_same_fit():
    X, y = _problems(4, 90, 16, seed=3)
    X = X.astype(np.float32)
    sw = np.ones((4, 90))
    ref = kernel.solve_numba(np.ascontiguousarray(X), y, sw, 0.3, 500, 1e-8)
    wide = np.concatenate([X, X[:, :30]], 1)[:, np.r_[:90]]  # boolean/fancy indexing: rows contiguous, axes permuted
    T = np.ascontiguousarray(X.transpose(1, 0, 2)).transpose(1, 0, 2)  # problems interleaved row by row
    padded_rows = np.zeros((4, 90, 20), dtype=np.float32)
    padded_rows[:, :, :16] = X
    for view in (wide, T, padded_rows[:, :, :16]):
        out = kernel.solve_numba(view, y, sw, 0.3, 500, 1e-8)
        for a, b in zip(out, ref):
            np.testing.assert_array_equal(a, b)
    flipped = kernel.solve_numba(X[:, ::-1], y[:, ::-1], sw, 0.3, 500, 1e-8)  # negative strides: copied
    np.testing.assert_allclose(flipped[0], ref[0], atol=1e-6 * np.abs(ref[0]).max())


def test_unconverged_problems_are_reported():
    X, y = _problems(3, 80, 120, seed=4)
    w, b, n_iter, converged = kernel.solve_numba(X, y, np.ones((3, 80)), 10.0, 2, 1e-8)
    assert not converged.any() and (n_iter == 2).all() and np.isfinite(w).all()
    w0, b0, n0, c0 = kernel.solve_numba(X, y, np.ones((3, 80)), 10.0, 0, 1e-8)
    assert (n0 == 0).all() and not c0.any() and (w0 == 0).all()  # the intercept-only start
    np.testing.assert_allclose(1 / (1 + np.exp(-b0)), y.mean(1))


def test_threads_do_not_change_the_result():
    X, y = _problems(7, 120, 40, seed=5)
    one = kernel.solve_numba(X, y, np.ones((7, 120)), 0.2, 300, 1e-8, threads=1)
    two = kernel.solve_numba(X, y, np.ones((7, 120)), 0.2, 300, 1e-8, threads=2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_extreme_logits_stay_finite():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, size=(2, 60))
    X = rng.normal(size=(2, 60, 5))
    X[:, :, 0] = np.where(y == 1, 1.0, -1.0) * 1e3  # separable with a huge margin, nearly unregularised
    w, b, n_iter, converged = kernel.solve_numba(X, y, np.ones((2, 60)), 1e8, 200, 1e-6)
    assert np.isfinite(w).all() and np.isfinite(b).all()
    assert (((np.einsum("pnd,pd->pn", X, w) + b[:, None]) > 0) == y).all()


def test_solve_logistic_runs_the_kernel_on_float32_features():
    X, y = _problems(3, 150, 250, seed=7)  # n d above LBFGS_MIN_SIZE: "auto" picks L-BFGS
    X32 = X.astype(np.float32)
    fit = solve_logistic(X32, y, 0.1)
    assert (fit.solver, fit.backend) == ("lbfgs", "numba") and fit.converged.all() and fit.coef.dtype == np.float64
    same = solve_logistic(X32.astype(np.float64), y, 0.1)  # float32 features are not copied to float64 first
    np.testing.assert_allclose(fit.coef, same.coef, rtol=1e-9, atol=1e-12)
    f32 = solve_logistic(torch.from_numpy(X32), y, 0.1, dtype=torch.float32)
    assert f32.coef.dtype == np.float32
    np.testing.assert_allclose(f32.coef, fit.coef, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("missing", ["numba", "kernel"])
def test_falls_back_to_torch_without_numba(monkeypatch, missing):
    X, y = _problems(3, 150, 250, seed=8)
    fast = solve_logistic(X, y, 0.1, solver="lbfgs", tol=1e-8, max_iter=500)
    if missing == "numba":  # numba not installed: importing the kernel module fails
        monkeypatch.setitem(sys.modules, "numba", None)
        monkeypatch.delitem(sys.modules, "probes.lbfgs_numba")
    else:
        monkeypatch.setitem(sys.modules, "probes.lbfgs_numba", None)
    slow = solve_logistic(X, y, 0.1, solver="lbfgs", tol=1e-8, max_iter=500)
    assert (fast.backend, slow.backend) == ("numba", "torch") and slow.solver == "lbfgs" and slow.converged.all()
    np.testing.assert_allclose(slow.coef, fast.coef, atol=1e-5 * np.abs(fast.coef).max())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_works_in_a_process_forked_after_it_ran():
    X, y = _problems(4, 100, 20, seed=9)
    ref = kernel.solve_numba(X, y, np.ones((4, 100)), 0.5, 300, 1e-8, threads=2)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:  # GNU OpenMP would terminate a child that starts threads again
        w = pool.apply(_fit_in_child, (X, y))
    np.testing.assert_array_equal(w, ref[0])


def _fit_in_child(X, y):
    return kernel.solve_numba(X, y, np.ones(y.shape), 0.5, 300, 1e-8, threads=2)[0]
