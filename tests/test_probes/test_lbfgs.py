"""The batched L-BFGS solver: scikit-learn's objective and stopping rule, sample weights and zero-weight padding,
float32, convergence flags, separable data, the compact inverse-Hessian product, and what ``solver="auto"`` picks."""

import importlib.util
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from drift import DriftError
from probes import lbfgs
from probes.newton import LBFGS_MIN_SIZE, LBFGS_MIN_TOL, fit_logistic_batched, solve_logistic
from tiny import logistic_problems

ROOT = Path(__file__).resolve().parents[2]


def _problems(P, n, d, seed=0):
    return logistic_problems(P, n, d, seed)


def _sklearn_gradient(w, b, X, y, C, sw):
    """Largest absolute entry of the gradient of scikit-learn's scaled objective (its lbfgs stopping statistic)."""
    r = sw * (expit(X @ w + b) - y)
    return np.abs(np.r_[X.T @ r + w / C, r.sum()]).max() / sw.sum()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("weights", ["none", "random", "padding"])
def test_matches_sklearn_coefficients(dtype, weights):
    P, n, d, C = 3, 150, 20, 0.5
    X, y = _problems(P, n, d, seed=1)
    rng = np.random.default_rng(2)
    sw = np.ones((P, n)) if weights != "random" else rng.uniform(0.2, 3.0, size=(P, n))
    if weights == "padding":  # 40 junk rows of weight 0 after the real ones
        X = np.concatenate([X, rng.normal(size=(P, 40, d)) * 50], 1)
        y = np.concatenate([y, np.ones((P, 40), dtype=int)], 1)
        sw = np.concatenate([sw, np.zeros((P, 40))], 1)
    tol = 1e-9 if dtype == torch.float64 else 1e-6
    fit = solve_logistic(X, y, C, sample_weight=sw, solver="lbfgs", tol=tol, max_iter=1000, dtype=dtype)
    assert fit.solver == "lbfgs" and fit.converged.all()
    for p in range(P):
        ref = LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(X[p], y[p], sample_weight=sw[p])
        scale = np.abs(ref.coef_).max()
        atol = 1e-5 * scale if dtype == torch.float64 else 2e-3 * scale
        np.testing.assert_allclose(fit.coef[p], ref.coef_[0], atol=atol)
        np.testing.assert_allclose(fit.intercept[p], ref.intercept_[0], atol=atol)


def test_padding_and_chunking_do_not_change_the_fit():
    X, y = _problems(5, 120, 30, seed=3)
    full = solve_logistic(X, y, 0.3, solver="lbfgs")
    chunked = solve_logistic(X, y, 0.3, solver="lbfgs", batch_size=2)
    np.testing.assert_allclose(chunked.coef, full.coef, atol=1e-12)
    np.testing.assert_array_equal(chunked.n_iter, full.n_iter)
    Xp = np.concatenate([X, np.random.default_rng(4).normal(size=(5, 30, 30))], 1)
    yp = np.concatenate([y, np.ones((5, 30), dtype=int)], 1)
    padded = solve_logistic(Xp, yp, 0.3, solver="lbfgs", sample_weight=np.r_[np.ones(120), np.zeros(30)])
    np.testing.assert_allclose(padded.coef, full.coef, atol=1e-6 * np.abs(full.coef).max())


def test_default_tolerance_is_sklearns_stopping_rule():
    X, y = _problems(6, 200, 40, seed=5)
    for dtype in (torch.float64, torch.float32):
        fit = solve_logistic(X, y, 0.2, solver="lbfgs", dtype=dtype)
        assert fit.converged.all()
        for p in range(6):
            assert _sklearn_gradient(fit.coef[p], fit.intercept[p], X[p], y[p], 0.2, np.ones(200)) <= 1.05e-4


