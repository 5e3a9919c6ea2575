"""Centered kernel alignment: linear, debiased (unbiased HSIC) and RBF, batch and streaming.

* ``linear_cka``: Kornblith et al. (2019); the feature-space form ``||Yc' Xc||^2 / (||Xc' Xc|| ||Yc' Yc||)`` when
  n > d, the Gram form otherwise.
* ``debiased_cka``: CKA from the unbiased HSIC estimator of Song et al. (2012) on linear Gram matrices. Unlike the
  biased estimator it is near 0 for independent data even when n <= d (per-language subsets).
* ``rbf_cka``: Gaussian kernel with bandwidth ``threshold * median distance``; O(n^2) memory.
* :class:`CKAFitter`: linear and debiased CKA from d x d and d-vector sums, exact while streaming over chunks, with
  memory independent of n. :class:`MinibatchCKA` is the minibatch estimator of Nguyen et al. (2021).

Everything is computed in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drift.errors import DriftError


def _f64(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise DriftError(f"CKA needs 2-D arrays (n, d), got shape {x.shape}")
    return x


def _pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = _f64(x), _f64(y)
    if x.shape[0] != y.shape[0]:
        raise DriftError(f"CKA needs paired rows: {x.shape[0]} vs {y.shape[0]}")
    return x, y


def linear_cka(X, Y) -> float:
    """Linear CKA of two (n, d1) and (n, d2) arrays (numpy or torch)."""
    x, y = _pair(X, Y)
    x, y = x - x.mean(0), y - y.mean(0)
    if x.shape[0] > max(x.shape[1], y.shape[1]):
        num = np.linalg.norm(y.T @ x) ** 2
        den = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    else:
        kx, ky = x @ x.T, y @ y.T
        num, den = (kx * ky).sum(), np.linalg.norm(kx) * np.linalg.norm(ky)
    return float(num / den)


def _hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:
    """Unbiased HSIC (Song et al. 2012) of two Gram matrices; the diagonals are ignored."""
    n = k.shape[0]
    if n < 4:
        raise DriftError(f"debiased CKA needs at least 4 rows, got {n}")
    k, l = k.copy(), l.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    kl = k @ l
    total = np.trace(kl) + k.sum() * l.sum() / ((n - 1) * (n - 2)) - 2.0 * kl.sum() / (n - 2)
    return float(total / (n * (n - 3)))


def debiased_cka(X, Y) -> float:
    """Debiased linear CKA (unbiased HSIC on linear Gram matrices)."""
    x, y = _pair(X, Y)
    return CKAFitter().update(x, y).result().debiased


def _rbf_gram(x: np.ndarray, threshold: float) -> np.ndarray:
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    sigma2 = threshold**2 * np.median(d2)
    if sigma2 == 0:
        raise DriftError("RBF CKA: all rows are identical (median distance 0)")
    return np.exp(-d2 / (2 * sigma2))


def _center(k: np.ndarray) -> np.ndarray:
    return k - k.mean(0) - k.mean(1)[:, None] + k.mean()


def rbf_cka(X, Y, threshold: float = 1.0) -> float:
    """CKA with Gaussian kernels, bandwidth ``threshold`` times the median pairwise distance (biased HSIC)."""
    x, y = _pair(X, Y)
    kx, ky = _center(_rbf_gram(x, threshold)), _center(_rbf_gram(y, threshold))
    return float((kx * ky).sum() / (np.linalg.norm(kx) * np.linalg.norm(ky)))


@dataclass(frozen=True)
class CKAResult:
    """Linear and debiased CKA of the rows seen so far."""

    linear: float
    debiased: float
    n: int


class CKAFitter:
    """Exact linear and debiased CKA from running sums (memory O(d^2), independent of n).

    With ``K = X X'`` and ``L = Y Y'`` (uncentred), every term of both estimators is a function of ``X'X``, ``Y'Y``,
    ``Y'X``, the column sums, and sums involving the row norms, all of which add up over chunks.

    Example:
        >>> f = CKAFitter()
        >>> for xb, yb in chunks:  # doctest: +SKIP
        ...     f.update(xb, yb)
        >>> f.result().debiased  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.n = 0
        self._s: dict[str, np.ndarray | float] = {}

    def _add(self, key: str, value) -> None:
        self._s[key] = self._s[key] + value if key in self._s else value

    def update(self, X, Y) -> CKAFitter:
        """Add paired rows (n_chunk, d1) and (n_chunk, d2)."""
        x, y = _pair(X, Y)
        nx, ny = (x * x).sum(1), (y * y).sum(1)
        self.n += x.shape[0]
        for key, value in (
            ("xx", x.T @ x), ("yy", y.T @ y), ("yx", y.T @ x), ("sx", x.sum(0)), ("sy", y.sum(0)),
            ("nx", nx.sum()), ("ny", ny.sum()), ("nx2", (nx * nx).sum()), ("ny2", (ny * ny).sum()),
            ("nxny", (nx * ny).sum()), ("x_ny", ny @ x), ("y_nx", nx @ y), ("x_nx", nx @ x), ("y_ny", ny @ y),
        ):
            self._add(key, value)
        return self

    def _linear(self) -> float:
        s, n = self._s, self.n
        mx, my = s["sx"] / n, s["sy"] / n
        cxx = s["xx"] - n * np.outer(mx, mx)
        cyy = s["yy"] - n * np.outer(my, my)
        cyx = s["yx"] - n * np.outer(my, mx)
        return float(np.linalg.norm(cyx) ** 2 / (np.linalg.norm(cxx) * np.linalg.norm(cyy)))

    def _hsic(self, tr_kl: float, diag_kl: float, sum_k: float, diag_k: float, sum_l: float, diag_l: float,
              k1l1: float, k1_diag_l: float, diag_k_l1: float) -> float:
        """Unbiased HSIC from sums over the uncentred Gram matrices K and L (K~, L~: zero diagonals).

        ``tr_kl`` = tr(KL), ``diag_kl`` = sum K_ii L_ii, ``sum_k`` = 1'K1, ``diag_k`` = tr K, ``k1l1`` =
        sum_i (K1)_i (L1)_i, ``k1_diag_l`` = sum_i (K1)_i L_ii, ``diag_k_l1`` = sum_i K_ii (L1)_i.
        """
        n = self.n
        tr = tr_kl - diag_kl  # tr(K~ L~)
        ones = (sum_k - diag_k) * (sum_l - diag_l)  # (1'K~1)(1'L~1)
        cross = k1l1 - k1_diag_l - diag_k_l1 + diag_kl  # 1'K~L~1
        return float((tr + ones / ((n - 1) * (n - 2)) - 2.0 * cross / (n - 2)) / (n * (n - 3)))

    def _hsic_pair(self, which: str) -> float:
        s = self._s
        sx, sy = s["sx"], s["sy"]
        if which == "xy":
            return self._hsic(np.linalg.norm(s["yx"]) ** 2, s["nxny"], sx @ sx, s["nx"], sy @ sy, s["ny"],
                              sy @ s["yx"] @ sx, s["x_ny"] @ sx, s["y_nx"] @ sy)
        gram, v, norms, norms2, weighted = (
            (s["xx"], sx, s["nx"], s["nx2"], s["x_nx"]) if which == "xx" else (s["yy"], sy, s["ny"], s["ny2"], s["y_ny"])
        )
        kv = weighted @ v
        return self._hsic(np.linalg.norm(gram) ** 2, norms2, v @ v, norms, v @ v, norms, v @ gram @ v, kv, kv)

    def result(self) -> CKAResult:
        """Frozen linear and debiased CKA (debiased is NaN below 4 rows)."""
        if self.n < 2:
            raise DriftError(f"CKA needs at least 2 rows, got {self.n}")
        debiased = float("nan")
        if self.n >= 4:
            hxy, hxx, hyy = self._hsic_pair("xy"), self._hsic_pair("xx"), self._hsic_pair("yy")
            debiased = hxy / np.sqrt(hxx * hyy)
        return CKAResult(self._linear(), float(debiased), self.n)


