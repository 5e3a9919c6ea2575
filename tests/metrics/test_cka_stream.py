"""Streaming CKA precision: float32 products match float64 within the documented 1e-6 (large common offsets, outlier
features, drifting means, an outlying first chunk, fewer rows than features), float64 matches the batch functions,
the "auto" rule, the torch backend (as used on GPUs) equals numpy, and stacked float32 equals one fitter per layer."""

import numpy as np
import pytest
import torch

from drift import DriftError
from drift.metrics.cka import debiased_cka, linear_cka
from drift.metrics.cka_stream import AUTO_MIN_WIDTH, CKAFitter, StackedCKAFitter, _CKASums

TOL32 = 1e-6  # documented relative error of precision="float32" against float64


def _data(kind: str, n: int = 1500, d: int = 96, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 2.0
    Y = X + 0.5 * rng.normal(size=(n, d)) + 0.5
    if kind == "offset":  # a large common offset (float32 keeps ~4 significant digits of the signal)
        X, Y = X + 1e3, Y - 1e3
    elif kind == "feature_offsets":
        off = rng.normal(0, 1e4, size=d)
        X, Y = X + off, Y + off
    elif kind == "outlier_features":  # "massive activations": a few features 300x larger
        scale = np.ones(d)
        scale[:3] = 300.0
        X, Y = X * scale + 50.0, Y * scale + 50.0
    elif kind == "drifting_means":  # every chunk's mean elsewhere (a random walk of 3 sd per 250 rows)
        walk = np.repeat(rng.normal(0, 3, size=(n // 250 + 1, d)).cumsum(0), 250, 0)[:n]
        X, Y = X + walk, Y + walk
    elif kind == "outlier_first_row":  # the reference point starts 1000 sd away from everything else
        X[0] += 1000.0
        Y[0] -= 1000.0
    return X.astype(np.float32), Y.astype(np.float32)


def _fit(X, Y, precision, starts=(0, 1, 251, 700, 1100)):
    f = CKAFitter(precision=precision)
    bounds = [*starts, len(X)]
    for a, b in zip(bounds, bounds[1:]):
        f.update(X[a:b], Y[a:b])
    return f


KINDS = ["plain", "offset", "feature_offsets", "outlier_features", "drifting_means", "outlier_first_row"]


@pytest.mark.parametrize("kind", KINDS)
def test_float32_products_match_float64_within_tolerance(kind):
    X, Y = _data(kind)
    exact, fast = _fit(X, Y, "float64"), _fit(X, Y, "float32")
    assert (exact.precision, fast.precision) == ("float64", "float32")
    r64, r32 = exact.result(), fast.result()
    assert r32.linear == pytest.approx(r64.linear, rel=TOL32)
    assert r32.debiased == pytest.approx(r64.debiased, rel=TOL32)
    # and the float64 path is the batch value (the first row 1000 sd away forces a rebase of every sum)
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    assert r64.linear == pytest.approx(linear_cka(X64, Y64), rel=1e-10)
    assert r64.debiased == pytest.approx(debiased_cka(X64, Y64), rel=1e-9)


def test_auto_precision_rule():
    rng = np.random.default_rng(1)
    wide = rng.normal(size=(8, AUTO_MIN_WIDTH)).astype(np.float32)
    narrow = wide[:, : AUTO_MIN_WIDTH - 1]
    assert CKAFitter().update(wide, wide).precision == "float32"
    assert CKAFitter().update(wide.astype(np.float16), wide).precision == "float32"
    assert CKAFitter().update(narrow, narrow).precision == "float64"
    assert CKAFitter().update(wide.astype(np.float64), wide).precision == "float64"
    assert CKAFitter(precision="float32").update(narrow, narrow).precision == "float32"
    assert CKAFitter(precision="float64").update(wide, wide).precision == "float64"
    assert CKAFitter().precision is None
    with pytest.raises(DriftError, match="unknown CKA precision"):
        CKAFitter(precision="float16")


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_torch_backend_equals_numpy(precision):
    """The tensor code path (taken for tensors on a GPU) run on CPU tensors, rebase included."""
    X, Y = _data("outlier_first_row", n=600, d=40)
    sums, ref = _CKASums(precision), _fit(X, Y, precision, starts=(0, 1, 300)).result()
    for a, b in ((0, 1), (1, 300), (300, 600)):
        sums.update(torch.from_numpy(X[a:b]), torch.from_numpy(Y[a:b]))
    linear, debiased = (float(v) for v in sums.estimates())
    assert linear == pytest.approx(ref.linear, rel=1e-6 if precision == "float32" else 1e-10)
    assert debiased == pytest.approx(ref.debiased, rel=1e-6 if precision == "float32" else 1e-10)


def test_stacked_float32_equals_one_fitter_per_layer_and_result_is_repeatable():
    layers = [_data(kind, n=400, d=48, seed=i) for i, kind in enumerate(["plain", "offset", "outlier_features"])]
    X, Y = np.stack([x for x, _ in layers]), np.stack([y for _, y in layers])
    stacked = StackedCKAFitter(precision="float32")
    for i in range(0, 400, 128):
        stacked.update(X[:, i : i + 128], torch.from_numpy(Y[:, i : i + 128]))
        first = stacked.result()
    assert stacked.result() == first  # result() leaves the sums as they were
    for i, (x, y) in enumerate(layers):
        single = _fit(x, y, "float32", starts=(0, 128, 256, 384)).result()
        assert first.linear[i] == pytest.approx(single.linear, rel=TOL32)
        assert first.debiased[i] == pytest.approx(single.debiased, rel=TOL32)


def test_empty_chunks_are_ignored_and_half_precision_is_accepted():
    X, Y = _data("plain", n=300, d=24)
    f = CKAFitter(precision="float32")
    f.update(X[:0], Y[:0])
    assert f.n == 0 and f.precision == "float32"
    f.update(X.astype(np.float16), torch.from_numpy(Y).bfloat16())
    assert f.n == 300 and abs(f.result().linear - linear_cka(X, Y)) < 1e-2  # half-precision inputs, rounded


@pytest.mark.parametrize("n", [40, 100, 300])
def test_float32_with_fewer_rows_than_features(n):
    """Per-language subsets have n <= d, where debiased CKA cancels the diagonal terms (~d/n of tr(KL)), amplifying
    float32 rounding by ~d/n (3.4e-6 at n = 40, d = 1024 with all-float32 products): the first d/4 rows get float64
    products, so float32 stays within the tolerance, and is exactly the float64 value up to d/4 rows."""
    d = 1024
    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, d)) + 1e3
    Y = (X + rng.normal(size=X.shape)).astype(np.float32)
    X = X.astype(np.float32)
    starts = tuple(range(0, n, 64))
    r64, r32 = _fit(X, Y, "float64", starts).result(), _fit(X, Y, "float32", starts).result()
    assert r32.debiased == pytest.approx(r64.debiased, rel=TOL32)
    assert r32.linear == pytest.approx(r64.linear, rel=TOL32)
    if n <= d // 4:
        assert (r32.linear, r32.debiased) == (r64.linear, r64.debiased)
