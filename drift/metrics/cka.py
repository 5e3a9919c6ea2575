"""Centered kernel alignment: linear, debiased (unbiased HSIC) and RBF, batch and streaming.

* :func:`linear_cka`: Kornblith et al. (2019); the feature-space form ``||Yc'Xc||^2 / (||Xc'Xc|| ||Yc'Yc||)`` when
  n > d, the Gram form otherwise.
* :func:`debiased_cka`: CKA from the unbiased HSIC estimator of Song et al. (2012) on linear Gram matrices. Unlike
  the biased estimator it is near 0 for independent data even when n <= d (per-language subsets).
* :func:`rbf_cka`: Gaussian kernels with ``sigma^2 = threshold^2 * median squared distance``; O(n^2) memory.
* :class:`CKAFitter` and :class:`StackedCKAFitter` (many layers at once): linear and debiased CKA from d x d and
  d-vector sums, equal to the batch values while streaming over chunks, with memory independent of n.
* :class:`MinibatchCKA`: the minibatch estimator of Nguyen, Raghu & Kornblith (2021) for very large n.
* :func:`cka_bootstrap` and :func:`cka_permutation_test` (in :mod:`drift.metrics.cka_resampling`).

Inputs are numpy arrays or torch tensors; torch inputs are computed as float64 tensors on their own device (GPU
included). Every reported value is computed in float64 and returned as a Python float.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from drift.errors import DriftError

Array = Any  # numpy.ndarray or torch.Tensor


# ----------------------------------------------------------------------------------------------- array helpers
def _is_torch(a: Any) -> bool:
    return type(a).__module__.split(".")[0] == "torch"


def as_float64(a: Any, like: Array | None = None) -> Array:
    """``a`` as float64: a torch tensor on ``like``'s device when ``like`` is a tensor (or ``a`` is one), else numpy."""
    if like is None:
        like = a
    if _is_torch(like):
        import torch

        return torch.as_tensor(a).detach().to(device=like.device, dtype=torch.float64)
    if _is_torch(a):
        a = a.detach().cpu()
    return np.asarray(a, dtype=np.float64)


