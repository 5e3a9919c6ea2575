"""Batched L-BFGS for many independent L2 logistic regressions: the first-order path of :mod:`probes.newton` on GPUs,
and on CPU where numba is not installed (otherwise the compiled kernel of :mod:`probes.lbfgs_numba` runs there: the
same objective, coordinates and stopping rule, one problem per thread with no per-op overhead, 2-3x faster).

Every problem minimises scikit-learn's scaled objective (the Newton path's objective divided by ``sum(s)``)::

    F(w, b) = sum_i s_i * logloss(y_i, x_i . w + b) / sum(s) + ||w||^2 / (2 C sum(s))      (b unpenalised)

and stops as scikit-learn's ``lbfgs`` solver does: when the largest absolute entry of the gradient of F (weights and
intercept, original feature scale) is at most ``tol``. Each chunk of problems

* works in centred coordinates (the weights, and the intercept of the weighted-centred features, which decouples it)
  without copying X: ``X p`` and ``r X`` are one batched product each with the raw X plus a rank-one correction, and
  these two passes over X are the only work per step that grows with n d;
* keeps ``HISTORY`` curvature pairs per problem in one (B, 2m, d + 1) buffer with its Gram matrix and applies the
  inverse-Hessian approximation in compact form (Byrd, Nocedal and Schnabel, 1994): two small triangular solves
  instead of the two-loop recursion's 4m vector operations. Slots are reused in turn (one index for the chunk), so
  the small matrices are read in chronological order through a permutation; an empty or rejected slot holds a zero
  pair with a unit diagonal in the triangular factor, which makes it contribute nothing;
* searches the line per problem along ``z + t X p`` (no further passes over X): the unit step, or a 1-D Newton step
  while a problem has no curvature pair, then all halvings at once for the problems where Armijo's condition fails;
* freezes finished problems (step 0) and drops them from the batch once they are half of it.

A step is two passes over X and ~100 small torch ops (on CPU, ~45% of its time when measured). Chunks run one after
another on the calling thread: on the 2-core machine where this was measured, chunks on two threads (which pass the
GIL back and forth at every small op), a worker thread for the products, or products split over two threads were all
no faster (the products are bound by cache bandwidth). On CPU the matrix-vector products use numpy's stacked matmul on
the same memory (one BLAS gemv per problem): torch's ``bmm`` is 7-10x slower for these shapes.
"""

from __future__ import annotations

import numpy as np
import torch

HISTORY = 10  # curvature pairs kept per problem
ARMIJO = 1e-4
HALVINGS = 2.0 ** -torch.arange(1, 31)  # backtracking factors, tried at once where the first step fails
_ORDERS: dict = {}  # (m, device) -> the slot permutations of _orders


def _mv(a: torch.Tensor, b: torch.Tensor, a_np: np.ndarray | None = None, b_np: np.ndarray | None = None):
    """Batched ``a @ b`` where one side is a vector: numpy's stacked matmul on CPU (sharing memory; ``a_np`` and
    ``b_np`` are the numpy views where the caller keeps them), else torch."""
    if a.is_cpu:
        return torch.from_numpy(np.matmul(a.numpy() if a_np is None else a_np, b.numpy() if b_np is None else b_np))
    return torch.matmul(a, b)


