"""Compiled CPU kernel for the L-BFGS path of :mod:`probes.newton`: one numba-compiled L-BFGS per problem, the
problems spread over numba's threads (``prange``), no Python between the operations of a step.

Same objective, coordinates and stopping rule as :mod:`probes.lbfgs` (scikit-learn's scaled objective
``sum_i s_i logloss / sum(s) + ||w||^2 / (2 C sum(s))``, unpenalised intercept; stop when the largest absolute entry
of the gradient in the original feature scale is at most ``tol``). Per problem and step:

* the direction comes from the two-loop recursion over ``HISTORY`` curvature pairs (weights and the intercept of the
  weighted-centred features, which decouples it; X itself is never copied or centred);
* one pass over X gives ``X p``; the line search then tries steps along the logits ``z + t X p`` at O(n) each
  (Armijo backtracking with quadratic interpolation; the first step of a problem without curvature pairs is the 1-D
  Newton step), and one more pass gives the gradient ``X' r`` at the accepted point;
* the products read X in its own dtype (float32 or float64) and accumulate in float64; everything else is float64,
  so float32 input loses nothing but the rounding of X itself. Rows of weight 0 are skipped (padding).

Importing this module raises ImportError when numba is missing; :mod:`probes.newton` then keeps the torch path. The
compiled code is cached next to this file (``probes/__pycache__``, or numba's user cache where that is read-only): the
first call in a fresh environment compiles for ~10 s per X dtype (on the project's 2-core machine), later processes
load it from the cache in ~0.2 s.
"""

from __future__ import annotations

import os

import numba
import numpy as np
from numba import njit, prange

HISTORY = 10  # curvature pairs kept per problem
ARMIJO = 1e-4
TRIALS = 40  # line-search trials before a problem counts as stuck
_FAST = {"reassoc", "contract", "nsz", "arcp"}  # vectorised sums in the products only: no nan/inf assumptions
_THREADS_PID = [None]  # the process that started numba's threads (a child forked from it must not use them)


@njit(cache=True, fastmath=_FAST)
def _xp(flat, base, d, p, shift, out):
    """``out[k] = x_k . p[:d] + shift`` for the rows ``x_k = flat[base[k]:base[k] + d]``, four rows per pass."""
    nk = base.size
    k = 0
    while k + 4 <= nk:
        x0, x1 = flat[base[k]:base[k] + d], flat[base[k + 1]:base[k + 1] + d]
        x2, x3 = flat[base[k + 2]:base[k + 2] + d], flat[base[k + 3]:base[k + 3] + d]
        s0 = s1 = s2 = s3 = 0.0
        for j in range(d):
            pj = p[j]
            s0 += x0[j] * pj
            s1 += x1[j] * pj
            s2 += x2[j] * pj
            s3 += x3[j] * pj
        out[k], out[k + 1], out[k + 2], out[k + 3] = s0 + shift, s1 + shift, s2 + shift, s3 + shift
        k += 4
    for kk in range(k, nk):
        x0 = flat[base[kk]:base[kk] + d]
        s = 0.0
        for j in range(d):
            s += x0[j] * p[j]
        out[kk] = s + shift


@njit(cache=True, fastmath=_FAST)
def _xtr(flat, base, d, r, out):
    """``out[:d] = sum_k r[k] x_k`` for the rows ``x_k = flat[base[k]:base[k] + d]``, four rows per pass."""
    nk = base.size
    out[:d] = 0.0
    k = 0
    while k + 4 <= nk:
        x0, x1 = flat[base[k]:base[k] + d], flat[base[k + 1]:base[k + 1] + d]
        x2, x3 = flat[base[k + 2]:base[k + 2] + d], flat[base[k + 3]:base[k + 3] + d]
        r0, r1, r2, r3 = r[k], r[k + 1], r[k + 2], r[k + 3]
        for j in range(d):
            out[j] += (r0 * x0[j] + r1 * x1[j]) + (r2 * x2[j] + r3 * x3[j])
        k += 4
    for kk in range(k, nk):
        x0, rk = flat[base[kk]:base[kk] + d], r[kk]
        for j in range(d):
            out[j] += rk * x0[j]


