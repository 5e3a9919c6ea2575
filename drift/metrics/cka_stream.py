"""Streaming linear and debiased CKA from d x d and d-vector sums: exact over chunks, memory independent of n.

With ``K = XX'`` and ``L = YY'``, every term of linear CKA and of the unbiased HSIC (Song et al. 2012) is a function
of ``X'X``, ``Y'Y``, ``Y'X``, the column sums and the column sums weighted by the squared row norms, all of which add
up over chunks of rows. Both estimators are translation invariant, so the sums are kept relative to a reference
point near the mean; each chunk's products are formed on the chunk centred on its own mean, and the offset enters
through exact float64 low-rank terms (:func:`_moved`), so no large common offset ever cancels.

Cost and precision. The three d x d products dominate: numpy runs ``A'A`` as a symmetric rank-k update (BLAS
``syrk``), so a chunk of m rows costs about 2 m d^2 multiply-adds. ``precision`` sets the products' arithmetic:

* ``"float64"``: products in float64; equal to the batch functions to ~1e-12.
* ``"float32"``: each chunk's centred rows and products in float32 (1.7-2.1x faster than float64 on the development
  CPU), added to float64 sums; the means, offsets and the final CKA arithmetic stay in float64. The relative error
  of CKA against the float64 path stays below 1e-6 (measured at most 2e-7 at n = 8192, d = 2048, with common offsets
  up to 1e5, outlier features, means that drift between chunks and an outlying first chunk; benchmarks/README.md).
  The absolute error is of the same order, so a drift ``1 - CKA`` below ~1e-5 is better measured with float64. The
  first d/4 rows (d: the smaller width) always get float64 products: debiased CKA cancels the diagonal terms, about
  d/n of tr(KL), which would amplify float32 rounding by ~d/n on small subsets (n <= d, e.g. one language); so the
  bound holds for every n, and up to d/4 rows the result is the float64 one. This costs 6% at n = 4d.
* ``"auto"`` (default): float32 when both inputs arrive as float32 (or narrower) and both widths are at least
  :data:`AUTO_MIN_WIDTH`; float64 otherwise (float64 inputs, and narrow layers, whose products cost little). A
  tensor on a GPU gets float32 only while ``torch.get_float32_matmul_precision() == "highest"`` (no TF32).

Torch tensors on the CPU are processed as numpy arrays (no copy; numpy's BLAS has ``syrk``); tensors on another
device stay there, and so do their float64 sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import blas

from drift.errors import DriftError
from drift.metrics.cka import (
    Array,
    _cast,
    _check_pair,
    _colsum64,
    _dot,
    _is_f32,
    _is_torch,
    _like,
    _matvec64,
    _norms64,
    _stack,
    _t,
    _vecmat64,
    as_stream_array,
)

PRECISIONS = ("auto", "float32", "float64")
AUTO_MIN_WIDTH = 512  # narrower layers keep float64, which costs little there (d = 256: ~0.8 ms per 100 rows)
_VECTORS = ("sx", "sy", "nx", "ny", "nx2", "ny2", "nxny", "x_nx", "x_ny", "y_nx", "y_ny")


# ----------------------------------------------------------------------------------------------- chunk helpers
def _resolve(precision: str, x: Array, y: Array) -> str:
    """The products' precision for ``precision="auto"`` (see the module docstring)."""
    if precision != "auto":
        return precision
    fast = _is_f32(x) and _is_f32(y) and min(x.shape[-1], y.shape[-1]) >= AUTO_MIN_WIDTH
    if fast and _is_torch(x):
        import torch

        fast = torch.get_float32_matmul_precision() == "highest"
    return "float32" if fast else "float64"


def _centre(a: Array, work: str) -> tuple[Array, Array]:
    """The rows minus their mean, in the working precision (rounded once), and the mean subtracted (float64)."""
    mu = a.double().mean(-2, keepdim=True) if _is_torch(a) else a.mean(-2, dtype=np.float64, keepdims=True)
    if work == "float32" and _is_f32(a):
        mu = _cast(mu, "float32")
        return a - mu, _cast(mu, "float64")
    return _cast(a - mu, work), mu


def _sqnorms(a: Array) -> Array:
    """Squared Frobenius norms over the last two axes (numpy: without a temporary)."""
    return (a * a).sum((-2, -1)) if _is_torch(a) else np.einsum("...ij,...ij->...", a, a)


def _add_low_rank(acc: Array, p: Array, q: Array) -> None:
    """``acc += p q'`` in place, for float64 ``acc`` (..., r, c), ``p`` (..., r, k) and ``q`` (..., c, k)."""
    if _is_torch(acc):
        acc.add_(p @ _t(q))
        return
    for a, pl, ql in zip(acc.reshape(-1, *acc.shape[-2:]), p.reshape(-1, *p.shape[-2:]), q.reshape(-1, *q.shape[-2:])):
        out = blas.dgemm(1.0, ql, pl, beta=1.0, c=a.T, trans_b=1, overwrite_c=1)  # a.T += q p' (Fortran order)
        if not np.may_share_memory(out, a):  # not updated in place (never seen; a safeguard)
            a.T[...] = out


