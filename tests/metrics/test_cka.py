"""CKA: published reference values, an independent Gram implementation, invariances, debiasing, streaming = batch
(numpy, torch, stacked layers), minibatch CKA, bootstrap intervals and permutation tests."""

import numpy as np
import pytest
import torch

import drift
from drift import DriftError
from drift.metrics.cka import (
    CKAFitter,
    MinibatchCKA,
    StackedCKAFitter,
    cka_bootstrap,
    cka_permutation_test,
    debiased_cka,
    linear_cka,
    rbf_cka,
)
from drift.metrics.cka_resampling import _Kernels

RBF = lambda x, y: rbf_cka(x, y, 1.0)  # noqa: E731


def _kornblith():
    """The inputs of Kornblith et al.'s CKA demo notebook (X drawn first, then Y)."""
    np.random.seed(1337)
    X = np.random.randn(100, 10)
    Y = np.random.randn(100, 10) + X
    return X, Y


def _naive(X, Y, kind="linear", threshold=1.0):
    """An independent implementation: (n, n) Gram matrices, the centring matrix H, and the textbook estimators."""
    n = len(X)
    X, Y = X - X.mean(0), Y - Y.mean(0)  # all three CKAs are translation invariant
    if kind == "rbf":
        def gram(A):
            sq = np.array([[np.sum((a - b) ** 2) for b in A] for a in A])
            return np.exp(-sq / (2 * threshold**2 * np.median(sq)))
    else:
        gram = lambda A: A @ A.T  # noqa: E731
    K, L = gram(X), gram(Y)
    if kind == "debiased":
        def hsic(a, b):
            a, b = a - np.diag(np.diag(a)), b - np.diag(np.diag(b))
            one = np.ones(n)
            return (np.trace(a @ b) + (one @ a @ one) * (one @ b @ one) / ((n - 1) * (n - 2))
                    - 2 / (n - 2) * one @ a @ b @ one) / (n * (n - 3))
    else:
        H = np.eye(n) - np.ones((n, n)) / n
        hsic = lambda a, b: np.trace(a @ H @ b @ H) / (n - 1) ** 2  # noqa: E731
    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def _pair(seed, n, d1, d2=None, offset=0.0):
    rng = np.random.default_rng(seed)
    d2 = d2 or d1
    X = rng.normal(size=(n, d1)) + offset
    Y = rng.normal(size=(n, d2)) - offset / 2
    m = min(d1, d2)
    Y[:, :m] += X[:, :m]
    return X, Y


def test_kornblith_reference_values():
    X, Y = _kornblith()
    assert linear_cka(X, Y) == pytest.approx(0.55761, abs=5e-6)
    assert debiased_cka(X, Y) == pytest.approx(0.51346, abs=5e-6)
    assert debiased_cka(torch.from_numpy(X), torch.from_numpy(Y)) == pytest.approx(debiased_cka(X, Y), rel=1e-12)
    for name in ("linear_cka", "debiased_cka"):
        assert type(getattr(drift, name)(X, Y)) is float
    assert type(drift.rbf_cka(X, Y, 0.5)) is float


@pytest.mark.parametrize("n,d1,d2", [(60, 8, 11), (30, 50, 40)])
@pytest.mark.parametrize("kind", ["linear", "debiased", "rbf"])
def test_against_independent_gram_implementation(kind, n, d1, d2):
    X, Y = _pair(0, n, d1, d2, offset=1.5)
    fn = {"linear": linear_cka, "debiased": debiased_cka, "rbf": lambda x, y: rbf_cka(x, y, 0.8)}[kind]
    assert fn(X, Y) == pytest.approx(_naive(X, Y, kind, threshold=0.8), rel=1e-10)


@pytest.mark.parametrize("fn", [linear_cka, debiased_cka, RBF])
def test_self_similarity_is_one(fn):
    X = np.random.default_rng(1).normal(size=(40, 12))
    assert fn(X, X) == pytest.approx(1.0, abs=1e-12)
    assert fn(torch.from_numpy(X).float(), X) == pytest.approx(1.0, abs=1e-12)


def test_invariances():
    X, Y = _pair(2, 80, 16)
    Q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(16, 16)))
    for fn in (linear_cka, debiased_cka, RBF):
        ref = fn(X, Y)
        assert fn(3.7 * X, Y) == pytest.approx(ref, rel=1e-10)  # isotropic scaling
        assert fn(X @ Q, Y) == pytest.approx(ref, rel=1e-10)  # orthogonal transform
        assert fn(X + 5.0, Y - 2.0) == pytest.approx(ref, rel=1e-10)  # translation