@njit(cache=True)
def _loss(z, dz, t, a, y, zt, et):
    """Weighted log-loss at logits ``z + t dz`` (stored in ``zt``, with ``exp(-|zt|)`` in ``et``); stable for any
    ``|z|`` (``log(1 + e)`` with e <= 1 is off by at most one rounding, and the objective needs absolute accuracy)."""
    f = 0.0
    for k in range(z.size):
        u = z[k] + t * dz[k]
        e = np.exp(-abs(u))
        zt[k], et[k] = u, e
        f += a[k] * (max(u, 0.0) + np.log(1.0 + e) - y[k] * u)
    return f


@njit(cache=True)
def _gradient(flat, base, a, y, z, e, theta, mu, lam, r, g):
    """Gradient in the centred coordinates into ``g``; returns scikit-learn's statistic, the largest absolute entry
    of the gradient in the original ones (weights: ``X' r + lam w``; intercept: ``sum(r)``)."""
    nk, d = z.size, mu.size
    sr = 0.0
    for k in range(nk):  # r = a (sigmoid(z) - y), written so that nothing cancels for y in {0, 1}
        ek = e[k]
        num = (1.0 - y[k]) - y[k] * ek if z[k] >= 0 else (1.0 - y[k]) * ek - y[k]
        r[k] = a[k] * num / (1.0 + ek)
        sr += r[k]
    _xtr(flat, base, d, r, g)
    gmax = abs(sr)
    for j in range(d):
        g[j] += lam * theta[j]
        gmax = max(gmax, abs(g[j]))
        g[j] -= mu[j] * sr
    g[d] = sr
    return gmax


@njit(cache=True, fastmath=_FAST)
def _dot(u, v):
    """``u . v`` over the shorter of the two."""
    s = 0.0
    for j in range(min(u.size, v.size)):
        s += u[j] * v[j]
    return s


@njit(cache=True, fastmath=_FAST)
def _axpy(c, u, v):
    """``v += c u``."""
    for j in range(v.size):
        v[j] += c * u[j]


@njit(cache=True)
def _direction(g, S, Y, rho, alpha, newest, count, gamma, p):
    """``p = -H g`` by the two-loop recursion over the ``count`` newest pairs (slot ``newest`` the latest)."""
    m = S.shape[0]
    p[:] = g
    for back in range(count):
        k = (newest - back) % m
        alpha[k] = rho[k] * _dot(S[k], p)
        _axpy(-alpha[k], Y[k], p)
    for j in range(p.size):
        p[j] *= gamma
    for back in range(count - 1, -1, -1):
        k = (newest - back) % m
        _axpy(alpha[k] - rho[k] * _dot(Y[k], p), S[k], p)
    for j in range(p.size):
        p[j] = -p[j]


@njit(cache=True)
def _search(z, dz, a, y, e, f, slope, lam, ww, wp, pp, fresh, zt, et):
    """Armijo backtracking along ``z + t dz``; returns (t, f(t)), with t = 0 where no trial step decreases f by more
    than its round-off. The first trial is 1, or the 1-D Newton step where the problem has no curvature pair yet."""
    t = 1.0
    if fresh:
        curv = lam * pp
        for k in range(z.size):
            curv += a[k] * e[k] / (1.0 + e[k]) ** 2 * dz[k] * dz[k]
        t = -slope / max(curv, 1e-300)
    roundoff = 64.0 * np.finfo(np.float64).eps * abs(f)
    for _ in range(TRIALS):
        ft = _loss(z, dz, t, a, y, zt, et) + 0.5 * lam * (ww + t * (2.0 * wp + t * pp))
        if ft <= f + ARMIJO * t * slope + roundoff:
            return t, ft
        excess = ft - f - slope * t  # > 0: the quadratic through f, slope and ft has its minimum at t^2 (-slope) / 2e
        t = min(max(-slope * t * t / (2.0 * excess), 0.1 * t), 0.5 * t) if excess > 0 else 0.5 * t
    return 0.0, f