def test_benchmark_data_accuracy_matches_sklearn():
    spec = importlib.util.spec_from_file_location("_bench_probes", ROOT / "benchmarks" / "probes.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    X, y, train = bench.make_data(layers=6, langs=2, n=400, d=96)
    _, acc_sklearn, _, _ = bench.sklearn_loop(X, y, train, C=0.1, blas_threads=1)
    for dtype in (torch.float32, torch.float64):
        _, acc, fit, _ = bench.batched(X, y, train, 0.1, "cpu", dtype, "lbfgs")
        assert fit.solver == "lbfgs" and fit.converged.all()
        assert np.abs(acc - acc_sklearn).max() <= 0.01 + 1e-9


def test_convergence_flags_and_warning():
    X, y = _problems(6, 100, 200, seed=5)
    X[0] *= 0.01  # nearly no signal: converges in fewer steps than the separable problems
    fit = solve_logistic(X, y, 10.0, solver="lbfgs", max_iter=500)
    assert fit.converged.all() and fit.n_iter[0] < fit.n_iter[1:].min()
    short = solve_logistic(X, y, 10.0, solver="lbfgs", max_iter=2)
    assert not short.converged.any() and (short.n_iter == 2).all()
    with pytest.warns(ConvergenceWarning, match="did not converge in 2 L-BFGS steps"):
        fit_logistic_batched(X, y, C=10.0, solver="lbfgs", max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_logistic_batched(X, y, C=10.0, solver="lbfgs", max_iter=500)
    f64 = solve_logistic(X, y, 10.0, solver="lbfgs", tol=1e-6, max_iter=500)
    f32 = solve_logistic(X, y, 10.0, solver="lbfgs", dtype=torch.float32, tol=1e-6, max_iter=500)
    assert f32.converged.all() and f64.converged.all()
    np.testing.assert_allclose(f32.coef, f64.coef, atol=2e-3 * np.abs(f64.coef).max())


def test_separable_data_terminates():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, size=(3, 80))
    X = rng.normal(size=(3, 80, 10))
    X[:, :, 0] = np.where(y == 1, 1.0, -1.0) * rng.uniform(1.0, 2.0, size=(3, 80))  # a margin of 2
    newton = solve_logistic(X, y, 1e4, solver="dual", tol=1e-9)
    for tol, rtol in ((None, 0.3), (1e-10, 1e-5)):  # nearly unregularised: the default stops well short of it
        fit = solve_logistic(X, y, 1e4, solver="lbfgs", max_iter=1000, tol=tol)
        assert fit.converged.all() and np.isfinite(fit.coef).all() and fit.n_iter.max() < 100
        assert (((np.einsum("pnd,pd->pn", X, fit.coef) + fit.intercept[:, None]) > 0) == y).all()
        np.testing.assert_allclose(fit.coef, newton.coef, atol=rtol * np.abs(newton.coef).max())


def test_one_class_error_message_unchanged():
    X, y = _problems(2, 40, 5)
    y[1] = 1
    with pytest.raises(DriftError, match=r"^targets must be 0/1 with both classes in every problem; problems \[1\] "
                                         r"have one$"):
        solve_logistic(X, y, solver="lbfgs")


def test_compact_direction_equals_the_two_loop_recursion():
    rng = np.random.default_rng(7)
    B, m, D = 3, 4, 9
    A = rng.normal(size=(B, D, D))
    H = A @ A.transpose(0, 2, 1) + np.eye(D)
    c = SimpleNamespace(SY=torch.zeros(B, 2 * m, D, dtype=torch.float64), G=torch.zeros(B, 2 * m, 2 * m,
                        dtype=torch.float64), gamma=None, fresh=torch.zeros(B, 1, dtype=torch.bool), any_fresh=False,
                        eps=np.finfo(float).eps)
    c.SYn = c.SY.numpy()
    c.G[:, :m, m:].diagonal(dim1=1, dim2=2).fill_(1.0)
    pairs = []
    for it in range(m + 2):  # wraps around the slots
        s = rng.normal(size=(B, D))
        yv = np.einsum("bij,bj->bi", H, s)
        if it == m + 1:
            yv[1] = -s[1]  # fails the curvature test: slot emptied for problem 1 only
        lbfgs._remember(c, torch.as_tensor(s), torch.as_tensor(yv), it % m, m)
        pairs.append((s, yv))
    c.g = torch.as_tensor(rng.normal(size=(B, D)))
    p = lbfgs._direction(c, *lbfgs._orders(m, torch.device("cpu"))[(m + 2) % m], m).numpy()
    for b in range(B):
        kept = [(s[b], yv[b]) for s, yv in pairs[-m:] if s[b] @ yv[b] > 0]
        q, alphas = c.g[b].numpy().copy(), []
        for s, yv in reversed(kept):
            alphas.append(s @ q / (s @ yv))
            q -= alphas[-1] * yv
        s_last, y_last = kept[-1]  # gamma from the newest accepted pair
        r = q * (s_last @ y_last) / (y_last @ y_last)
        for (s, yv), a in zip(kept, reversed(alphas)):
            r += s * (a - yv @ r / (s @ yv))
        np.testing.assert_allclose(p[b], -r, rtol=1e-9, atol=1e-12)


def test_auto_prefers_lbfgs_on_cpu_for_large_problems():
    X, y = _problems(2, 60, 30)
    assert solve_logistic(X, y).solver == "primal"  # small: Newton (primal as n > d)
    n = 200
    d = -(-LBFGS_MIN_SIZE // n)
    X, y = _problems(2, n, d)
    fit = solve_logistic(X, y, 0.1)
    assert fit.solver == "lbfgs" and fit.converged.all()
    assert solve_logistic(X, y, 0.1, tol=LBFGS_MIN_TOL).solver == "lbfgs"
    assert solve_logistic(X, y, 0.1, tol=LBFGS_MIN_TOL / 10).solver == "primal"  # a tight tol: Newton
    assert solve_logistic(X, y, 0.1, solver="dual").solver == "dual"
