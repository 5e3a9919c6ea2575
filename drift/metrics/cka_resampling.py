"""Bootstrap intervals and permutation tests for linear, debiased and RBF CKA.

Both work on the two (n, n) kernel matrices of the full sample, computed once (O(n^2) memory, like :func:`rbf_cka`):

* **Bootstrap.** Each draw resamples the rows jointly with replacement, represented by multiplicities ``w`` (how
  often each row was drawn), and is evaluated with matrix products over blocks of draws. Pairs made of two copies of
  the same row are left out: they act as extra diagonal entries, which inflate biased CKA and break the debiased
  estimator (a plain bootstrap of debiased CKA of independent n <= d data gives intervals around 0.9 for a value
  near 0). A draw of distinct rows (all ``w`` in {0, 1}) gives exactly the CKA of those rows. For RBF CKA the
  bandwidth stays at the full sample's value.
* **Permutation test.** The rows of ``Y`` are shuffled; the self-similarity terms do not change, so each
  permutation costs one pass over the kernel matrices. The p-value is one-sided ("more similar than chance").

Inputs may be numpy arrays or torch tensors; the computation runs in float64 numpy on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from drift.errors import DriftError
from drift.metrics.cka import Array, _checked, debiased_cka, linear_cka, rbf_cka, rbf_gram

KINDS = ("linear", "debiased", "rbf")
_HOST = np.empty(0)  # "convert to numpy" marker for as_float64-style conversion


@dataclass(frozen=True)
class CKAInterval:
    """A CKA value with a percentile bootstrap interval at level ``1 - alpha``."""

    value: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class CKAPermutation:
    """A CKA value with a one-sided permutation p-value (the share of shuffles at least as similar)."""

    value: float
    p_value: float
    n: int
    n_perm: int


class _Kernels:
    """The kernel matrices of one (X, Y) pair and the products every resampled CKA needs."""

    def __init__(self, x: np.ndarray, y: np.ndarray, kind: str, threshold: float) -> None:
        if kind == "rbf":
            k, l = rbf_gram(x, threshold), rbf_gram(y, threshold)
        else:
            x, y = x - x.mean(0), y - y.mean(0)
            k, l = x @ x.T, y @ y.T
        self.unbiased = kind == "debiased"
        if self.unbiased:  # K~, L~: the unbiased estimator ignores the diagonal
            np.fill_diagonal(k, 0.0)
            np.fill_diagonal(l, 0.0)
        self.k, self.l = k, l
        self.kk, self.ll = k * k, l * l

    def hsic(self, w: np.ndarray, k: np.ndarray, l: np.ndarray, kw: np.ndarray, lw: np.ndarray,
             kl: np.ndarray) -> np.ndarray:
        """HSIC of each draw (rows of ``w``), leaving out pairs of two copies of one row.

        ``kw = w K``, ``lw = w L`` and ``kl = K * L`` (elementwise) are passed in so that they are computed once.
        """
        m = w.sum(1)
        t = ((w @ kl) * w).sum(1)  # sum_ab w_a w_b K_ab L_ab
        cross = (w * kw * lw).sum(1)  # sum_a w_a (Kw)_a (Lw)_a
        sk, sl = (kw * w).sum(1), (lw * w).sum(1)  # w'Kw, w'Lw
        if self.unbiased:
            return (t + sk * sl / ((m - 1) * (m - 2)) - 2.0 * cross / (m - 2)) / (m * (m - 3))
        # Biased HSIC with weighted centring, minus the copies' pairs: each row's own pair counts w_a, not w_a^2.
        kc = np.diag(k)[None] - 2.0 * kw / m[:, None] + (sk / m**2)[:, None]
        lc = np.diag(l)[None] - 2.0 * lw / m[:, None] + (sl / m**2)[:, None]
        corr = ((w * w - w) * kc * lc).sum(1)
        return (t - 2.0 * cross / m + sk * sl / m**2 - corr) / m**2

    def cka(self, w: np.ndarray) -> np.ndarray:
        """CKA of each draw given as multiplicities, shape (draws, n)."""
        kw, lw = w @ self.k, w @ self.l
        hxy = self.hsic(w, self.k, self.l, kw, lw, self.k * self.l)
        hxx = self.hsic(w, self.k, self.k, kw, kw, self.kk)
        hyy = self.hsic(w, self.l, self.l, lw, lw, self.ll)
        with np.errstate(invalid="ignore", divide="ignore"):
            return hxy / np.sqrt(hxx * hyy)


def _prepare(X: Array, Y: Array, kind: str) -> tuple[np.ndarray, np.ndarray, Callable[..., float]]:
    if kind not in KINDS:
        raise DriftError(f"unknown CKA kind {kind!r}: choose one of {', '.join(KINDS)}")
    x, y = _checked(X, Y, 2, _HOST)
    need = 4 if kind == "debiased" else 2
    if x.shape[0] < need:
        raise DriftError(f"{kind} CKA needs at least {need} rows, got {x.shape[0]}")
    fn = {"linear": linear_cka, "debiased": debiased_cka, "rbf": rbf_cka}[kind]
    return x, y, fn


def cka_bootstrap(X: Array, Y: Array, kind: str = "linear", n_boot: int = 1000, alpha: float = 0.05, seed: int = 0,
                  threshold: float = 1.0) -> CKAInterval:
    """CKA with a percentile bootstrap interval (rows resampled jointly; see the module notes).

    Args:
        X: (n, d1) activations.
        Y: (n, d2) activations of the same prompts, in the same order.
        kind: ``linear``, ``debiased`` or ``rbf``.
        n_boot: Bootstrap draws.
        alpha: The interval covers ``1 - alpha``.
        seed: Seed of the resampling.
        threshold: RBF bandwidth multiplier (``rbf`` only).

    Returns:
        The full-sample value (as :func:`linear_cka`, :func:`debiased_cka` or :func:`rbf_cka`) and the interval.
    """
    x, y, fn = _prepare(X, Y, kind)
    if n_boot < 1 or not 0 < alpha < 1:
        raise DriftError(f"cka_bootstrap needs n_boot >= 1 and 0 < alpha < 1, got {n_boot} and {alpha}")
    value = fn(x, y, threshold) if kind == "rbf" else fn(x, y)
    kernels, n = _Kernels(x, y, kind, threshold), x.shape[0]
    rng = np.random.default_rng(seed)
    block = max(1, min(n_boot, 2**21 // n))
    draws = []
    for start in range(0, n_boot, block):
        w = rng.multinomial(n, np.full(n, 1.0 / n), size=min(block, n_boot - start)).astype(np.float64)
        draws.append(kernels.cka(w))
    values = np.concatenate(draws)
    if not np.isfinite(values).any():
        return CKAInterval(value, float("nan"), float("nan"), n)
    lo, hi = np.nanquantile(values, [alpha / 2, 1 - alpha / 2])
    return CKAInterval(value, float(lo), float(hi), n)


def cka_permutation_test(X: Array, Y: Array, kind: str = "linear", n_perm: int = 1000, seed: int = 0,
                         threshold: float = 1.0) -> CKAPermutation:
    """CKA with a one-sided permutation p-value for "more similar than chance" (rows of ``Y`` shuffled).

    Args:
        X: (n, d1) activations.
        Y: (n, d2) activations of the same prompts, in the same order.
        kind: ``linear``, ``debiased`` or ``rbf``.
        n_perm: Permutations.
        seed: Seed of the permutations.
        threshold: RBF bandwidth multiplier (``rbf`` only; shuffling rows leaves the bandwidth unchanged).

    Returns:
        The value and ``p = (1 + #{permuted CKA >= value}) / (1 + n_perm)``.
    """
    x, y, fn = _prepare(X, Y, kind)
    if n_perm < 1:
        raise DriftError(f"cka_permutation_test needs n_perm >= 1, got {n_perm}")
    value = fn(x, y, threshold) if kind == "rbf" else fn(x, y)
    kern, n = _Kernels(x, y, kind, threshold), x.shape[0]
    one = np.ones((1, n))
    k1, l1 = kern.k.sum(1), kern.l.sum(1)
    hxx = kern.hsic(one, kern.k, kern.k, k1[None], k1[None], kern.kk)
    hyy = kern.hsic(one, kern.l, kern.l, l1[None], l1[None], kern.ll)
    rng = np.random.default_rng(seed)
    null = np.empty(n_perm)
    for i in range(n_perm):
        p = rng.permutation(n)
        lp = kern.l[np.ix_(p, p)]
        null[i] = kern.hsic(one, kern.k, lp, k1[None], l1[p][None], kern.k * lp)[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        null = null / np.sqrt(hxx * hyy)
    p_value = (1 + int(np.sum(null >= value - 1e-12 * abs(value)))) / (1 + n_perm)
    return CKAPermutation(value, float(p_value), n, n_perm)
