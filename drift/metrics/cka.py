"""Centered kernel alignment: linear, debiased (unbiased HSIC) and RBF, batch and streaming.

* :func:`linear_cka`: Kornblith et al. (2019); the feature-space form ``||Yc'Xc||^2 / (||Xc'Xc|| ||Yc'Yc||)`` when
  n > d, the Gram form otherwise.
* :func:`debiased_cka`: CKA from the unbiased HSIC estimator of Song et al. (2012) on linear Gram matrices. Unlike
  the biased estimator it is near 0 for independent data even when n <= d (per-language subsets).
* :func:`rbf_cka`: Gaussian kernels with ``sigma^2 = threshold^2 * median squared distance``; O(n^2) memory.
* :class:`CKAFitter` and :class:`StackedCKAFitter` (many layers at once, in :mod:`drift.metrics.cka_stream`): linear
  and debiased CKA from d x d and d-vector sums while streaming over chunks, with memory independent of n; products
  in float32 or float64 (``precision``), sums and results in float64.
* :class:`MinibatchCKA`: the minibatch estimator of Nguyen, Raghu & Kornblith (2021) for very large n.
* :func:`cka_bootstrap` and :func:`cka_permutation_test` (in :mod:`drift.metrics.cka_resampling`).

Inputs are numpy arrays or torch tensors; torch inputs are computed as float64 tensors on their own device (GPU
included). Every value of the batch functions is computed in float64 and returned as a Python float.
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


def as_stream_array(a: Any, like: Array | None) -> Array:
    """``a`` as float32 or float64 (narrower floats -> float32, others -> float64): a tensor on ``like``'s device
    when the sums live on a non-CPU device (or ``a`` is the first chunk and on one), else a numpy array."""
    dev = like.device if _is_torch(like) else None
    if like is None and _is_torch(a) and a.device.type != "cpu":
        dev = a.device
    if dev is not None:
        import torch

        t = torch.as_tensor(a).detach().to(dev)
        if t.dtype in (torch.float32, torch.float64):
            return t
        return t.to(torch.float32 if t.is_floating_point() and t.element_size() < 4 else torch.float64)
    if _is_torch(a):
        a = a.detach().cpu()
        a = (a.float() if a.is_floating_point() and a.element_size() < 4 else a).numpy()
    a = np.asarray(a)
    if a.dtype in (np.float32, np.float64):
        return a
    return a.astype(np.float32 if a.dtype.kind == "f" and a.dtype.itemsize < 4 else np.float64)


def _checked(x: Any, y: Any, ndim: int, like: Array | None = None) -> tuple[Array, Array]:
    """Paired float64 arrays of ``ndim`` dimensions (rows on axis -2), with finite values."""
    x = as_float64(x, like)
    y = as_float64(y, x)
    _check_pair(x, y, ndim)
    return x, y


def _check_pair(x: Array, y: Array, ndim: int) -> None:
    """Raise a DriftError unless ``x`` and ``y`` are ``ndim``-D, paired row for row, and finite."""
    if x.ndim != ndim or y.ndim != ndim:
        want = "(n, d)" if ndim == 2 else "(layers, n, d)"
        raise DriftError(f"CKA needs {ndim}-D arrays {want}, got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[:-1] != y.shape[:-1]:
        raise DriftError(f"CKA needs paired rows: shapes {tuple(x.shape)} and {tuple(y.shape)} differ before the "
                         "last axis (pass the same prompts, in the same order, to both)")
    if not (bool(_finite(x)) and bool(_finite(y))):
        raise DriftError("CKA inputs contain NaN or inf: check the activations (fp16 overflow?) before comparing")


def _finite(a: Array) -> Any:
    return a.isfinite().all() if _is_torch(a) else np.isfinite(a).all()


def _t(a: Array) -> Array:
    return a.swapaxes(-1, -2)


def _dot(a: Array, b: Array) -> Array:
    return (a * b).sum(-1)


def _fro2(a: Array) -> Array:
    return (a * a).sum((-2, -1))


def _diag(a: Array) -> Array:
    return a.diagonal(0, -2, -1)


def _is_f32(a: Array) -> bool:
    return str(a.dtype).endswith("float32")


def _cast(a: Array, dtype: str) -> Array:
    if _is_torch(a):
        import torch

        return a.to(getattr(torch, dtype))
    return a.astype(dtype, copy=False)


def _like(v: Array, a: Array) -> Array:
    """``v`` in ``a``'s dtype."""
    return _cast(v, str(a.dtype).split(".")[-1])


def _colsum64(a: Array) -> Array:
    return a.double().sum(-2) if _is_torch(a) else a.sum(-2, dtype=np.float64)


def _norms64(a: Array) -> Array:
    """Squared row norms, summed in ``a``'s precision, as float64."""
    return _cast((a * a).sum(-1) if _is_torch(a) else np.einsum("...ij,...ij->...i", a, a), "float64")


def _matvec64(g: Array, v: Array) -> Array:
    """``G v`` in G's precision, as float64."""
    return _cast((g @ _like(v, g)[..., None])[..., 0], "float64")


def _vecmat64(v: Array, g: Array) -> Array:
    """``v' G`` in G's precision, as float64."""
    return _cast((_like(v, g)[..., None, :] @ g)[..., 0, :], "float64")


def _stack(parts: list | tuple) -> Array:
    """float64 vectors (..., d) stacked as the columns of (..., d, k)."""
    if _is_torch(parts[0]):
        import torch

        return torch.stack(list(parts), -1).double()
    return np.stack(parts, -1).astype(np.float64, copy=False)


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
        from drift.metrics.cka_stream import CKAFitter

        return CKAFitter(precision="float64").update(x, y).result().debiased
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


# The streaming fitters and the resampling API live in their own modules (module size); they are re-exported here
# lazily (PEP 562), without an import cycle, so ``from drift.metrics.cka import CKAFitter, cka_bootstrap`` works.
_LAZY = {
    "cka_stream": ("CKAFitter", "CKAResult", "StackedCKAFitter", "StackedCKAResult"),
    "cka_resampling": ("CKAInterval", "CKAPermutation", "cka_bootstrap", "cka_permutation_test"),
}


def __getattr__(name: str) -> Any:
    for module, names in _LAZY.items():
        if name in names:
            import importlib

            return getattr(importlib.import_module(f"drift.metrics.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