class _Chunk:
    """Per-problem state of one chunk: X, the iterate and the L-BFGS memory.

    Per-problem scalars are (B, 1); ``theta`` holds the weights and the intercept of the centred features, ``z`` the
    logits, ``g`` the gradient in those coordinates and ``gmax`` scikit-learn's stopping statistic; ``live`` is 1 for
    active problems and 0 for frozen ones (their step factor), ``tol`` the threshold (-1 once frozen)."""

    FIELDS = ("X", "sw", "swy", "pen", "mu", "shift", "idx", "theta", "z", "f", "g", "gmax", "SY", "G", "gamma",
              "fresh", "live", "tol", "steps")

    def __init__(self, X: torch.Tensor, y: torch.Tensor, sw: torch.Tensor, lam: float, m: int, tol: float):
        B, n, d = X.shape
        total = sw.sum(-1, keepdim=True)
        self.X, self.sw = X, sw / total
        self.swy = self.sw * y
        prior = self.swy.sum(-1, keepdim=True).clamp(1e-12, 1 - 1e-12)
        self.z = torch.log(prior / (1 - prior)).expand(B, n).contiguous()
        r = torch.sigmoid(self.z).mul_(self.sw).sub_(self.swy)  # sums to 0: the intercept is optimal at w = 0
        mu, rX = _mv(self.sw.unsqueeze(1), X)[:, 0], _mv(r.unsqueeze(1), X)[:, 0]  # (two gemv beat one 2-row gemm)
        self.mu = torch.cat([mu, mu.new_zeros(B, 1)], 1)
        self.shift = torch.cat([-mu, mu.new_ones(B, 1)], 1)  # logits: X w + shift . theta
        self.pen = (lam / total).expand(B, d + 1).clone()
        self.pen[:, d] = 0.0
        self.theta = torch.cat([X.new_zeros(B, d), self.z[:, :1]], 1)
        self.f = self.objective(self.z, self.theta)
        sr = r.sum(-1, keepdim=True)
        g = torch.cat([rX, sr], 1)
        self.g, self.gmax = g.addcmul(self.mu, sr, value=-1.0), g.abs().amax(-1, keepdim=True)
        self.SY, self.G = X.new_zeros(B, 2 * m, d + 1), X.new_zeros(B, 2 * m, 2 * m)
        self.G[:, :m, m:].diagonal(dim1=1, dim2=2).fill_(1.0)  # empty slots
        self.gamma, self.live, self.steps = X.new_ones(B, 1), X.new_ones(B, 1), X.new_zeros(B, 1)
        self.tol = X.new_full((B, 1), tol)
        self.fresh = torch.ones(B, 1, dtype=torch.bool, device=X.device)  # no curvature pair yet
        self.any_fresh = True
        self.idx = torch.arange(B, device=X.device)
        self.eps = torch.finfo(X.dtype).eps
        self.views()

    def views(self) -> None:
        """numpy views of X and the history (the same memory), for the products on CPU."""
        self.Xn, self.SYn = (self.X.numpy(), self.SY.numpy()) if self.X.is_cpu else (None, None)

    def objective(self, z: torch.Tensor, theta: torch.Tensor, rows=None) -> torch.Tensor:
        """F (..., 1) at logits ``z`` (B, n) and parameters ``theta`` (B, d + 1), or for some ``rows`` at several
        steps each: (R, T, n) and (R, T, d + 1)."""
        sw, swy, pen = self.sw, self.swy, self.pen
        if rows is not None:
            sw, swy, pen = sw[rows, None], swy[rows, None], pen[rows, None]
        loss = torch.nn.functional.softplus(z, threshold=40.0).mul_(sw).addcmul_(swy, z, value=-1.0)
        return loss.sum(-1, keepdim=True).add_((pen * theta).mul_(theta).sum(-1, keepdim=True), alpha=0.5)

    def gradient(self, z: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Gradient of F in the centred coordinates; sets ``gmax`` from the original ones (same weight gradient plus
        ``mu`` times the intercept gradient)."""
        r = torch.sigmoid(z).mul_(self.sw).sub_(self.swy)
        sr = r.sum(-1, keepdim=True)
        g = torch.cat([_mv(r.unsqueeze(1), self.X, None, self.Xn)[:, 0], sr], 1).addcmul_(self.pen, theta)
        centred = g.addcmul(self.mu, sr, value=-1.0)
        self.gmax = g.abs_().amax(-1, keepdim=True)
        return centred

    def keep(self, mask: torch.Tensor) -> None:
        """Drop the problems where ``mask`` is False."""
        for name in self.FIELDS:
            setattr(self, name, getattr(self, name)[mask])
        self.views()


def _orders(m: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each next slot k: the permutation of the 2m history rows into chronological order, and its inverse."""
    if (m, device) not in _ORDERS:
        out = []
        for k in range(m):
            order = [(k + j) % m for j in range(m)]
            perm = torch.tensor(order + [m + o for o in order], device=device)
            out.append((perm, torch.argsort(perm)))
        _ORDERS[m, device] = out
    return _ORDERS[m, device]


def _direction(c: _Chunk, perm: torch.Tensor, inv: torch.Tensor, m: int) -> torch.Tensor:
    """``-H g`` with H the compact L-BFGS inverse-Hessian approximation (zero pairs contribute nothing)."""
    u = _mv(c.SY, c.g.unsqueeze(2), c.SYn).index_select(1, perm)
    G = c.G.index_select(1, perm).index_select(2, perm)
    R = G[:, :m, m:].triu()
    gamma = c.gamma.unsqueeze(2)
    q = torch.linalg.solve_triangular(R, u[:, :m], upper=True)
    w = torch.baddbmm(u[:, m:], G[:, m:, m:], q, beta=-1.0).mul_(gamma)
    w.addcmul_(R.diagonal(dim1=1, dim2=2).unsqueeze(2), q)  # (D + gamma Y'Y) q - gamma Y'g
    v = torch.cat([torch.linalg.solve_triangular(R.mT, w, upper=False), q.mul_(gamma).neg_()], 1)
    return _mv(v.index_select(1, inv).mT, c.SY)[:, 0].addcmul_(c.gamma, c.g).neg_()


def _backtrack(c: _Chunk, p, dz, slope, t0, rhs0, th, zt, f, ok) -> torch.Tensor:
    """All halvings at once for the problems whose first step failed Armijo's test (``ok`` False); updates ``th``,
    ``zt`` and ``f`` in place and returns whether each problem has a step (else step 0 and the old point)."""
    bad = torch.nonzero(~ok[:, 0])[:, 0]
    tb = t0[bad] * HALVINGS.to(p)
    thb = torch.addcmul(c.theta[bad, None], tb.unsqueeze(2), p[bad, None])
    fb = c.objective(torch.addcmul(c.z[bad, None], tb.unsqueeze(2), dz[bad, None]), thb, bad)[..., 0]
    okb = fb <= rhs0[bad].addcmul(tb, slope[bad], value=ARMIJO)
    first, found = okb.to(torch.int8).argmax(1, keepdim=True), okb.any(1, keepdim=True)
    t = torch.where(found, tb.gather(1, first), 0.0)
    th[bad], zt[bad] = torch.addcmul(c.theta[bad], t, p[bad]), torch.addcmul(c.z[bad], t, dz[bad])
    f[bad] = torch.where(found, fb.gather(1, first), c.f[bad])
    ok = ok.clone()
    ok[bad] = found
    return ok


def _remember(c: _Chunk, s: torch.Tensor, yv: torch.Tensor, k: int, m: int) -> None:
    """Store the pair (s, y) in slot ``k`` and update the Gram matrix; a pair failing the curvature test (or from a
    problem that did not move) is stored as an empty slot."""
    c.SY[:, k], c.SY[:, m + k] = s, yv
    pair = c.SY[:, k::m]  # rows k and m + k
    rows = torch.bmm(pair, c.SY.mT)  # (B, 2, 2m): s'SY and y'SY
    sy, yy = rows[:, 0, m + k:m + k + 1], rows[:, 1, m + k:m + k + 1]
    ok = sy > c.eps * yy
    every = bool(ok.all())
    if not every:
        bad = ~ok[:, 0]
        pair[bad] = 0.0
        rows[bad] = 0.0
    c.G[:, k::m, :] = rows
    c.G[:, :, k::m] = rows.mT
    if every:
        c.gamma = sy / yy
    else:
        c.G[bad, k, m + k] = 1.0
        c.gamma = torch.where(ok, sy / torch.where(ok, yy, 1.0), c.gamma)
    if c.any_fresh:
        c.fresh &= ~ok
        c.any_fresh = bool(c.fresh.any())


def _reset(c: _Chunk, rows: torch.Tensor, p: torch.Tensor, slope: torch.Tensor, m: int) -> None:
    """Forget the history of ``rows`` and point them down the gradient (a round-off non-descent direction)."""
    c.SY[rows], c.G[rows], c.gamma[rows], c.fresh[rows], c.any_fresh = 0.0, 0.0, 1.0, True, True
    c.G[:, :m, m:].diagonal(dim1=1, dim2=2)[rows] = 1.0
    p[rows] = -c.g[rows]
    slope[rows] = -(c.g[rows] ** 2).sum(-1, keepdim=True)


def _first_steps(c: _Chunk, p: torch.Tensor, dz: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """Trial steps: 1, or the 1-D Newton step ``-slope / p'Hp`` where a problem has no curvature pair yet; 0 for
    frozen problems."""
    if not c.any_fresh:
        return c.live
    s = torch.sigmoid(c.z) * torch.sigmoid(-c.z)
    curv = (c.sw * s * dz * dz).sum(-1, keepdim=True) + (c.pen * p * p).sum(-1, keepdim=True)
    return torch.where(c.fresh, -slope / curv.clamp_min(torch.finfo(p.dtype).tiny), 1.0) * c.live


def _step(c: _Chunk, order: tuple, k: int, m: int) -> torch.Tensor | None:
    """One L-BFGS step for every live problem (frozen ones take step 0); returns None when every problem found a
    step, else a mask of the live problems that found none: unconverged, unless the predicted decrease was already
    below the objective's round-off (converged to working precision; their ``tol`` is lifted to say so)."""
    p = _direction(c, *order, m)
    slope = (c.g * p).sum(-1, keepdim=True)
    if (slope + c.live).max().item() >= 1:  # a live problem's direction is not downhill (round-off): restart
        _reset(c, (slope[:, 0] >= 0) & (c.live[:, 0] > 0), p, slope, m)
    dz = _mv(c.X, p[:, :-1, None], c.Xn)[..., 0].add_((c.shift * p).sum(-1, keepdim=True))
    t0 = _first_steps(c, p, dz, slope)
    th, zt = torch.addcmul(c.theta, t0, p), torch.addcmul(c.z, t0, dz)
    f = c.objective(zt, th)
    roundoff = c.f.abs().mul_(64 * c.eps)
    rhs0 = roundoff + c.f
    ok = f <= rhs0.addcmul(t0, slope, value=ARMIJO)
    ok = None if ok.all().item() else _backtrack(c, p, dz, slope, t0, rhs0, th, zt, f, ok)
    g = c.gradient(zt, th)
    _remember(c, th - c.theta, g - c.g, k, m)
    c.theta, c.z, c.f, c.g = th, zt, f, g
    if ok is None:
        c.steps += c.live
        return None
    c.steps += ok * c.live
    stuck = ~ok & (c.live > 0)
    c.tol[stuck & (-slope <= 2 * roundoff)] = float("inf")
    return stuck[:, 0]


def solve_chunk(X, y, sw, lam: float, max_iter: int, tol: float, history: int = HISTORY):
    """L-BFGS with per-problem convergence masks for one chunk of problems (X: (B, n, d), y and sw: (B, n), lam =
    1 / C); returns (w, b, n_iter, converged) in the original feature scale."""
    B, d, m = len(X), X.shape[2], history
    c = _Chunk(X, y, sw, lam, m, tol)
    mu, theta_out = c.mu[:, :d], c.theta.clone()
    n_iter = torch.zeros(B, dtype=torch.long, device=X.device)
    converged = torch.zeros(B, dtype=torch.bool, device=X.device)
    stuck, orders = None, _orders(m, X.device)
    for it in range(max_iter + 1):
        done = c.gmax <= c.tol
        if stuck is not None or done.any().item():
            done = done[:, 0] if stuck is None else done[:, 0] | stuck
            left = _freeze(c, done, theta_out, n_iter, converged)
            if left == 0:
                break
            if 2 * left <= len(c.idx):
                c.keep(c.live[:, 0] > 0)
        if it == max_iter:
            break
        stuck = _step(c, orders[it % m], it % m, m)
    live = c.live[:, 0] > 0
    theta_out[c.idx[live]], n_iter[c.idx[live]] = c.theta[live], c.steps[live, 0].long()
    w = theta_out[:, :d]
    return w, theta_out[:, d] - (w * mu).sum(-1), n_iter, converged


def _freeze(c: _Chunk, done: torch.Tensor, theta_out, n_iter, converged) -> int:
    """Record the problems that just finished (converged if under their ``tol``), freeze them; returns how many are
    left."""
    converged[c.idx[done & (c.gmax[:, 0] <= c.tol[:, 0])]] = True
    theta_out[c.idx[done]], n_iter[c.idx[done]] = c.theta[done], c.steps[done, 0].long()
    c.live[done], c.tol[done] = 0.0, -1.0
    return int((c.live > 0).sum())