def _moved(s: dict[str, Array], n: int, dx: Array, dy: Array, v: dict[str, Array]) -> tuple[dict, dict]:
    """Sums over ``n`` rows after moving every row ``x`` to ``x - dx`` (and ``y`` to ``y - dy``), exactly.

    ``s`` holds the vector and scalar sums of :data:`_VECTORS`; ``v`` the products of the d x d sums with the shifts:
    ``xx`` = X'X dx, ``yy`` = Y'Y dy, ``yx`` = Y'X dx, ``xy`` = X'Y dy. Returns the moved vector sums and, for each
    d x d sum G, the pair (P, Q) with ``G_moved = G + P Q'``. Expands ``|x - d|^2 = |x|^2 - 2 x.d + |d|^2``.
    """
    sx, sy, nx, ny = s["sx"], s["sy"], s["nx"], s["ny"]
    cx, cy, tx, ty = _dot(dx, dx), _dot(dy, dy), _dot(sx, dx), _dot(sy, dy)
    c = lambda a: a[..., None]  # noqa: E731  (a per-layer scalar against a d-vector)
    new = {
        "sx": sx - n * dx, "sy": sy - n * dy, "nx": nx - 2 * tx + n * cx, "ny": ny - 2 * ty + n * cy,
        "nx2": s["nx2"] - 4 * _dot(s["x_nx"], dx) + 4 * _dot(dx, v["xx"]) + 2 * cx * nx - 4 * cx * tx + n * cx**2,
        "ny2": s["ny2"] - 4 * _dot(s["y_ny"], dy) + 4 * _dot(dy, v["yy"]) + 2 * cy * ny - 4 * cy * ty + n * cy**2,
        "nxny": s["nxny"] - 2 * _dot(s["y_nx"], dy) - 2 * _dot(s["x_ny"], dx) + 4 * _dot(dy, v["yx"]) + cy * nx
        + cx * ny - 2 * cy * tx - 2 * cx * ty + n * cx * cy,
        "x_nx": s["x_nx"] - dx * c(nx) - 2 * v["xx"] + 2 * dx * c(tx) + c(cx) * sx - n * c(cx) * dx,
        "x_ny": s["x_ny"] - dx * c(ny) - 2 * v["xy"] + 2 * dx * c(ty) + c(cy) * sx - n * c(cy) * dx,
        "y_nx": s["y_nx"] - dy * c(nx) - 2 * v["yx"] + 2 * dy * c(tx) + c(cx) * sy - n * c(cx) * dy,
        "y_ny": s["y_ny"] - dy * c(ny) - 2 * v["yy"] + 2 * dy * c(ty) + c(cy) * sy - n * c(cy) * dy,
    }
    hx, hy = sx - 0.5 * n * dx, sy - 0.5 * n * dy  # G - s d' - d s' + n d d' = G - h d' - d h'
    low_rank = {"xx": ((-hx, -dx), (dx, hx)), "yy": ((-hy, -dy), (dy, hy)), "yx": ((n * dy - sy, -dy), (dx, sx))}
    return new, low_rank


