"""Benchmark: one batched torch solve for every (layer, language) probe versus a loop of scikit-learn fits.

Run:  python benchmarks/probes.py [--quick] [--layers 30] [--langs 4] [--n 400] [--d 576] [--repeats 3]
      [--solver auto|dual|primal|lbfgs] [--tol TOL] [--device cuda] [--json out.json]

Synthetic activations shaped like a 30-layer cache (per layer and language: n prompts x d dims, float32 like the
store, a label signal that grows with depth). Both paths fit L2 logistic regression with the same fixed C (no inner
search) on the same training rows and are scored on the same held-out rows:

* baseline: ``sklearn.linear_model.LogisticRegression(solver="lbfgs", C=C)`` in a Python loop over every probe
  (on float32 input scikit-learn stays in float32);
* batched: :func:`probes.newton.solve_logistic`, all probes in one solve (``--solver``: ``lbfgs``, L-BFGS with
  scikit-learn's stopping rule: on CPU the compiled numba kernel of ``probes.lbfgs_numba`` when numba is installed,
  else the batched torch L-BFGS, the row says which ran; ``dual``/``primal`` Newton; ``auto``: lbfgs on CPU, Newton
  on a GPU; ``--tol``: the solver's stopping tolerance, by default its own: 1e-5 for L-BFGS, scikit-learn's rule ten
  times tighter than its default), in float32 (the timed row) and float64 (the check: accuracy and coefficients of
  the float32 solve against it). CPU here; pass ``--device cuda`` on a GPU. The first call (imports, and numba's
  compilation or the load of its cached code) is timed apart and printed.

The loop is timed twice: as is (numpy's BLAS threads) and with BLAS capped at one thread (threadpoolctl); on a busy
machine the threaded loop can be ten times slower, so the target is judged against the faster of the two. Each path
is timed ``--repeats`` times, interleaved, and the best time is kept (the load average is printed). Prints wall
times, the speed-up, held-out accuracies, the largest per-probe accuracy gap and an estimate of the arithmetic each
path needs. The target is >= 5x faster with equal accuracy (gap <= 1 point). It
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes.newton import solve_logistic  # noqa: E402


def make_data(layers: int, langs: int, n: int, d: int, seed: int = 0):
    """(P, n, d) features and (P, n) labels for P = layers * langs probes, plus a train mask."""
    rng = np.random.default_rng(seed)
    P = layers * langs
    y = rng.integers(0, 2, size=(P, n))
    X = rng.normal(size=(P, n, d)).astype(np.float32)
    direction = rng.normal(size=d)
    direction /= np.linalg.norm(direction)
    strength = np.repeat(np.linspace(0.2, 2.0, layers), langs)[:, None, None]
    X += (strength * (2 * y - 1)[..., None] * direction).astype(np.float32)
    train = np.arange(n) < int(0.75 * n)
    return X, y, train


def sklearn_loop(X, y, train, C: float, blas_threads: int | None = None):
    """Fit one scikit-learn model per probe; returns (seconds, held-out accuracies, mean L-BFGS iterations,
    held-out predictions). ``blas_threads`` caps numpy's BLAS threads (threadpoolctl) during the loop."""
    t = time.perf_counter()
    acc, iters, pred = [], [], []
    with threadpool_limits(limits=blas_threads):
        for p in range(X.shape[0]):
            model = LogisticRegression(C=C, solver="lbfgs", max_iter=1000).fit(X[p][train], y[p][train])
            pred.append(model.predict(X[p][~train]))
            acc.append(float((pred[-1] == y[p][~train]).mean()))
            iters.append(int(model.n_iter_[0]))
    return time.perf_counter() - t, np.array(acc), float(np.mean(iters)), np.array(pred)


def batched(X, y, train, C: float, device: str, dtype: torch.dtype, solver: str, tol: float | None = None):
    """One batched solve; returns (seconds, held-out accuracies, fit, held-out predictions)."""
    t = time.perf_counter()
    fit = solve_logistic(X[:, train], y[:, train], C, device=device, dtype=dtype, solver=solver, tol=tol)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    pred = (np.einsum("pnd,pd->pn", X[:, ~train].astype(np.float64), fit.coef) + fit.intercept[:, None]) > 0
    return seconds, (pred == (y[:, ~train] == 1)).mean(1), fit, pred


def _method(fit) -> str:
    """The table's name for the solver (and backend) of a fit."""
    if fit.solver == "lbfgs":
        return "L-BFGS (numba kernel)" if fit.backend == "numba" else "L-BFGS (torch)"
    return f"Newton, {fit.solver}"


def _steps(n_iter: np.ndarray) -> str:
    """Range and mean of the steps per probe."""
    return f"{n_iter.min()}-{n_iter.max()} (mean {n_iter.mean():.1f})"