def test_debiased_is_near_zero_for_independent_data_with_n_le_d():
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(50, 500)), rng.normal(size=(50, 500))
    assert linear_cka(X, Y) > 0.5
    assert abs(debiased_cka(X, Y)) < 0.1


def test_feature_form_equals_gram_form():
    X, Y = _pair(4, 200, 5, 7)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    K, L = Xc @ Xc.T, Yc @ Yc.T
    gram = (K * L).sum() / (np.linalg.norm(K) * np.linalg.norm(L))
    assert linear_cka(X, Y) == pytest.approx(gram, rel=1e-12)  # n > d: feature form
    assert linear_cka(X[:6], Y[:6]) == pytest.approx(_naive(X[:6], Y[:6]), rel=1e-10)  # n <= d: Gram form


@pytest.mark.parametrize("chunk", [1, 7, 120])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_streaming_equals_batch(chunk, backend):
    X, Y = _pair(5, 120, 9, 11, offset=2.0)
    conv = (lambda a: torch.from_numpy(a)) if backend == "torch" else (lambda a: a)
    f = CKAFitter()
    for i in range(0, 120, chunk):
        f.update(conv(X[i : i + chunk]), conv(Y[i : i + chunk]))
    res = f.result()
    assert res.n == 120 and isinstance(res.linear, float) and isinstance(res.debiased, float)
    assert res.linear == pytest.approx(linear_cka(X, Y), rel=1e-10)
    assert res.debiased == pytest.approx(debiased_cka(X, Y), rel=1e-10)
    assert res.debiased == pytest.approx(_naive(X, Y, "debiased"), rel=1e-10)


def test_streaming_survives_a_large_mean():
    """Uncentred sums cancel catastrophically when activations share a large mean; the fitter shifts first."""
    X, Y = _pair(6, 3000, 16, offset=1e3)
    f = CKAFitter()
    for i in range(0, 3000, 256):
        f.update(X[i : i + 256].astype(np.float32), Y[i : i + 256].astype(np.float32))
    X32, Y32 = X.astype(np.float32).astype(np.float64), Y.astype(np.float32).astype(np.float64)
    Xc, Yc = X32 - X32.mean(0), Y32 - Y32.mean(0)
    assert f.result().linear == pytest.approx(linear_cka(Xc, Yc), rel=1e-9)
    assert f.result().debiased == pytest.approx(debiased_cka(Xc, Yc), rel=1e-9)


def test_stacked_fitter_equals_one_fitter_per_layer():
    layers = [_pair(10 + i, 90, 6, 8, offset=i) for i in range(3)]
    X, Y = np.stack([x for x, _ in layers]), np.stack([y for _, y in layers])
    stacked = StackedCKAFitter()
    for i in range(0, 90, 25):
        stacked.update(torch.from_numpy(X[:, i : i + 25]), Y[:, i : i + 25])
    res = stacked.result()
    assert res.n == 90 and len(res.linear) == 3
    for i, (x, y) in enumerate(layers):
        assert res.layer(i).linear == pytest.approx(linear_cka(x, y), rel=1e-10)
        assert res.debiased[i] == pytest.approx(debiased_cka(x, y), rel=1e-10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_streaming_on_gpu_equals_numpy():
    X, Y = _pair(7, 500, 32, 24, offset=3.0)
    f = StackedCKAFitter()
    for i in range(0, 500, 64):
        f.update(torch.from_numpy(X[None, i : i + 64]).float().cuda(), torch.from_numpy(Y[None, i : i + 64]).cuda())
    X32 = X.astype(np.float32).astype(np.float64)
    assert f.result().linear[0] == pytest.approx(linear_cka(X32, Y), rel=1e-10)
    assert f.result().debiased[0] == pytest.approx(debiased_cka(X32, Y), rel=1e-10)
    assert linear_cka(torch.from_numpy(X).cuda(), Y) == pytest.approx(linear_cka(X, Y), rel=1e-12)
    assert rbf_cka(torch.from_numpy(X).cuda(), Y) == pytest.approx(rbf_cka(X, Y), rel=1e-10)


def test_minibatch_close_to_full():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(4000, 20))
    Y = X @ rng.normal(size=(20, 20)) * 0.5 + rng.normal(size=(4000, 20))
    mb = MinibatchCKA()
    for i in range(0, 4000, 500):
        mb.update(X[i : i + 500], Y[i : i + 500])
    res = mb.result()
    assert (res.batches, res.n) == (8, 4000)
    assert res.value == pytest.approx(debiased_cka(X, Y), abs=0.02)