class MinibatchCKA:
    """Minibatch CKA (Nguyen et al. 2021): mean unbiased HSIC over minibatches, then normalised."""

    def __init__(self) -> None:
        self._sums = np.zeros(3)
        self.batches = 0

    def update(self, X, Y) -> MinibatchCKA:
        """Add one minibatch of paired rows (at least 4)."""
        x, y = _pair(X, Y)
        k, l = x @ x.T, y @ y.T
        self._sums += [_hsic_unbiased(k, l), _hsic_unbiased(k, k), _hsic_unbiased(l, l)]
        self.batches += 1
        return self

    def result(self) -> float:
        """The minibatch CKA estimate."""
        if not self.batches:
            raise DriftError("MinibatchCKA has seen no batches")
        hxy, hxx, hyy = self._sums / self.batches
        return float(hxy / np.sqrt(hxx * hyy))


_KINDS = {"linear": linear_cka, "debiased": debiased_cka, "rbf": rbf_cka}


@dataclass(frozen=True)
class CKAInterval:
    """A CKA value with a percentile bootstrap interval or a permutation p-value."""

    value: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int


def _kind(kind: str):
    if kind not in _KINDS:
        raise DriftError(f"unknown CKA kind {kind!r}: choose linear, debiased or rbf")
    return _KINDS[kind]


def cka_bootstrap(X, Y, kind: str = "linear", n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> CKAInterval:
    """CKA with a percentile bootstrap interval (rows resampled jointly)."""
    fn = _kind(kind)
    x, y = _pair(X, Y)
    rng = np.random.default_rng(seed)
    values = [fn(x[idx], y[idx]) for idx in rng.integers(0, len(x), size=(n_boot, len(x)))]
    lo, hi = np.nanquantile(values, [alpha / 2, 1 - alpha / 2])
    return CKAInterval(fn(x, y), float(lo), float(hi), float("nan"), len(x))


def cka_permutation_test(X, Y, kind: str = "linear", n_perm: int = 1000, seed: int = 0) -> CKAInterval:
    """CKA with a one-sided permutation p-value (rows of Y shuffled) for "more similar than chance"."""
    fn = _kind(kind)
    x, y = _pair(X, Y)
    rng = np.random.default_rng(seed)
    value = fn(x, y)
    null = np.array([fn(x, y[rng.permutation(len(y))]) for _ in range(n_perm)])
    p = (1 + np.sum(null >= value)) / (1 + n_perm)
    return CKAInterval(value, float("nan"), float("nan"), float(p), len(x))
