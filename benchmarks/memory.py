"""Memory of an all-position extraction: peak RSS stays flat as the prompt set grows 1x, 4x, 16x (data streams to disk).

A tiny random llama (8 layers, d_model 256, built locally with ``tests/tiny.py``) captures ``resid_post`` at every
layer and every real token (``positions=all``, the largest store polydrift writes) for ``n``, ``4n`` and ``16n``
bundled prompts (a fixed shuffle of ``builtin:prompts``, so every size has the same mix of languages and lengths).
Each size runs in a fresh subprocess, which reports its peak RSS (``ru_maxrss``) and the RSS after imports and model
loading ("setup"); their difference is the extraction's own working memory. The store on disk grows 16x; if the
activations were held in memory, peak RSS would grow with it. Target: peak RSS at 16x <= 1.25x the peak at 1x,
printed as a PASS/FAIL line (a measurement, never a failing exit code).

    python benchmarks/memory.py --quick      # 32 / 128 / 512 prompts
    python benchmarks/memory.py              # 128 / 512 / 2048 prompts
    python benchmarks/memory.py --json memory.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = {"family": "llama", "n_layers": 8, "d_model": 256}
SCALES = (1, 4, 16)
TARGET = 1.25


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _prompts(n: int):
    """``n`` prompts from a fixed shuffle of the bundled set (cycled with new ids beyond its size)."""
    from drift.data import Prompt, PromptSet, load_prompts

    pool = list(load_prompts("builtin:prompts"))
    random.Random(0).shuffle(pool)
    out = []
    for k in range(n):
        p = pool[k % len(pool)]
        lap = k // len(pool)
        out.append(p if lap == 0 else Prompt(f"{p.id}#{lap}", f"{p.group}#{lap}", p.lang, p.label, p.category,
                                             p.text, p.source))
    return PromptSet(out, f"memory-bench-{n}")


def child(n: int, model_dir: str, out: str, batch_size: int) -> None:
    """Extract ``n`` prompts at every position and print one JSON line of memory and size figures."""
    import drift

    lm = drift.load_model(model_dir, device="cpu", dtype="float32")
    prompts = _prompts(n)
    setup = _rss_mb()
    cfg = drift.CaptureConfig(sites=("resid_post",), positions=("all",), batch_size=batch_size)
    start = time.perf_counter()
    path = drift.extract(lm, prompts, out, cfg, progress=False)
    seconds = time.perf_counter() - start
    with drift.open_store(path) as store:
        tokens = int(store.prompts["n_tokens"].sum())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"prompts": n, "tokens": tokens, "store_mb": os.path.getsize(path) / 2**20,
                      "setup_rss_mb": setup, "peak_rss_mb": peak, "work_rss_mb": peak - setup, "seconds": seconds}))


def measure(n: int, model_dir: Path, folder: Path, batch_size: int) -> dict:
    """Run one size in a fresh interpreter; the store is deleted afterwards."""
    out = folder / f"acts-{n}.h5"
    cmd = [sys.executable, __file__, "--child", str(n), str(model_dir), str(out), str(batch_size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    out.unlink(missing_ok=True)
    if proc.returncode:
        raise SystemExit(f"extraction of {n} prompts failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _tiny_module():
    spec = importlib.util.spec_from_file_location("_polydrift_tiny", REPO / "tests" / "tiny.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report(rows: list[dict]) -> dict:
    """Print the table and the PASS/FAIL line; return the summary figures."""
    head = f"{'size':>5} {'prompts':>8} {'tokens':>8} {'store MB':>9} {'setup RSS':>10} {'peak RSS':>9} " \
           f"{'work RSS':>9} {'seconds':>8}"
    print(head + "\n" + "-" * len(head))
    for scale, r in zip(SCALES, rows):
        print(f"{scale:>4}x {r['prompts']:>8} {r['tokens']:>8} {r['store_mb']:>9.1f} {r['setup_rss_mb']:>8.0f}MB "
              f"{r['peak_rss_mb']:>7.0f}MB {r['work_rss_mb']:>7.0f}MB {r['seconds']:>8.2f}")
    ratio = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    grew = rows[-1]["peak_rss_mb"] - rows[0]["peak_rss_mb"]
    data = rows[-1]["store_mb"] - rows[0]["store_mb"]
    print(f"\npeak RSS grew by {grew:.0f} MB while the store grew by {data:.0f} MB "
          f"({rows[-1]['store_mb'] / rows[0]['store_mb']:.1f}x)")
    print(f"{'PASS' if ratio <= TARGET else 'FAIL'}: peak RSS at 16x / at 1x = {ratio:.2f} (target <= {TARGET})")
    return {"ratio_16x_1x": ratio, "peak_growth_mb": grew, "store_growth_mb": data, "pass": ratio <= TARGET}


def main(argv: list[str] | None = None) -> int:
    """Build the tiny model, measure each size in its own process and print the table."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(int(argv[1]), argv[2], argv[3], int(argv[4]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="32 / 128 / 512 prompts")
    p.add_argument("--n", type=int, help="prompts at 1x (default 128, quick 32)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    args = p.parse_args(argv)
    n = args.n or (32 if args.quick else 128)
    with tempfile.TemporaryDirectory(prefix="polydrift-memory-") as tmp:
        folder = Path(tmp)
        model_dir = folder / "tiny-llama"
        model_dir.mkdir()
        _tiny_module().save_tiny(TINY["family"], model_dir, n_layers=TINY["n_layers"], d_model=TINY["d_model"])
        print(f"all-position extraction, tiny llama ({TINY['n_layers']} layers, d_model {TINY['d_model']}), "
              f"resid_post at every layer, batch {args.batch_size}; each size in a fresh process\n")
        rows = [measure(n * s, model_dir, folder, args.batch_size) for s in SCALES]
    summary = report(rows)
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "memory", "model": TINY, "batch_size": args.batch_size,
                                         "scales": list(SCALES), "rows": rows, **summary,
                                         "python": platform.python_version()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