def _resampled_direct(x, y, idx, kind):
    """CKA of the resampled rows ``idx``, dropping the pairs made of two copies of one row."""
    k, l = _Kernels(x, y, "linear", 1.0).k, _Kernels(x, y, "linear", 1.0).l
    k, l = k[np.ix_(idx, idx)], l[np.ix_(idx, idx)]
    m = len(idx)
    copies = (idx[:, None] == idx[None, :]) & ~np.eye(m, dtype=bool)
    if kind == "debiased":
        def hsic(a, b):
            a, b = np.where(copies, 0.0, a), np.where(copies, 0.0, b)
            return _naive_hsic_u(a, b)
    else:
        H = np.eye(m) - 1.0 / m
        hsic = lambda a, b: np.where(copies, 0.0, (H @ a @ H) * (H @ b @ H)).sum()  # noqa: E731
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def _naive_hsic_u(a, b):
    n = len(a)
    a, b = a - np.diag(np.diag(a)), b - np.diag(np.diag(b))
    return (np.trace(a @ b) + a.sum() * b.sum() / ((n - 1) * (n - 2)) - 2 * a.sum(1) @ b.sum(1) / (n - 2)) / (
        n * (n - 3))


@pytest.mark.parametrize("kind", ["linear", "debiased"])
def test_bootstrap_draws_are_exact(kind):
    X, Y = _pair(9, 30, 5, 7, offset=1.0)
    kern = _Kernels(X, Y, kind, 1.0)
    ones, subset = np.ones(30), np.zeros(30)
    subset[::2] = 1  # distinct rows: exactly the CKA of those rows
    fn = linear_cka if kind == "linear" else debiased_cka
    assert kern.cka(ones[None])[0] == pytest.approx(fn(X, Y), rel=1e-10)
    assert kern.cka(subset[None])[0] == pytest.approx(fn(X[::2], Y[::2]), rel=1e-10)
    idx = np.random.default_rng(0).integers(0, 30, size=30)
    w = np.bincount(idx, minlength=30).astype(float)
    assert kern.cka(w[None])[0] == pytest.approx(_resampled_direct(X, Y, idx, kind), rel=1e-10)


@pytest.mark.parametrize("kind", ["linear", "debiased", "rbf"])
def test_bootstrap_interval_contains_the_value(kind):
    for n, d in [(60, 6), (40, 200)]:  # n > d and n <= d (where a plain bootstrap of debiased CKA fails)
        X = np.random.default_rng(n).normal(size=(n, d))
        Y = X + np.random.default_rng(d).normal(size=X.shape)
        boot = cka_bootstrap(X, Y, kind, n_boot=300)
        value = {"linear": linear_cka, "debiased": debiased_cka, "rbf": RBF}[kind](X, Y)
        assert boot.value == value and boot.n == n
        assert boot.ci_low <= boot.value <= boot.ci_high
        assert boot.ci_high - boot.ci_low < 0.5


@pytest.mark.parametrize("kind", ["linear", "debiased", "rbf"])
def test_permutation_test(kind):
    rng = np.random.default_rng(11)
    X = rng.normal(size=(60, 6))
    dependent = cka_permutation_test(X, X + 0.7 * rng.normal(size=X.shape), kind, n_perm=200)
    independent = cka_permutation_test(X, rng.normal(size=X.shape), kind, n_perm=200)
    assert dependent.p_value == pytest.approx(1 / 201) and dependent.n_perm == 200
    assert independent.p_value > 0.05


def test_user_errors():
    X, Y = _pair(12, 20, 3)
    with pytest.raises(DriftError, match="unknown CKA kind"):
        cka_bootstrap(X, Y, "cosine")
    with pytest.raises(DriftError, match="paired rows"):
        linear_cka(X, Y[:5])
    with pytest.raises(DriftError, match="NaN or inf"):
        debiased_cka(np.where(X > 1, np.nan, X), Y)
    with pytest.raises(DriftError, match="at least 4 rows"):
        debiased_cka(X[:3, :1].repeat(5, 1), Y[:3, :1].repeat(5, 1))
    with pytest.raises(DriftError, match="2-D"):
        CKAFitter().update(X[None], Y[None])
    with pytest.raises(DriftError, match="first chunk"):
        CKAFitter().update(X, Y).update(X[:, :2], Y)
    assert np.isnan(CKAFitter().update(X[:3], Y[:3]).result().debiased)
