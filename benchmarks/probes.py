"""Benchmark: one batched torch solve for every (layer, language) probe versus a loop of scikit-learn fits.

Run:  python benchmarks/probes.py [--quick] [--layers 30] [--langs 4] [--n 400] [--d 576] [--json out.json]

Synthetic activations shaped like a 30-layer cache (per layer and language: n prompts x d dims, a label signal that
grows with depth). Both paths fit L2 logistic regression with the same fixed C (no inner search) on the same
training rows and are scored on the same held-out rows:

* baseline: ``sklearn.linear_model.LogisticRegression(solver="lbfgs", C=C)`` in a Python loop over every probe;
* batched: :func:`probes.fit_logistic_batched`, all probes in one L-BFGS solve (CPU here; pass --device cuda on a GPU).

Prints wall time, the speed-up and the held-out accuracy of both; the target is >= 5x faster with equal accuracy.
It asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probes import fit_logistic_batched  # noqa: E402


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
    ap.add_argument("--json")
    args = ap.parse_args()
    layers, langs = (8, 2) if args.quick else (args.layers, args.langs)
    X, y, train = make_data(layers, langs, args.n, args.d)
    P = X.shape[0]

    t = time.perf_counter()
    acc_loop = []
    for p in range(P):
        model = LogisticRegression(C=args.C, solver="lbfgs", max_iter=1000).fit(X[p][train], y[p][train])
        acc_loop.append(model.score(X[p][~train], y[p][~train]))
    loop_s = time.perf_counter() - t

    t = time.perf_counter()
    coef, intercept = fit_logistic_batched(X[:, train], y[:, train], C=args.C, device=args.device)
    batched_s = time.perf_counter() - t
    logits = np.einsum("pnd,pd->pn", X[:, ~train].astype(np.float64), coef) + intercept[:, None]
    acc_batched = ((logits > 0) == (y[:, ~train] == 1)).mean(1)

    gap = np.abs(np.array(acc_loop) - acc_batched)
    speed = loop_s / batched_s
    print(f"\n{P} probes ({layers} layers x {langs} languages), {args.n} prompts each (75% train), d = {args.d}, "
          f"C = {args.C}")
    print(f"{'path':34} {'seconds':>8} {'mean held-out acc':>18}")
    print(f"{'sklearn LogisticRegression loop':34} {loop_s:>8.2f} {np.mean(acc_loop):>18.4f}")
    print(f"{'batched torch L-BFGS (' + args.device + ')':34} {batched_s:>8.2f} {acc_batched.mean():>18.4f}")
    print(f"\nlargest per-probe accuracy gap: {gap.max():.4f}")
    ok = speed >= 5 and gap.max() <= 0.01
    print(f"{'PASS' if ok else 'FAIL'}: batched >= 5x faster ({speed:.1f}x) with equal accuracy "
          f"(max gap {gap.max():.4f} <= 0.01)")
    if args.json:
        Path(args.json).write_text(json.dumps({"probes": P, "loop_s": loop_s, "batched_s": batched_s,
                                               "speedup": speed, "max_acc_gap": float(gap.max())}, indent=2))


if __name__ == "__main__":
    main()
