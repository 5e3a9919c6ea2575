"""CKA: published reference values, invariances, debiasing, streaming = batch, minibatch, intervals."""

import numpy as np
import pytest
import torch

import drift
from drift import DriftError
from drift.metrics.cka import (
    CKAFitter,
    MinibatchCKA,
    cka_bootstrap,
    cka_permutation_test,
    debiased_cka,
    linear_cka,
    rbf_cka,
)


def _kornblith():
    np.random.seed(1337)
    X = np.random.randn(100, 10)
    Y = np.random.randn(100, 10) + X
    return X, Y


def _naive(X, Y, debiased):
    """An independent Gram-matrix implementation."""
    K, L = X @ X.T, Y @ Y.T
    n = len(X)
    if not debiased:
        H = np.eye(n) - 1.0 / n
        hsic = lambda a, b: np.trace(a @ H @ b @ H)  # noqa: E731
    else:
        def hsic(a, b):
            a, b = a - np.diag(np.diag(a)), b - np.diag(np.diag(b))
            return (np.trace(a @ b) + a.sum() * b.sum() / ((n - 1) * (n - 2))
                    - 2 * a.sum(0) @ b.sum(0) / (n - 2)) / (n * (n - 3))
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def test_reference_values():
    X, Y = _kornblith()
    assert linear_cka(X, Y) == pytest.approx(0.55761, abs=1e-5)
    assert debiased_cka(X, Y) == pytest.approx(0.51346, abs=1e-5)
    assert drift.linear_cka(X, Y) == linear_cka(X, Y) and isinstance(drift.debiased_cka(X, Y), float)


def test_against_naive_gram_implementation():
    rng = np.random.default_rng(0)
    for n, d in [(60, 8), (30, 50)]:
        X, Y = rng.normal(size=(n, d)), rng.normal(size=(n, d + 3))
        Y[:, :d] += X
        assert linear_cka(X, Y) == pytest.approx(_naive(X, Y, False), rel=1e-10)
        assert debiased_cka(X, Y) == pytest.approx(_naive(X, Y, True), rel=1e-10)


@pytest.mark.parametrize("fn", [linear_cka, debiased_cka, lambda x, y: rbf_cka(x, y, 1.0)])
def test_self_similarity_is_one(fn):
    X = np.random.default_rng(1).normal(size=(40, 12))
    assert fn(X, X) == pytest.approx(1.0)


def test_invariances():
    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(80, 16)), rng.normal(size=(80, 16))
    Y += X
    Q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    for fn in (linear_cka, debiased_cka):
        assert fn(X @ Q, Y) == pytest.approx(fn(X, Y), rel=1e-10)
        assert fn(3.7 * X, Y) == pytest.approx(fn(X, Y), rel=1e-10)
    assert rbf_cka(3.7 * X, Y) == pytest.approx(rbf_cka(X, Y), rel=1e-10)


def test_debiased_is_near_zero_for_independent_data_with_n_le_d():
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(50, 500)), rng.normal(size=(50, 500))
    assert linear_cka(X, Y) > 0.5 and abs(debiased_cka(X, Y)) < 0.1


def test_feature_form_equals_gram_form():
    rng = np.random.default_rng(4)
    X, Y = rng.normal(size=(200, 5)), rng.normal(size=(200, 7))
    Y[:, :5] += X
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    K, L = Xc @ Xc.T, Yc @ Yc.T
    assert linear_cka(X, Y) == pytest.approx((K * L).sum() / (np.linalg.norm(K) * np.linalg.norm(L)), rel=1e-10)


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_streaming_equals_batch(chunk):
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(120, 9)) + 2.0, rng.normal(size=(120, 11)) - 1.0
    Y[:, :9] += X
    f = CKAFitter()
    for i in range(0, 120, chunk):
        f.update(torch.from_numpy(X[i : i + chunk]) if chunk == 7 else X[i : i + chunk], Y[i : i + chunk])
    res = f.result()
    assert res.n == 120
    assert res.linear == pytest.approx(_naive(X, Y, False), rel=1e-10)
    assert res.debiased == pytest.approx(_naive(X, Y, True), rel=1e-10)


def test_minibatch_close_to_full():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(4000, 20))
    Y = X @ rng.normal(size=(20, 20)) * 0.5 + rng.normal(size=(4000, 20))
    mb = MinibatchCKA()
    for i in range(0, 4000, 500):
        mb.update(X[i : i + 500], Y[i : i + 500])
    assert mb.result() == pytest.approx(debiased_cka(X, Y), abs=0.02)


def test_bootstrap_and_permutation():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(60, 6))
    Y = X + 0.5 * rng.normal(size=X.shape)
    boot = cka_bootstrap(X, Y, "linear", n_boot=200)
    assert boot.ci_low <= boot.value <= boot.ci_high
    assert cka_permutation_test(X, Y, "debiased", n_perm=200).p_value < 0.02
    assert cka_permutation_test(X, rng.normal(size=X.shape), "debiased", n_perm=200).p_value > 0.02
    with pytest.raises(DriftError, match="unknown CKA kind"):
        cka_bootstrap(X, Y, "cosine")
    with pytest.raises(DriftError, match="paired rows"):
        linear_cka(X, Y[:5])
