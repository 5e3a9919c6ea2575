"""Batched Newton solver for many independent L2 logistic regressions (one per layer, or per layer x language).

Every problem minimises scikit-learn's objective, divided by ``C``::

    f(w, b) = sum_i s_i * logloss(y_i, x_i . w + b) + ||w||^2 / (2 C)      (intercept b unpenalised)

with Newton steps, a batched backtracking line search and per-problem convergence masks (finished problems drop out
of the batch). The intercept is eliminated exactly from each Newton system by its Schur complement, which leaves a
weighted, centred Gram matrix. That system is solved

* in the **dual** when n < d: by the push-through identity the weights stay ``w = X^T a`` and each step is an n x n
  batched Cholesky solve that only needs the Gram matrices ``K = X X^T`` (formed once);
* in the **primal** otherwise: a d x d batched Cholesky solve of the penalised, intercept-eliminated Hessian.

Both give the same iterates; the choice is only about cost (n^3 versus n d^2 + d^3 per step). On CPU a first-order
method is cheaper for probe-sized problems at scikit-learn's precision (Newton's Gram matrices alone cost as much
arithmetic as ~n/2 L-BFGS steps), so ``solver="auto"`` takes L-BFGS there once a problem has ``LBFGS_MIN_SIZE``
entries (n d), unless a ``tol`` below ``LBFGS_MIN_TOL`` asks for a precision Newton reaches in a few more steps and
L-BFGS in many; Newton everywhere else: on GPUs (cheap Gram matrices, fewer steps, each a round of kernel launches)
and for small problems (per-step overhead dominates). L-BFGS on CPU runs the compiled kernel of
:mod:`probes.lbfgs_numba` (one solve per problem, the problems spread over numba's threads) when numba is installed
(the ``fast`` extra), else the batched torch L-BFGS of :mod:`probes.lbfgs`, which also serves GPUs;
``LogisticFit.backend`` says which ran.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import ThreadpoolController

from probes import lbfgs

STEPS = 2.0 ** -torch.arange(0, 16)  # backtracking step sizes tried at once
ARMIJO = 1e-4
CPU_CHUNK_BYTES = 8 << 20  # on CPU, problems are solved in chunks of about this many bytes of X and K (or H)
LBFGS_MIN_SIZE = 1 << 15  # n * d from which "auto" prefers L-BFGS on CPU (the two broke even near 2e4 when measured)
LBFGS_MIN_TOL = 1e-5  # a smaller tol makes "auto" keep Newton
LBFGS_CHUNK_BYTES = 12 << 20  # torch L-BFGS chunks on CPU: X stays in cache across a step's two passes over it
LBFGS_TOL = 1e-5  # L-BFGS's default tol: scikit-learn's rule, 10x tighter than its default (see solve_logistic)


@dataclass(frozen=True)
class LogisticFit:
    """The result of :func:`solve_logistic`, one row per problem, in the original feature scale.

    Attributes:
        coef: (P, d) weights.
        intercept: (P,) intercepts.
        n_iter: (P,) Newton or L-BFGS steps taken.
        converged: (P,) whether the gradient criterion was met within ``max_iter``.
        solver: ``dual``, ``primal`` or ``lbfgs``.
        backend: ``numba`` (the compiled CPU kernel of :mod:`probes.lbfgs_numba`) or ``torch``.
    """

    coef: np.ndarray
    intercept: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    solver: str
    backend: str = "torch"


def _as_tensor(a, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.to(device=device, dtype=dtype)
    a = np.asarray(a)
    return torch.as_tensor(a if a.flags.writeable else a.copy(), device=device).to(dtype)


def _loss(z: torch.Tensor, y: torch.Tensor, sw: torch.Tensor) -> torch.Tensor:
    """Weighted log-loss summed over the last axis: softplus(z) - y z."""
    return (sw * (torch.nn.functional.softplus(z) - y * z)).sum(-1)


def _chol_solve(K: torch.Tensor, diag: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve ``(K + diag(diag)) x = rhs`` for batched symmetric positive definite systems (rhs: (B, m, k)).

    The factorisation runs in place on a copy of K viewed column-major (the matrix is symmetric), which spares torch
    a copy of its own; problems where Cholesky fails fall back to LU.
    """
    A = K.clone()
    A.diagonal(dim1=1, dim2=2).add_(diag)
    L = A.mT
    info = torch.empty(len(A), dtype=torch.int32, device=A.device)
    torch.linalg.cholesky_ex(L, out=(L, info))
    x = torch.cholesky_solve(rhs, L)
    bad = info > 0
    if bad.any():
        A_bad = K[bad].clone()
        A_bad.diagonal(dim1=1, dim2=2).add_(diag[bad])
        x[bad] = torch.linalg.solve(A_bad, rhs[bad])
    return x