# ------------------------------------------------------------------------------------------------- the sums
class _CKASums:
    """Running float64 sums that determine linear and debiased CKA, over any leading (layer) dimensions.

    The sums are those of the rows minus a reference point ``r`` (at first the first chunk's mean). A chunk's sums
    are formed on the chunk centred on its own mean (its products never see an offset) and moved to ``r`` by
    :func:`_moved`. When the running mean drifts further from ``r`` than the rows' spread (an unrepresentative first
    chunk), all sums move to the running mean first, so the final arithmetic never cancels a large offset.
    """

    def __init__(self, precision: str) -> None:
        if precision not in PRECISIONS:
            raise DriftError(f"unknown CKA precision {precision!r}: choose from {', '.join(PRECISIONS)}")
        self.precision = precision
        self.work: str | None = None  # the products' precision, fixed by the first chunk
        self.n = 0
        self._ref: tuple[Array, Array] | None = None
        self._s: dict[str, Array] = {}

    @property
    def like(self) -> Array | None:
        """An array of the backend and device the sums live on (None before the first chunk)."""
        return None if self._ref is None else self._ref[0]

    def update(self, x: Array, y: Array) -> None:
        if self._ref is None:
            self.work = _resolve(self.precision, x, y)
        elif x.shape[:-2] != self._ref[0].shape[:-2] or x.shape[-1] != self._ref[0].shape[-1] or \
                y.shape[-1] != self._ref[1].shape[-1]:
            raise DriftError(f"chunk shapes {tuple(x.shape)}, {tuple(y.shape)} do not match the first chunk's")
        exact = max(0, min(x.shape[-1], y.shape[-1]) // 4 - self.n) if self.work == "float32" else 0
        if exact:  # the first d/4 rows in float64 (see _add_chunk)
            self._add_chunk(x[..., :exact, :], y[..., :exact, :], "float64")
        self._add_chunk(x[..., exact:, :], y[..., exact:, :], self.work)

    def _add_chunk(self, x: Array, y: Array, work: str) -> None:
        """Add rows with products in ``work`` precision.

        Debiased CKA subtracts the diagonal terms K_ii L_ii from tr(KL) = ||Y'X||^2; with n rows of width d they are
        about d/n of it, so rounding in the products is amplified by ~d/n. The first d/4 rows therefore always get
        float64 products: below that the result is exact, and above it float32 rounding is amplified at most ~1x.
        """
        m = x.shape[-2]
        if m == 0:
            return
        first = self._ref is None
        (xc, mx), (yc, my) = _centre(x, work), _centre(y, work)
        own = _own_vectors(xc, yc)
        if first:
            self._ref = (mx, my)
        else:
            self._rebase_if_far(mx, my, own, m)
        dx, dy = (self._ref[0] - mx)[..., 0, :], (self._ref[1] - my)[..., 0, :]  # rows move to x - r = xc - dx
        v = {}
        for key, a, b in (("xx", xc, xc), ("yy", yc, yc), ("yx", yc, xc)):
            g = _t(a) @ b  # in the working precision; numpy runs A'A as a BLAS syrk
            v[key] = _matvec64(g, dy if key == "yy" else dx)
            if key == "yx":
                v["xy"] = _vecmat64(dy, g)
            self._add(key, g)
            del g  # one d x d product alive at a time
        moved, low_rank = _moved(own, m, dx, dy, v)
        if not first:
            for key, (p, q) in low_rank.items():
                _add_low_rank(self._s[key], _stack(p), _stack(q))
        for key, value in moved.items():
            self._add(key, value)
        self.n += m

    def _rebase_if_far(self, mx: Array, my: Array, own: dict[str, Array], m: int) -> None:
        """Move all sums to the running mean (this chunk included) when its squared distance from the reference
        exceeds the rows' mean squared distance from their chunk means, on either side."""
        s, n, far = self._s, self.n, False
        shifts = []
        for side, mu, ref in (("x", mx, self._ref[0]), ("y", my, self._ref[1])):
            ssum, energy = s["s" + side], s["n" + side]
            d = (ssum + own["s" + side] + m * (mu - ref)[..., 0, :]) / (n + m)  # new running mean minus reference
            spread = (energy - _dot(ssum, ssum) / n + own["n" + side]) / (n + m)
            far = far or bool((_dot(d, d) > spread).any())
            shifts.append(d)
        if far:
            dx, dy = shifts
            v = {"xx": _matvec64(s["xx"], dx), "yy": _matvec64(s["yy"], dy), "yx": _matvec64(s["yx"], dx),
                 "xy": _vecmat64(dy, s["yx"])}
            moved, low_rank = _moved({k: s[k] for k in _VECTORS}, n, dx, dy, v)
            for key, (p, q) in low_rank.items():
                _add_low_rank(s[key], _stack(p), _stack(q))
            s.update(moved)
            self._ref = (self._ref[0] + dx[..., None, :], self._ref[1] + dy[..., None, :])

    def _add(self, key: str, value: Array) -> None:
        """Add into the float64 sum ``key``, in place for arrays (no second d x d temporary)."""
        acc = self._s.get(key)
        if acc is None:
            self._s[key] = value.double().clone() if _is_torch(value) else np.array(value, dtype=np.float64)
        elif _is_torch(acc):
            acc.add_(value)
        elif np.ndim(acc):
            np.add(acc, value, out=acc)
        else:
            self._s[key] = acc + np.float64(value)

    def estimates(self) -> tuple[Array, Array | None]:
        """Linear CKA and (from 4 rows) debiased CKA, from one pass over each d x d sum.

        For each product G with column sums s_l, s_r: ``||G||^2`` and ``s_l' G s_r``, so that the centred
        ``||G - s_l s_r' / n||^2 = ||G||^2 - 2 s_l' G s_r / n + |s_l|^2 |s_r|^2 / n^2`` needs no d x d temporary
        (``s`` is small next to the spread, which the rebasing guarantees).
        """
        s, n = self._s, self.n
        ss = {"x": _dot(s["sx"], s["sx"]), "y": _dot(s["sy"], s["sy"])}
        fro, form, centred = {}, {}, {}
        for key in ("xx", "yy", "yx"):
            left, right = s["s" + key[0]], s["s" + key[1]]
            fro[key], form[key] = _sqnorms(s[key]), _dot(_vecmat64(left, s[key]), right)
            centred[key] = fro[key] - 2.0 * form[key] / n + ss[key[0]] * ss[key[1]] / n**2
        linear = centred["yx"] / (centred["xx"] * centred["yy"]) ** 0.5
        if n < 4:
            return linear, None
        hxy = self._hsic(fro["yx"], s["nxny"], ss["x"], s["nx"], ss["y"], s["ny"], form["yx"],
                         _dot(s["x_ny"], s["sx"]), _dot(s["y_nx"], s["sy"]))
        hxx, hyy = (self._hsic(fro[k + k], s[f"n{k}2"], ss[k], s["n" + k], ss[k], s["n" + k], form[k + k],
                               _dot(s[f"{k}_n{k}"], s["s" + k]), _dot(s[f"{k}_n{k}"], s["s" + k])) for k in "xy")
        return linear, hxy / (hxx * hyy) ** 0.5

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


def _own_vectors(xc: Array, yc: Array) -> dict[str, Array]:
    """The vector and scalar sums of :data:`_VECTORS` of one centred chunk, in its own frame (float64)."""
    nx, ny = _norms64(xc), _norms64(yc)
    w = _like(_stack((nx, ny)), xc)  # (..., m, 2): both weightings in one product
    wx, wy = _cast(_t(w) @ xc, "float64"), _cast(_t(w) @ yc, "float64")
    return {"sx": _colsum64(xc), "sy": _colsum64(yc), "nx": nx.sum(-1), "ny": ny.sum(-1),
            "nx2": _dot(nx, nx), "ny2": _dot(ny, ny), "nxny": _dot(nx, ny), "x_nx": wx[..., 0, :],
            "x_ny": wx[..., 1, :], "y_nx": wy[..., 0, :], "y_ny": wy[..., 1, :]}


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
        linear, debiased = sums.estimates()
    linear = _to_floats(linear)
    if debiased is not None:
        return linear, _to_floats(debiased)
    nan = float("nan")
    return linear, (nan if isinstance(linear, float) else (nan,) * len(linear))


def _update(sums: _CKASums, X: Any, Y: Any, ndim: int) -> None:
    x = as_stream_array(X, sums.like)
    y = as_stream_array(Y, sums.like if sums.like is not None else x)
    _check_pair(x, y, ndim)
    sums.update(x, y)


# ------------------------------------------------------------------------------------------------ the fitters
@dataclass(frozen=True)
class CKAResult:
    """Linear and debiased CKA of the rows seen so far (debiased is NaN below 4 rows)."""

    linear: float
    debiased: float
    n: int


class _Fitter:
    def __init__(self, precision: str = "auto") -> None:
        self._sums = _CKASums(precision)

    @property
    def n(self) -> int:
        """Rows seen so far (per layer)."""
        return self._sums.n

    @property
    def precision(self) -> str | None:
        """The products' precision chosen (``"float32"`` or ``"float64"``; None before the first chunk). With float32,
        the first d/4 rows still get float64 products (module docstring)."""
        return self._sums.work


class CKAFitter(_Fitter):
    """Exact linear and debiased CKA from running float64 sums (memory O(d^2), independent of n).

    Args:
        precision: ``"auto"`` (default), ``"float32"`` or ``"float64"``: the arithmetic of each chunk's d x d
            products (module docstring). ``"float64"`` reproduces the batch functions to ~1e-12; float32 is about
            twice as fast on a CPU, with a relative error below 1e-6. :attr:`precision` tells which one is in use.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(100, 8))
        >>> f = CKAFitter()
        >>> for i in range(0, 100, 30):
        ...     _ = f.update(x[i:i + 30], 2 * x[i:i + 30] + 1)
        >>> round(f.result().linear, 12), round(f.result().debiased, 12)
        (1.0, 1.0)
    """

    def update(self, X: Array, Y: Array) -> CKAFitter:
        """Add paired rows shaped (n_chunk, d1) and (n_chunk, d2)."""
        _update(self._sums, X, Y, 2)
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


class StackedCKAFitter(_Fitter):
    """:class:`CKAFitter` for many layers at once: chunks shaped (layers, n_chunk, d), one batched product each.

    Memory is O(layers d^2), independent of n; on a GPU this keeps every layer's sums on the device. ``precision``
    as for :class:`CKAFitter`.
    """

    def update(self, X: Array, Y: Array) -> StackedCKAFitter:
        """Add paired rows shaped (layers, n_chunk, d1) and (layers, n_chunk, d2)."""
        _update(self._sums, X, Y, 3)
        return self

    def result(self) -> StackedCKAResult:
        """Frozen per-layer linear and debiased CKA."""
        linear, debiased = _results(self._sums)
        return StackedCKAResult(linear, debiased, self.n)
