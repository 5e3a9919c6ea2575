"""Benchmark: streaming CKA and cosine drift over two activation stores versus naive Gram-matrix CKA.

Run:  python benchmarks/metrics.py [--quick] [--n 8192] [--d 2048] [--layers 2] [--json out.json]

Two synthetic stores (base and "fine-tuned" = base plus noise and a shift) are written in the real store layout, n
prompts x d dims for each layer. In one run it measures, per layer:

* streaming: ``drift.compare.compare_stores`` with linear CKA, debiased CKA and cosine drift (reads the stores in
  chunks; float64 sums of d x d products; memory independent of n);
* naive-centred: the straightforward Gram approach (n x n float64 Gram matrices, centred by means, HSIC as an
  elementwise product), computing the same two CKAs and the cosine;
* naive-textbook: the textbook formula trace(K H L H) with the centring matrix H, also n x n, run on one layer.

Peak memory is each path's peak RSS in a fresh subprocess (so numbers are clean), for the streaming path at n and
n/4 to show that it does not grow with n. Prints ratios against the baselines measured in the same run; it asserts
nothing.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_store(path: Path, n: int, d: int, layers: int, shift: float, seed: int) -> None:
    """Write a synthetic store in the documented layout (rows generated chunk by chunk)."""
    from drift.store import StorePlan, StoreWriter

    prompts = [dict(id=f"p{i}", group=f"g{i}", lang=("en", "de")[i % 2], label=("harmful", "harmless")[i % 3 == 0],
                    category="", text="x", source="bench") for i in range(n)]
    prov = {"model": {"tokenizer_hash": "t", "chat_template_hash": "c", "weights": f"w{seed}"},
            "run": {"run_id": f"bench-{seed}", "model": "bench"}, "prompts": {"hash": "h"}, "capture": {}}
    plan = StorePlan(prompts, [4] * n, [(0, 1)] * n, list(range(n)), ["resid_post"], list(range(layers)), ["last"],
                     False, d, "float32", prov)
    writer = StoreWriter.open(path, plan)
    chunk = 1024
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        fixed = {}
        for layer in range(layers):
            base = np.random.default_rng(1000 * layer + start).normal(size=(m, d)).astype(np.float32)
            noise = np.random.default_rng(seed * 7 + 1000 * layer + start).normal(size=(m, d)).astype(np.float32)
            fixed[("resid_post", layer)] = (base + shift * noise + shift)[:, None, :]
        writer.write_batch(m, fixed)
    writer.finish()


def run_streaming(base: str, ft: str) -> dict:
    """The streaming path over every layer."""
    from drift.compare import compare_stores
    from drift.store import open_store

    t = time.perf_counter()
    with open_store(base) as a, open_store(ft) as b:
        recs = compare_stores(a, b, metrics=["linear_cka", "debiased_cka", "cosine"], by_lang=False)
    seconds = time.perf_counter() - t
    vals = {(r["layer"], r["metric"]): r["value"] for r in recs}
    return {"seconds": seconds, "layers": len({r["layer"] for r in recs}), "values": {str(k): v for k, v in vals.items()}}


def _naive_layer(x: np.ndarray, y: np.ndarray, textbook: bool) -> dict:
    n = len(x)
    k, l = x @ x.T, y @ y.T
    if textbook:
        h = np.eye(n) - 1.0 / n
        kh, lh = k @ h, l @ h
        hsic = lambda a, b: np.trace(a @ b)  # noqa: E731  (KH and LH: trace(K H L H))
        lin = hsic(kh, lh) / np.sqrt(hsic(kh, kh) * hsic(lh, lh))
        return {"linear_cka": float(lin)}
    kc = k - k.mean(0) - k.mean(1)[:, None] + k.mean()
    lc = l - l.mean(0) - l.mean(1)[:, None] + l.mean()
    lin = (kc * lc).sum() / (np.linalg.norm(kc) * np.linalg.norm(lc))

    def hsic_u(a, b):
        a, b = a.copy(), b.copy()
        np.fill_diagonal(a, 0)
        np.fill_diagonal(b, 0)
        return ((a * b).sum() + a.sum() * b.sum() / ((n - 1) * (n - 2)) - 2 * a.sum(0) @ b.sum(0) / (n - 2)) / (
            n * (n - 3))

    deb = hsic_u(k, l) / np.sqrt(hsic_u(k, k) * hsic_u(l, l))
    cosine = ((x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))).mean()
    return {"linear_cka": float(lin), "debiased_cka": float(deb), "cosine": float(cosine)}


def run_naive(base: str, ft: str, textbook: bool, max_layers: int) -> dict:
    """The naive Gram path, reading each layer whole."""
    from drift.store import open_store

    t = time.perf_counter()
    values = {}
    with open_store(base) as a, open_store(ft) as b:
        layers = a.layers[:max_layers]
        for layer in layers:
            x = a.read("resid_post", layer)[:, 0].astype(np.float64)
            y = b.read("resid_post", layer)[:, 0].astype(np.float64)
            for k, v in _naive_layer(x, y, textbook).items():
                values[str((layer, k))] = v
    return {"seconds": time.perf_counter() - t, "layers": len(layers), "values": values}


def _child(mode: str, base: str, ft: str, max_layers: int) -> None:
    out = run_streaming(base, ft) if mode == "streaming" else run_naive(base, ft, mode == "textbook", max_layers)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def measure(mode: str, base: Path, ft: Path, max_layers: int = 10**6) -> dict:
    """Run one path in a fresh process and return its timing, values and peak RSS."""
    cmd = [sys.executable, __file__, "--child", mode, str(base), str(ft), str(max_layers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    """Parse arguments, build the stores, measure every path and print the table."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n=2048, d=512")
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    n, d = (2048, 512) if args.quick else (args.n, args.d)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, size in (("base", n), ("ft", n), ("base_q", n // 4), ("ft_q", n // 4)):
            write_store(tmp / f"{name}.h5", size, d, args.layers, 0.0 if name.startswith("base") else 0.5,
                        seed=1 if name.startswith("base") else 2)
        stream = measure("streaming", tmp / "base.h5", tmp / "ft.h5")
        stream_q = measure("streaming", tmp / "base_q.h5", tmp / "ft_q.h5")
        naive = measure("centred", tmp / "base.h5", tmp / "ft.h5")
        textbook = measure("textbook", tmp / "base.h5", tmp / "ft.h5", max_layers=1)
    per_layer = lambda r: r["seconds"] / r["layers"]  # noqa: E731
    rows = [("streaming (drift.compare)", stream, n), (f"streaming, n/4 = {n // 4}", stream_q, n // 4),
            ("naive, centred Gram", naive, n), ("naive, textbook trace(KHLH)", textbook, n)]
    print(f"\nn = {n} prompts, d = {d}, {args.layers} layers per store (two stores), float32 on disk, float64 math")
    print(f"{'path':32} {'n':>6} {'s/layer':>9} {'peak RSS MB':>12} {'speed-up vs path':>17}")
    for name, r, size in rows:
        print(f"{name:32} {size:>6} {per_layer(r):>9.2f} {r['peak_rss_mb']:>12.0f} "
              f"{per_layer(r) / per_layer(stream):>16.1f}x")
    agree = max(abs(stream["values"][k] - v) for k, v in naive["values"].items() if k in stream["values"])
    speed_centred, speed_textbook = per_layer(naive) / per_layer(stream), per_layer(textbook) / per_layer(stream)
    flat = stream["peak_rss_mb"] / stream_q["peak_rss_mb"]
    print(f"\nmax |streaming - naive| over every value: {agree:.2e}")
    print(f"{'PASS' if speed_textbook >= 10 else 'FAIL'}: streaming >= 10x faster than the textbook Gram CKA "
          f"({speed_textbook:.1f}x); versus the centred-Gram variant {speed_centred:.1f}x")
    print(f"{'PASS' if flat < 1.5 else 'FAIL'}: streaming peak memory flat in n (n vs n/4: {flat:.2f}x; "
          f"naive: {naive['peak_rss_mb'] / stream['peak_rss_mb']:.1f}x the streaming peak)")
    if args.json:
        Path(args.json).write_text(json.dumps({"n": n, "d": d, "layers": args.layers, "streaming": stream,
                                               "streaming_quarter": stream_q, "naive_centred": naive,
                                               "naive_textbook": textbook}, indent=2))


if __name__ == "__main__":
    main()