def _dual_step(K, alpha, r, s, g_b, lam, Kg, Ks):
    """Newton direction in the dual: (d_alpha, d_b, K d_alpha), with w = X^T alpha and logits K alpha + b.

    ``Kg`` = K (r + lam alpha) and ``Ks`` = K s come with the gradient. Eliminating the intercept leaves the weighted,
    centred Hessian X^T (S - s s^T / sigma) X + lam I; by Woodbury its inverse applied to X^T v is X^T a with
    a = (v - y) / lam and y the solution of (K + lam S^-1) y = K v - 1 (s.K v) / sigma + gamma 1 where gamma makes
    sum(y) = 0 (a bordered system: two right-hand sides, one Cholesky factor). K + lam S^-1 is S^(1/2) K S^(1/2)
    + lam I scaled on both sides, so it is as well conditioned for Cholesky, and needs no pass to scale K.
    """
    sigma = s.sum(-1, keepdim=True).clamp_min(torch.finfo(s.dtype).tiny)
    v = r + lam * alpha - s * (g_b[:, None] / sigma)
    Kv = Kg - Ks * (g_b[:, None] / sigma)
    rhs = torch.stack([Kv - (s * Kv).sum(-1, keepdim=True) / sigma, torch.ones_like(Kv)], -1)
    Bc, B1 = _chol_solve(K, lam / s.clamp_min(torch.finfo(s.dtype).eps ** 2), rhs).unbind(-1)
    y = Bc - B1 * (Bc.sum(-1, keepdim=True) / B1.sum(-1, keepdim=True))
    Kd = (torch.bmm(K, y[..., None])[..., 0] - Kv) / lam
    d_b = -(g_b + (s * Kd).sum(-1)) / sigma[:, 0]
    return (y - v) / lam, d_b, Kd


def _primal_step(X, w, g_w, s, g_b, lam):
    """Newton direction in the primal: (d_w, d_b, X d_w) from the d x d intercept-eliminated Hessian."""
    sigma = s.sum(-1, keepdim=True).clamp_min(torch.finfo(s.dtype).tiny)
    h = torch.bmm(s[:, None, :], X)[:, 0]
    hs = h / sigma.sqrt()
    H = torch.bmm(X.transpose(1, 2), X * s[..., None]).baddbmm_(hs[..., None], hs[:, None, :], alpha=-1.0)
    d_w = _chol_solve(H, H.new_full((len(H), 1), lam), -(g_w - h * g_b[:, None] / sigma)[..., None])[..., 0]
    d_b = -(g_b + (h * d_w).sum(-1)) / sigma[:, 0]
    return d_w, d_b, torch.bmm(X, d_w[..., None])[..., 0]