def main() -> None:
    """Parse arguments, time both paths, print the table and the target line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 layers, 2 languages")
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--langs", type=int, default=4)
    ap.add_argument("--n", type=int, default=400, help="prompts per language")
    ap.add_argument("--d", type=int, default=576)
    ap.add_argument("--C", type=float, default=0.1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--solver", default="auto", choices=["auto", "dual", "primal", "lbfgs"])
    ap.add_argument("--tol", type=float, help="stopping tolerance of the batched solve (default: the solver's)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    layers, langs = (8, 2) if args.quick else (args.layers, args.langs)
    X, y, train = make_data(layers, langs, args.n, args.d)
    P, n_train = X.shape[0], int(train.sum())
    load_before = os.getloadavg()[0]
    first = time.perf_counter()
    batched(X[:2], y[:2], train, args.C, args.device, torch.float32, args.solver, args.tol)  # warm-up
    first = time.perf_counter() - first
    loop_s, loop1_s, b32_s, b64_s = [], [], [], []
    for _ in range(args.repeats):
        s, acc_loop, sk_iters, pred_loop = sklearn_loop(X, y, train, args.C)
        loop_s.append(s)
        loop1_s.append(sklearn_loop(X, y, train, args.C, blas_threads=1)[0])
        s, acc32, fit32, pred32 = batched(X, y, train, args.C, args.device, torch.float32, args.solver, args.tol)
        b32_s.append(s)
        s, acc64, fit64, _ = batched(X, y, train, args.C, args.device, torch.float64, args.solver, args.tol)
        b64_s.append(s)
    load_after = os.getloadavg()[0]
    gap = np.abs(acc_loop - acc32)
    best_loop = min(min(loop_s), min(loop1_s))  # the target is judged against the faster baseline configuration
    speed = best_loop / min(b32_s)
    print(f"\n{P} probes ({layers} layers x {langs} languages), {args.n} prompts each ({n_train} train), "
          f"d = {args.d}, C = {args.C}; best of {args.repeats}; load average {load_before:.2f} -> {load_after:.2f} "
          f"on {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}; solver {fit32.solver} (--solver "
          f"{args.solver}, backend {fit32.backend}), tol {'default' if args.tol is None else args.tol}; first call "
          f"(warm-up on 2 probes: compilation or cached code, imports) {first:.2f} s")
    print(f"{'path':44} {'seconds':>8} {'speed-up':>8} {'mean held-out acc':>18}   (speed-up: vs the faster loop)")
    rows = [("sklearn LogisticRegression loop (float32)", loop_s, acc_loop),
            ("same loop, numpy BLAS on 1 thread", loop1_s, acc_loop),
            (f"batched {_method(fit32)}, float32 ({args.device})", b32_s, acc32),
            (f"batched {_method(fit64)}, float64 ({args.device})", b64_s, acc64)]
    for name, secs, acc in rows:
        print(f"{name:44} {min(secs):>8.3f} {best_loop / min(secs):>8.2f} {acc.mean():>18.4f}")
    print(f"\n{fit32.solver} steps per probe: float32 {_steps(fit32.n_iter)}, float64 {_steps(fit64.n_iter)}; "
          f"converged {int(fit32.converged.sum())}/{P} and {int(fit64.converged.sum())}/{P}; scikit-learn L-BFGS "
          f"iterations: mean {sk_iters:.1f}")
    print(f"float32 vs float64 solve: largest coefficient difference {np.abs(fit32.coef - fit64.coef).max():.2e}, "
          f"largest per-probe accuracy difference {np.abs(acc32 - acc64).max():.4f}")
    n, d = n_train, args.d
    work = {"dual": ("Gram matrices", 2 * P * n * n * d), "primal": ("Hessians (per step)", 2 * P * n * d * d),
            "lbfgs": ("products with X", 4 * n * d * fit32.n_iter.sum())}[fit32.solver]
    print(f"arithmetic: the batched solve's {work[0]} alone take {work[1] / 1e9:.1f} GFLOP; the scikit-learn loop "
          f"about {P * sk_iters * 4 * n * d / 1e9:.1f} GFLOP (two passes over X per L-BFGS iteration)")
    print(f"largest per-probe accuracy gap, batched float32 vs scikit-learn: {gap.max():.4f} "
          f"({int((pred_loop != pred32).sum())} of {pred32.size} held-out predictions differ)")
    ok = speed >= 5 and gap.max() <= 0.01 + 1e-9
    print(f"{'PASS' if ok else 'FAIL'}: batched {fit32.solver} ({fit32.backend}) float32 >= 5x faster than the "
          f"faster loop ({speed:.2f}x; {min(loop_s) / min(b32_s):.2f}x vs the default-threaded loop) with equal "
          f"accuracy (max gap {gap.max():.4f} <= 0.01)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "probes": P, "solver": fit32.solver, "backend": fit32.backend, "first_call_s": first, "tol": args.tol,
            "loop_s": min(loop_s), "loop_1thread_s": min(loop1_s), "batched_float32_s": min(b32_s),
            "batched_float64_s": min(b64_s), "speedup": speed, "max_acc_gap": float(gap.max()),
            "acc_loop": float(acc_loop.mean()), "acc_batched": float(acc32.mean()), "load": [load_before, load_after]},
            indent=2))


if __name__ == "__main__":
    main()