@njit(cache=True)
def _solve_one(flat, offsets, y_all, sw, C, max_iter, tol, m, w_out):
    """L-BFGS for one problem whose row i is ``flat[offsets[i]:offsets[i] + d]``; writes the weights to ``w_out``,
    returns (intercept, steps, converged)."""
    d = w_out.size
    rows = np.flatnonzero(sw > 0)
    nk, total, base = rows.size, sw.sum(), offsets[rows]
    a, y = sw[rows] / total, y_all[rows]
    lam, eps = 1.0 / (C * total), np.finfo(np.float64).eps
    mu = np.empty(d)
    _xtr(flat, base, d, a, mu)  # weighted mean row: the logits are X w - mu . w + c
    prior = min(max(_dot(a, y), 1e-12), 1 - 1e-12)
    theta, g, g_new, p, yv = np.zeros(d + 1), np.empty(d + 1), np.empty(d + 1), np.empty(d + 1), np.empty(d + 1)
    theta[d] = np.log(prior / (1 - prior))
    z, dz, zt, e, et, r = np.full(nk, theta[d]), np.zeros(nk), np.empty(nk), np.empty(nk), np.empty(nk), np.empty(nk)
    f = _loss(z, dz, 0.0, a, y, z, e)
    gmax = _gradient(flat, base, a, y, z, e, theta, mu, lam, r, g)
    S, Y, rho, alpha = np.zeros((m, d + 1)), np.zeros((m, d + 1)), np.zeros(m), np.zeros(m)
    newest, count, gamma, steps, converged = m - 1, 0, 1.0, 0, False
    for it in range(max_iter + 1):
        if gmax <= tol:
            converged = True
            break
        if it == max_iter:
            break
        _direction(g, S, Y, rho, alpha, newest, count, gamma, p)
        slope = _dot(g, p)
        if not slope < 0:  # not downhill (round-off): forget the history, go down the gradient
            count, gamma = 0, 1.0
            for j in range(d + 1):
                p[j] = -g[j]
            slope = -_dot(g, g)
        _xp(flat, base, d, p, p[d] - _dot(mu, p), dz)
        ww, wp, pp = _dot(theta[:d], theta), _dot(theta[:d], p), _dot(p[:d], p)
        t, f_new = _search(z, dz, a, y, e, f, slope, lam, ww, wp, pp, count == 0, zt, et)
        if t == 0.0:  # stuck: converged to working precision if the predicted decrease is below f's round-off
            converged = -slope <= 128.0 * eps * abs(f)
            break
        for j in range(d + 1):
            p[j] *= t
            theta[j] += p[j]
        z, zt, e, et, f = zt, z, et, e, f_new
        gmax = _gradient(flat, base, a, y, z, e, theta, mu, lam, r, g_new)
        for j in range(d + 1):
            yv[j] = g_new[j] - g[j]
        sy, yy = _dot(p, yv), _dot(yv, yv)
        if sy > eps * yy:  # curvature pair (always, up to round-off: the objective is strictly convex)
            newest = (newest + 1) % m
            S[newest], Y[newest], rho[newest] = p, yv, 1.0 / sy
            count, gamma = min(count + 1, m), sy / yy
        g, g_new = g_new, g
        steps += 1
    w_out[:] = theta[:d]
    return theta[d] - _dot(mu, theta), steps, converged


@njit(parallel=True, cache=True)
def _solve_all(flat, offsets, y, sw, C, max_iter, tol, m, w, b, n_iter, converged):
    """Every problem on its own, spread over numba's threads."""
    for i in prange(w.shape[0]):
        b[i], n_iter[i], converged[i] = _solve_one(flat, offsets[i], y[i], sw[i], C, max_iter, tol, m, w[i])