def _line_search(z, dz, y, sw, pen, lam, slope):
    """Largest step 2^-k meeting Armijo's condition per problem (0 where none does), whether it decreased f, and
    whether the predicted decrease is already below the objective's round-off (converged to working precision).

    ``pen`` = (a, c, e) gives the penalty at step t as ``lam / 2 * (a + 2 t c + t^2 e)``.
    """
    t = torch.cat([STEPS.to(z), z.new_zeros(1)])
    a, c, e = (x[:, None] for x in pen)
    zt = z[:, None, :] + t[None, :, None] * dz[:, None, :]
    f = _loss(zt, y[:, None], sw[:, None]) + 0.5 * lam * (a + 2 * t * c + t**2 * e)
    f0 = f[:, -1]
    roundoff = 64 * torch.finfo(z.dtype).eps * f0.abs()
    ok = f <= (f0 + roundoff)[:, None] + ARMIJO * t * slope[:, None]
    ok[:, -1] = True
    first = ok.to(torch.int8).argmax(1)
    return t[first], f.gather(1, first[:, None])[:, 0] < f0, -slope <= 2 * roundoff


def _gradient(M, param, r, s, lam: float, dual: bool):
    """(g, its squared norm, extra): the gradient in w, or in the dual ``K (r + lam alpha)``, which stands for it
    (g_w . dw = it . d_alpha), with ``K s`` as ``extra`` from the same pass over K."""
    if dual:
        v = r + lam * param
        Kv = torch.bmm(M, torch.stack([v, s], -1))
        return Kv[..., 0], (Kv[..., 0] * v).sum(-1).clamp_min(0), Kv[..., 1]
    g = torch.bmm(r[:, None, :], M)[:, 0] + lam * param
    return g, (g * g).sum(-1), None


def _newton_update(M, param, b, z, y, sw, r, s, g, extra, lam: float, dual: bool):
    """One Newton direction and line search; returns (step, moved, flat, d_param, d_b, d_z) (see _line_search)."""
    g_b = r.sum(-1)
    if dual:
        d, d_b, Md = _dual_step(M, param, r, s, g_b, lam, g, extra)
        pen = ((param * (z - b[:, None])).sum(-1), (param * Md).sum(-1), (d * Md).sum(-1))
    else:
        d, d_b, Md = _primal_step(M, param, g, s, g_b, lam)
        pen = ((param * param).sum(-1), (param * d).sum(-1), (d * d).sum(-1))
    slope = (g * d).sum(-1) + g_b * d_b
    dz = Md + d_b[:, None]
    t, moved, flat = _line_search(z, dz, y, sw, pen, lam, slope)
    return t, moved, flat, d, d_b, dz


def _solve_chunk(X, y, sw, lam: float, dual: bool, max_iter: int, tol: float):
    """Newton iterations with convergence masks for one chunk of problems; returns (w, b, n_iter, converged)."""
    P, n, d = X.shape
    total = sw.sum(-1)
    mu = (sw[..., None] * X).sum(1) / total[:, None]
    X = X - mu[:, None, :]
    M = torch.bmm(X, X.transpose(1, 2)) if dual else X
    prior = ((sw * y).sum(-1) / total).clamp(1e-12, 1 - 1e-12)
    b = torch.log(prior / (1 - prior))
    z = b[:, None].expand(P, n).clone()
    param = X.new_zeros(P, n if dual else d)
    n_iter = torch.zeros(P, dtype=torch.long, device=X.device)
    converged = torch.zeros(P, dtype=torch.bool, device=X.device)
    active = torch.arange(P, device=X.device)
    for it in range(max_iter + 1):
        part = [a if len(active) == P else a[active] for a in (M, param, b, z, y, sw)]
        prob = torch.sigmoid(part[3])
        r, s = part[5] * (prob - part[4]), part[5] * prob * torch.sigmoid(-part[3])
        g, g2, extra = _gradient(part[0], part[1], r, s, lam, dual)
        done = torch.sqrt(g2 + r.sum(-1) ** 2) <= tol * total[active]
        converged[active[done]] = True
        if it == max_iter or done.all():
            break
        if done.any():
            keep = ~done
            active, part = active[keep], [a[keep] for a in part]
            r, s, g, extra = (a if a is None else a[keep] for a in (r, s, g, extra))
        t, moved, flat, dp, db, dz = _newton_update(*part, r, s, g, extra, lam, dual)
        param[active] = part[1] + t[:, None] * dp
        b[active] = part[2] + t * db
        z[active] = part[3] + t[:, None] * dz
        n_iter[active] += 1
        converged[active[~moved & flat]] = True  # no decrease left to find at this precision
        active = active[moved]  # stop where no step decreases f (unconverged unless flat)
        if active.numel() == 0:
            break
    w = torch.bmm(param[:, None, :], X)[:, 0] if dual else param
    return w, b - (w * mu).sum(-1), n_iter, converged