def _checked(x: Any, y: Any, ndim: int, like: Array | None = None) -> tuple[Array, Array]:
    """Paired float64 arrays of ``ndim`` dimensions (rows on axis -2), with finite values."""
    x = as_float64(x, like)
    y = as_float64(y, x)
    if x.ndim != ndim or y.ndim != ndim:
        want = "(n, d)" if ndim == 2 else "(layers, n, d)"
        raise DriftError(f"CKA needs {ndim}-D arrays {want}, got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[:-1] != y.shape[:-1]:
        raise DriftError(f"CKA needs paired rows: shapes {tuple(x.shape)} and {tuple(y.shape)} differ before the "
                         "last axis (pass the same prompts, in the same order, to both)")
    if not (bool(_finite(x)) and bool(_finite(y))):
        raise DriftError("CKA inputs contain NaN or inf: check the activations (fp16 overflow?) before comparing")
    return x, y


def _finite(a: Array) -> Any:
    return a.isfinite().all() if _is_torch(a) else np.isfinite(a).all()


def _t(a: Array) -> Array:
    return a.swapaxes(-1, -2)


def _dot(a: Array, b: Array) -> Array:
    return (a * b).sum(-1)


def _fro2(a: Array) -> Array:
    return (a * a).sum((-2, -1))


def _outer(a: Array, b: Array) -> Array:
    return a[..., :, None] * b[..., None, :]


def _vecmat(v: Array, m: Array) -> Array:
    """``v' M`` over leading dimensions."""
    return (v[..., None, :] @ m)[..., 0, :]


def _diag(a: Array) -> Array:
    return a.diagonal(0, -2, -1)


def _center_gram(k: Array) -> Array:
    return k - k.mean(0)[None, :] - k.mean(1)[:, None] + k.mean()


def _median(a: Array) -> float:
    """Median of every entry (the mean of the two middle values for an even count, as numpy)."""
    if not _is_torch(a):
        return float(np.median(a))
    flat = a.reshape(-1)
    m = flat.numel()
    lo, hi = flat.kthvalue((m + 1) // 2).values, flat.kthvalue(m // 2 + 1).values
    return float((lo + hi) / 2)


# ---------------------------------------------------------------------------------------------- batch CKA
def linear_cka(X: Array, Y: Array) -> float:
    """Linear CKA of paired (n, d1) and (n, d2) arrays (numpy or torch), in float64.

    Args:
        X: Activations of the first model, one row per prompt.
        Y: Activations of the second model for the same prompts, in the same order.

    Returns:
        CKA in [0, 1]; 1 for representations equal up to an orthogonal map, isotropic scaling and translation.
    """
    x, y = _checked(X, Y, 2)
    x, y = x - x.mean(0), y - y.mean(0)
    if x.shape[0] > max(x.shape[1], y.shape[1]):
        num, dx, dy = _fro2(_t(y) @ x), _fro2(_t(x) @ x), _fro2(_t(y) @ y)
    else:
        k, l = x @ _t(x), y @ _t(y)
        num, dx, dy = (k * l).sum(), _fro2(k), _fro2(l)
    return float(num / (dx * dy) ** 0.5)


def hsic_unbiased_gram(k: Array, l: Array) -> Array:
    """Unbiased HSIC (Song et al. 2012) of two (n, n) Gram matrices; their diagonals are ignored."""
    n = k.shape[-1]
    if n < 4:
        raise DriftError(f"debiased CKA needs at least 4 rows, got {n}")
    dk, dl = _diag(k), _diag(l)
    tr = (k * l).sum((-2, -1)) - _dot(dk, dl)  # tr(K~ L~), K~ = K with a zero diagonal
    k1, l1 = k.sum(-1) - dk, l.sum(-1) - dl  # K~ 1, L~ 1
    ones = k1.sum(-1) * l1.sum(-1) / ((n - 1) * (n - 2))
    return (tr + ones - 2.0 * _dot(k1, l1) / (n - 2)) / (n * (n - 3))


def debiased_cka(X: Array, Y: Array) -> float:
    """Debiased linear CKA (unbiased HSIC on linear Gram matrices) of paired (n, d1) and (n, d2) arrays.

    Uses d x d sums when n > d and (n, n) Gram matrices otherwise; needs n >= 4.
    """
    x, y = _checked(X, Y, 2)
    if x.shape[0] > max(x.shape[1], y.shape[1]):
        return CKAFitter().update(x, y).result().debiased
    x, y = x - x.mean(0), y - y.mean(0)  # translation does not change the estimator; it improves rounding
    k, l = x @ _t(x), y @ _t(y)
    return float(hsic_unbiased_gram(k, l) / (hsic_unbiased_gram(k, k) * hsic_unbiased_gram(l, l)) ** 0.5)


def rbf_gram(x: Array, threshold: float = 1.0) -> Array:
    """Gaussian Gram matrix ``exp(-D^2 / (2 threshold^2 median(D^2)))`` over the rows of ``x`` (Kornblith et al.)."""
    x = x - x.mean(0)
    g = x @ _t(x)
    sq = _diag(g)
    d2 = sq[:, None] + sq[None, :] - 2.0 * g
    sigma2 = threshold**2 * _median(d2)
    if not sigma2 > 0:
        raise DriftError("RBF CKA: the median pairwise distance is 0 (most rows are identical); use linear_cka")
    return (-d2 / (2.0 * sigma2)).exp() if _is_torch(d2) else np.exp(-d2 / (2.0 * sigma2))


def rbf_cka(X: Array, Y: Array, threshold: float = 1.0) -> float:
    """CKA with Gaussian kernels and the biased HSIC (Kornblith et al. 2019), in float64; O(n^2) memory.

    Args:
        X: (n, d1) activations.
        Y: (n, d2) activations of the same prompts.
        threshold: Bandwidth as a multiple of the median pairwise distance (``sigma = threshold * median``).
    """
    x, y = _checked(X, Y, 2)
    k, l = _center_gram(rbf_gram(x, threshold)), _center_gram(rbf_gram(y, threshold))
    return float((k * l).sum() / (_fro2(k) * _fro2(l)) ** 0.5)


# ------------------------------------------------------------------------------------------- streaming CKA
_SUMS = ("xx", "yy", "yx", "sx", "sy", "nx", "ny", "nx2", "ny2", "nxny", "x_nx", "x_ny", "y_nx", "y_ny")


def _chunk_sums(x: Array, y: Array):
    """The terms of ``_SUMS`` for one chunk, in order, computed lazily."""
    nx, ny = _dot(x, x), _dot(y, y)  # squared row norms = diagonals of K = XX' and L = YY'
    yield _t(x) @ x
    yield _t(y) @ y
    yield _t(y) @ x
    yield from (x.sum(-2), y.sum(-2), nx.sum(-1), ny.sum(-1), _dot(nx, nx), _dot(ny, ny), _dot(nx, ny))
    yield from (_vecmat(nx, x), _vecmat(ny, x), _vecmat(nx, y), _vecmat(ny, y))


class _CKASums:
    """Running sums that determine linear and debiased CKA, over any leading (layer) dimensions.

    Rows are shifted by the first chunk's mean (both estimators are translation invariant), which keeps the
    uncentred sums from cancelling catastrophically when activations have a large mean.
    """

    def __init__(self) -> None:
        self.n = 0
        self._ref: tuple[Array, Array] | None = None
        self._s: dict[str, Array] = {}

    @property
    def like(self) -> Array | None:
        """An array of the backend and device the sums live on (None before the first chunk)."""
        return None if self._ref is None else self._ref[0]

    def update(self, x: Array, y: Array) -> None:
        if self._ref is None:
            self._ref = (x.mean(-2)[..., None, :], y.mean(-2)[..., None, :])
        elif x.shape[:-2] != self._ref[0].shape[:-2] or x.shape[-1] != self._ref[0].shape[-1] or \
                y.shape[-1] != self._ref[1].shape[-1]:
            raise DriftError(f"chunk shapes {tuple(x.shape)}, {tuple(y.shape)} do not match the first chunk's")
        x, y = x - self._ref[0], y - self._ref[1]
        for key, value in zip(_SUMS, _chunk_sums(x, y)):  # one d x d product alive at a time
            if key in self._s:
                self._s[key] += value  # in place: no second d x d temporary
            else:
                self._s[key] = value
        self.n += x.shape[-2]

    def linear(self) -> Array:
        s, n = self._s, self.n
        cxx = s["xx"] - _outer(s["sx"], s["sx"]) / n
        cyy = s["yy"] - _outer(s["sy"], s["sy"]) / n
        cyx = s["yx"] - _outer(s["sy"], s["sx"]) / n
        return _fro2(cyx) / (_fro2(cxx) * _fro2(cyy)) ** 0.5

    def _hsic(self, tr_kl, diag_kl, sum_k, tr_k, sum_l, tr_l, k1l1, k1_dl, dk_l1) -> Array:
        """Unbiased HSIC from sums over the uncentred K and L (K~, L~: the same with zero diagonals).

        ``tr_kl`` = tr(KL), ``diag_kl`` = sum_i K_ii L_ii, ``sum_k`` = 1'K1, ``tr_k`` = tr K, ``k1l1`` =
        sum_i (K1)_i (L1)_i, ``k1_dl`` = sum_i (K1)_i L_ii, ``dk_l1`` = sum_i K_ii (L1)_i.
        """
        n = self.n
        tr = tr_kl - diag_kl  # tr(K~ L~)
        ones = (sum_k - tr_k) * (sum_l - tr_l)  # (1'K~1)(1'L~1)
        cross = k1l1 - k1_dl - dk_l1 + diag_kl  # 1'K~L~1
        return (tr + ones / ((n - 1) * (n - 2)) - 2.0 * cross / (n - 2)) / (n * (n - 3))

    def _hsic_self(self, gram: Array, v: Array, norms: Array, norms2: Array, weighted: Array) -> Array:
        kv = _dot(weighted, v)
        vkv = _dot(_vecmat(v, gram), v)
        return self._hsic(_fro2(gram), norms2, _dot(v, v), norms, _dot(v, v), norms, vkv, kv, kv)

    def debiased(self) -> Array:
        s = self._s
        sx, sy = s["sx"], s["sy"]
        hxy = self._hsic(_fro2(s["yx"]), s["nxny"], _dot(sx, sx), s["nx"], _dot(sy, sy), s["ny"],
                         _dot(_vecmat(sy, s["yx"]), sx), _dot(s["x_ny"], sx), _dot(s["y_nx"], sy))
        hxx = self._hsic_self(s["xx"], sx, s["nx"], s["nx2"], s["x_nx"])
        hyy = self._hsic_self(s["yy"], sy, s["ny"], s["ny2"], s["y_ny"])
        return hxy / (hxx * hyy) ** 0.5


def _to_floats(a: Array) -> Any:
    """A float (0-d) or a tuple of floats (1-d), on the CPU."""
    if _is_torch(a):
        a = a.detach().cpu().numpy()
    out = np.asarray(a, dtype=np.float64).tolist()
    return tuple(out) if isinstance(out, list) else float(out)


def _results(sums: _CKASums) -> tuple[Any, Any]:
    if sums.n < 2:
        raise DriftError(f"CKA needs at least 2 rows, got {sums.n}")
    with np.errstate(invalid="ignore", divide="ignore"):
        linear = _to_floats(sums.linear())
        if sums.n >= 4:
            return linear, _to_floats(sums.debiased())
    nan = float("nan")
    return linear, (nan if isinstance(linear, float) else (nan,) * len(linear))


@dataclass(frozen=True)
class CKAResult:
    """Linear and debiased CKA of the rows seen so far (debiased is NaN below 4 rows)."""

    linear: float
    debiased: float
    n: int


class CKAFitter:
    """Exact linear and debiased CKA from running float64 sums (memory O(d^2), independent of n).

    With ``K = XX'`` and ``L = YY'``, every term of both estimators is a function of ``X'X``, ``Y'Y``, ``Y'X``, the
    column sums and sums weighted by the squared row norms, all of which add up over chunks. Torch chunks are
    accumulated as float64 tensors on the device of the first chunk.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(100, 8))
        >>> f = CKAFitter()
        >>> for i in range(0, 100, 30):
        ...     _ = f.update(x[i:i + 30], 2 * x[i:i + 30] + 1)
        >>> round(f.result().linear, 12), round(f.result().debiased, 12)
        (1.0, 1.0)
    """

    def __init__(self) -> None:
        self._sums = _CKASums()

    @property
    def n(self) -> int:
        """Rows seen so far."""
        return self._sums.n

    def update(self, X: Array, Y: Array) -> CKAFitter:
        """Add paired rows shaped (n_chunk, d1) and (n_chunk, d2)."""
        self._sums.update(*_checked(X, Y, 2, self._sums.like))
        return self

    def result(self) -> CKAResult:
        """Frozen linear and debiased CKA of the rows seen so far."""
        linear, debiased = _results(self._sums)
        return CKAResult(linear, debiased, self.n)


@dataclass(frozen=True)
class StackedCKAResult:
    """Linear and debiased CKA per layer (tuples indexed like the stacked inputs' first axis)."""

    linear: tuple[float, ...]
    debiased: tuple[float, ...]
    n: int

    def layer(self, i: int) -> CKAResult:
        """The result of one layer."""
        return CKAResult(self.linear[i], self.debiased[i], self.n)


class StackedCKAFitter:
    """:class:`CKAFitter` for many layers at once: chunks shaped (layers, n_chunk, d), one batched product each.

    Memory is O(layers d^2), independent of n; on a GPU this keeps every layer's sums on the device.
    """

    def __init__(self) -> None:
        self._sums = _CKASums()

    @property
    def n(self) -> int:
        """Rows seen so far (per layer)."""
        return self._sums.n

    def update(self, X: Array, Y: Array) -> StackedCKAFitter:
        """Add paired rows shaped (layers, n_chunk, d1) and (layers, n_chunk, d2)."""
        self._sums.update(*_checked(X, Y, 3, self._sums.like))
        return self

    def result(self) -> StackedCKAResult:
        """Frozen per-layer linear and debiased CKA."""
        linear, debiased = _results(self._sums)
        return StackedCKAResult(linear, debiased, self.n)


# ------------------------------------------------------------------------------------------- minibatch CKA
@dataclass(frozen=True)
class MinibatchCKAResult:
    """Minibatch CKA over ``batches`` minibatches holding ``n`` rows in all."""

    value: float
    batches: int
    n: int


class MinibatchCKA:
    """Minibatch CKA (Nguyen, Raghu & Kornblith 2021): unbiased HSIC averaged over minibatches, then normalised.

    ``CKA = mean HSIC(X, Y) / sqrt(mean HSIC(X, X) mean HSIC(Y, Y))``. It estimates the population CKA with
    O(batch^2) memory; unlike :class:`CKAFitter` it does not reproduce the full-data value.
    """

    def __init__(self) -> None:
        self._sums = np.zeros(3)
        self.batches = 0
        self.n = 0

    def update(self, X: Array, Y: Array) -> MinibatchCKA:
        """Add one minibatch of paired rows (at least 4)."""
        x, y = _checked(X, Y, 2)
        x, y = x - x.mean(0), y - y.mean(0)
        k, l = x @ _t(x), y @ _t(y)
        hsic = [hsic_unbiased_gram(a, b) for a, b in ((k, l), (k, k), (l, l))]
        self._sums += [float(h) for h in hsic]
        self.batches += 1
        self.n += x.shape[0]
        return self

    def result(self) -> MinibatchCKAResult:
        """The minibatch CKA estimate."""
        if not self.batches:
            raise DriftError("MinibatchCKA has seen no batches: call update() first")
        hxy, hxx, hyy = self._sums / self.batches
        with np.errstate(invalid="ignore"):
            return MinibatchCKAResult(float(hxy / np.sqrt(hxx * hyy)), self.batches, self.n)


# The resampling API lives in its own module (module size); it is re-exported here lazily (PEP 562), without an
# import cycle, so ``from drift.metrics.cka import cka_bootstrap`` works.
_RESAMPLING = ("CKAInterval", "CKAPermutation", "cka_bootstrap", "cka_permutation_test")


def __getattr__(name: str) -> Any:
    if name in _RESAMPLING:
        from drift.metrics import cka_resampling

        return getattr(cka_resampling, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