@njit(cache=True)
def _solve_serial(flat, offsets, y, sw, C, max_iter, tol, m, w, b, n_iter, converged):
    """Every problem on its own, on the calling thread (no OpenMP)."""
    for i in range(w.shape[0]):
        b[i], n_iter[i], converged[i] = _solve_one(flat, offsets[i], y[i], sw[i], C, max_iter, tol, m, w[i])


def solve_numba(X, y, sw, C: float, max_iter: int, tol: float, history: int = HISTORY, threads: int | None = None):
    """L-BFGS for P independent L2 logistic regressions, one compiled solve per problem on numba's threads.

    Args:
        X: (P, n, d) float32 or float64 features (other dtypes are converted to float64); read in place, in
            any layout whose rows are contiguous (e.g. ``X[:, mask]``), else copied.
        y: (P, n) 0/1 targets (or (n,), shared).
        sw: (P, n) non-negative row weights (or (n,), or a scalar); rows of weight 0 are padding. Every problem needs
            both classes among its weighted rows (:func:`probes.newton.solve_logistic` checks this).
        C: Inverse regularisation strength.
        max_iter: L-BFGS steps at most.
        tol: Stop a problem when the largest absolute gradient entry of the scaled objective is at most ``tol``
            (see the module docstring).
        history: Curvature pairs kept per problem.
        threads: numba threads for this call (default: numba's own setting), capped at numba's pool size. One
            thread, or any call in a process forked after this one used threads (numba's GNU OpenMP layer cannot
            start threads again after a fork), runs on the calling thread alone.

    Returns:
        (w (P, d), b (P,), n_iter (P,), converged (P,)) as numpy arrays; w and b in float64 for either dtype.
    """
    X = np.asarray(X)
    flat, offsets = _rows(X if X.dtype in (np.float32, np.float64) else X.astype(np.float64))
    P, n, d = X.shape
    y, sw = (np.array(np.broadcast_to(np.asarray(a, dtype=np.float64), (P, n)), order="C") for a in (y, sw))
    w, b = np.empty((P, d)), np.empty(P)
    n_iter, converged = np.zeros(P, dtype=np.int64), np.zeros(P, dtype=np.bool_)
    args = (flat, offsets, y, sw, float(C), int(max_iter), float(tol), int(history), w, b, n_iter, converged)
    before = numba.get_num_threads()
    threads = max(1, min(threads or before, numba.config.NUMBA_NUM_THREADS, P))
    if threads == 1 or _THREADS_PID[0] not in (None, os.getpid()):
        _solve_serial(*args)
        return w, b, n_iter, converged
    _THREADS_PID[0] = os.getpid()
    numba.set_num_threads(threads)
    try:
        with numba.parallel_chunksize(1):  # problems handed out one at a time: their step counts differ
            _solve_all(*args)
    finally:
        numba.set_num_threads(before)
    return w, b, n_iter, converged


def _rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A read-only 1-D view of X's memory and the (P, n) offsets of its rows in it: no copy when every row is
    contiguous (strides >= 0, in whole elements), else of a C-ordered copy. The kernel then has one compiled version
    per dtype whatever the layout."""
    size = X.itemsize
    if X.shape[2] > 1 and X.strides[2] != size or any(s < 0 or s % size for s in X.strides[:2]):
        X = np.ascontiguousarray(X)
    P, n, d = X.shape
    step = [s // size if k > 1 else 0 for s, k in zip(X.strides[:2], X.shape[:2])]  # stride of a length-1 axis: any
    offsets = np.arange(P)[:, None] * step[0] + np.arange(n)[None, :] * step[1]
    extent = int(offsets.max()) + d if offsets.size else 0
    return np.lib.stride_tricks.as_strided(X, (extent,), (size,), writeable=False), offsets