def solve_logistic(X, y, C: float = 1.0, *, sample_weight=None, max_iter: int = 100, tol: float | None = None,
                   solver: str = "auto", device: str | torch.device | None = None,
                   dtype: torch.dtype = torch.float64, batch_size: int | None = None) -> LogisticFit:
    """Fit P independent L2 logistic regressions with batched Newton or L-BFGS steps.

    Args:
        X: (P, n, d) features (numpy or torch), one problem per leading index.
        y: (P, n) or (n,) 0/1 targets.
        C: Inverse regularisation strength, as in scikit-learn (the intercept is not penalised).
        sample_weight: (P, n) or (n,) non-negative row weights (zero rows are padding), default 1.
        max_iter: Newton or L-BFGS steps at most.
        tol: Newton stops a problem when ||gradient||_2 <= tol * sum(sample_weight), default 1e-6; L-BFGS when
            max |gradient| <= tol * sum(sample_weight), default ``LBFGS_TOL`` = 1e-5: scikit-learn's lbfgs rule on
            its scaled objective, ten times tighter than its default 1e-4, at which its held-out predictions can
            still differ from the exact optimum's (both solvers stop about as close to the optimum; lower it for
            coefficients closer still).
        solver: Newton in the ``dual`` (n x n systems) or the ``primal`` (d x d systems); ``lbfgs`` (the numba
            kernel of :mod:`probes.lbfgs_numba` on CPU when numba is installed, else :mod:`probes.lbfgs`); or
            ``auto``: lbfgs on CPU when n * d >= ``LBFGS_MIN_SIZE`` and ``tol`` is None or >= ``LBFGS_MIN_TOL``,
            else Newton (dual when n < d).
        device: Torch device (default: X's device when X is a tensor, else cpu).
        dtype: Compute dtype; float64 by default. float32 halves memory and is faster, most of all on GPUs; its
            gradient cannot fall far below ~1e-6, so a problem whose Newton decrement drops under the objective's
            round-off counts as converged; check float32 results against a float64 solve. The numba L-BFGS kernel
            computes in float64 either way: float32 only halves the memory it reads, and float32 features are not
            copied to float64 for a float64 solve.
        batch_size: Problems solved together (default: all on a GPU; on CPU chunks of about 8 MiB for Newton,
            spread over the torch threads, and 12 MiB of X for torch L-BFGS); lower it to bound memory (the dual
            holds n^2 Gram entries per problem, the primal d^2, L-BFGS 2 * 10 history vectors of length d + 1).
            The numba kernel ignores it: it holds one problem's work space per thread.

    Returns:
        A :class:`LogisticFit` in the original feature scale.
    """
    from drift.errors import DriftError

    if C <= 0 or solver not in ("auto", "dual", "primal", "lbfgs"):
        raise DriftError(f"invalid C={C!r} or solver={solver!r}: C must be > 0, solver auto, dual, primal or lbfgs")
    dev = torch.device(device) if device else (X.device if isinstance(X, torch.Tensor) else torch.device("cpu"))
    kept = dev.type == "cpu" and dtype == torch.float64 and _is_float32(X)
    X = _as_tensor(X, torch.float32 if kept else dtype, dev)  # float32 features: converted once the solver is known
    if X.ndim != 3:
        raise DriftError(f"X has shape {tuple(X.shape)}: give (problems, rows, features)")
    P, n, d = X.shape
    y = _as_tensor(y, dtype, dev).expand(P, n)
    sw = torch.ones_like(y) if sample_weight is None else _as_tensor(sample_weight, dtype, dev).expand(P, n)
    used = sw > 0
    single = torch.nonzero(((y * used).sum(-1) == 0) | (((1 - y) * used).sum(-1) == 0))[:, 0].tolist()
    if single or not torch.isin(y, y.new_tensor([0.0, 1.0])).all():
        raise DriftError(f"targets must be 0/1 with both classes in every problem; problems {single[:10]} have one")
    if solver == "auto":
        first_order = dev.type == "cpu" and n * d >= LBFGS_MIN_SIZE and (tol is None or tol >= LBFGS_MIN_TOL)
        solver = "lbfgs" if first_order else "dual" if n < d else "primal"
    if solver == "lbfgs":
        return _finite(X, _solve_lbfgs(X, y, sw, C, max_iter, LBFGS_TOL if tol is None else tol, batch_size, dtype))
    X, dual, tol = X.to(dtype), solver == "dual", 1e-6 if tol is None else tol
    if batch_size is None and dev.type == "cpu":  # keep each thread's share in cache
        batch_size = max(1, CPU_CHUNK_BYTES // (X.element_size() * (n * n if dual else d * d) + X[0].nbytes))
    out = _run_chunks(lambda sl: _solve_chunk(X[sl], y[sl], sw[sl], 1.0 / C, dual, max_iter, tol), P, batch_size,
                      dev)
    w, b, it, ok = (torch.cat(parts).cpu().numpy() for parts in zip(*out))
    return _finite(X, LogisticFit(w, b, it, ok, solver))


def _finite(X: torch.Tensor, fit: LogisticFit) -> LogisticFit:
    """``fit``, unless a problem that did not converge has NaN or infinite features (checked only then, so the
    common path pays nothing): then a one-line error naming those problems."""
    from drift.errors import DriftError

    bad = [int(p) for p in np.flatnonzero(~fit.converged) if not bool(torch.isfinite(X[int(p)]).all())]
    if bad:
        raise DriftError(f"X has NaN or infinite values in problems {bad[:10]}: drop or impute those rows (a capture "
                         "in float16 can overflow; re-extract in bfloat16 or float32)")
    if not np.isfinite(fit.coef).all() or not np.isfinite(fit.intercept).all():
        raise DriftError("the fit produced non-finite coefficients: check X for extreme values or lower C")
    return fit


def _is_float32(a) -> bool:
    """Whether ``a`` is a float32 tensor or numpy array."""
    return (isinstance(a, torch.Tensor) and a.dtype == torch.float32) or (isinstance(a, np.ndarray)
                                                                         and a.dtype == np.float32)


def _solve_lbfgs(X, y, sw, C: float, max_iter: int, tol: float, batch_size: int | None,
                 dtype: torch.dtype) -> LogisticFit:
    """The L-BFGS path of :func:`solve_logistic` (X may still be float32 where ``dtype`` is float64).

    On CPU with numba installed: the compiled kernel of :mod:`probes.lbfgs_numba`, every problem at once on
    ``torch.get_num_threads()`` numba threads (it calls no BLAS). It computes in float64 whatever X's dtype, so
    float32 features are read as they are (the float64 solve of the same numbers, without a float64 copy of X); the
    results come back in ``dtype``. Otherwise the batched torch L-BFGS: on CPU, chunks of about
    ``LBFGS_CHUNK_BYTES`` of X one after another on this thread, BLAS on one thread (a step is ~100 small torch ops
    around two passes over X, so chunks on threads of their own pass the GIL back and forth at every op: on the
    project's 2-core machine that was no faster when idle and up to twice as slow when busy)."""
    on_cpu = X.device.type == "cpu"
    kernel = _numba_kernel() if on_cpu else None
    if kernel is not None:
        w, b, it, ok = kernel.solve_numba(X.detach().numpy(), y.detach().numpy(), sw.detach().numpy(), C, max_iter,
                                          tol, threads=torch.get_num_threads())
        out = np.float32 if dtype == torch.float32 else np.float64
        return LogisticFit(w.astype(out, copy=False), b.astype(out, copy=False), it, ok, "lbfgs", backend="numba")
    X = X.to(dtype)
    size = batch_size or (max(1, LBFGS_CHUNK_BYTES // X[0].nbytes) if on_cpu else len(X))
    with torch.inference_mode(), _blas().limit(limits=1 if on_cpu else None, user_api="blas"):
        out = _run_chunks(lambda sl: lbfgs.solve_chunk(X[sl], y[sl], sw[sl], 1.0 / C, max_iter, tol), len(X), size,
                          X.device, threads=1)
        w, b, it, ok = (torch.cat(parts).cpu().numpy() for parts in zip(*out))
    return LogisticFit(w, b, it, ok, "lbfgs")


def _numba_kernel():
    """:mod:`probes.lbfgs_numba`, or None where numba cannot be imported (the torch path runs instead)."""
    try:
        return importlib.import_module("probes.lbfgs_numba")
    except ImportError:
        return None
    except RuntimeError as exc:  # numba finds no writable cache folder (read-only install and home)
        warnings.warn(f"the numba L-BFGS kernel is unavailable ({exc}); using the torch L-BFGS: set NUMBA_CACHE_DIR "
                      "to a writable folder", RuntimeWarning, stacklevel=3)
        return None


@functools.cache
def _blas() -> ThreadpoolController:
    """threadpoolctl's handle on the loaded BLAS libraries, made once (~3 ms; a limit through it costs ~0.03 ms)."""
    return ThreadpoolController()


def _run_chunks(solve, P: int, batch_size: int | None, device: torch.device, threads: int | None = None) -> list:
    """Solve slices of the problems: one after another on a GPU; on CPU, spread over ``threads`` (default: the
    intra-op threads), each running its slice single-threaded (problems are independent; torch's own threading of
    the many small per-step operations and of batched LAPACK calls was several times slower, worst on a busy
    machine)."""
    threads = (threads or torch.get_num_threads()) if device.type == "cpu" else 1
    size = min(batch_size or P, -(-P // threads))
    slices = [slice(i, i + size) for i in range(0, P, size)]
    if threads < 2 or len(slices) < 2:
        return [solve(sl) for sl in slices]

    def work(sl):
        torch.set_num_threads(1)
        return solve(sl)

    try:
        with ThreadPoolExecutor(min(threads, len(slices))) as pool:
            return list(pool.map(work, slices))
    finally:
        torch.set_num_threads(threads)


def fit_logistic_batched(X, y, C: float = 1.0, max_iter: int = 100, device: str | None = None,
                         tol: float | None = None, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """Fit P independent L2 logistic regressions at once (see :func:`solve_logistic` for the arguments).

    Returns:
        ``coef`` (P, d) and ``intercept`` (P,); warns (``ConvergenceWarning``) when some problem did not converge.
    """
    fit = solve_logistic(X, y, C, max_iter=max_iter, device=device, tol=tol, **kwargs)
    if not fit.converged.all():
        warnings.warn(f"{int((~fit.converged).sum())} of {len(fit.converged)} logistic problems did not converge "
                      f"in {max_iter} {'L-BFGS' if fit.solver == 'lbfgs' else 'Newton'} steps: raise max_iter or tol",
                      ConvergenceWarning, stacklevel=2)
    return fit.coef, fit.intercept
