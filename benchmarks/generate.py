"""Generation throughput: batched ``drift.generate`` against one prompt at a time, on the default model, in one run.

Both rows run the same code path (:func:`drift.generate.hf_backend.generate_batches`: chat template, stop tokens,
greedy decoding, KV cache) over the same bundled prompts and the same ``max_new_tokens``; only the batch size
differs (1 versus ``--batch-size``, default 16; batches are length-sorted and left-padded). A third row adds bf16
autocast to the batched run. Throughput is generated tokens per second (stop tokens excluded, padding not counted),
so batched decoding pays for the slots of rows that already stopped. Each row is warmed up on one batch first.
The target (batched >= 4x the one-at-a-time throughput at batch 16 on CPU) is printed as PASS/FAIL; a missed
target never fails the script.

    python benchmarks/generate.py             # 32 prompts, 64 new tokens: a few minutes on 2 CPU cores
    python benchmarks/generate.py --quick     # 16 prompts, 32 new tokens
    python benchmarks/generate.py --json generate.json --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

TARGET = 4.0


def _run(lm, texts, batch_size, max_new, autocast=None) -> tuple[float, int]:
    from drift.generate import GenerationConfig
    from drift.generate.hf_backend import generate_batches

    cfg = GenerationConfig(max_new_tokens=max_new, batch_size=batch_size, autocast=autocast)
    start, tokens = time.perf_counter(), 0
    for batch in generate_batches(lm, texts, cfg):
        tokens += sum(g.n_tokens for _, g in batch)
    return time.perf_counter() - start, tokens


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table of throughputs and ratios."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="16 prompts, 32 new tokens")
    p.add_argument("--prompts", type=int, help="number of prompts (default 32, 16 with --quick)")
    p.add_argument("--max-new-tokens", type=int, help="default 64 (32 with --quick)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", default="default")
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    args = p.parse_args(argv)
    from drift.data import load_prompts
    from drift.models import load_model

    n = args.prompts or (16 if args.quick else 32)
    max_new = args.max_new_tokens or (32 if args.quick else 64)
    prompts = list(load_prompts("builtin:prompts?lang=en"))
    texts = [p.text for p in prompts[::max(1, len(prompts) // n)]][:n]
    lm = load_model(args.model, device=args.device, dtype="float32")
    _run(lm, texts[:2], 1, 4)  # warm-up
    rows = {}
    for name, bs, ac in [("one at a time", 1, None), (f"batch {args.batch_size}", args.batch_size, None),
                         (f"batch {args.batch_size} + bf16 autocast", args.batch_size, "bfloat16")]:
        _run(lm, texts[:bs], bs, 4, ac)
        seconds, tokens = _run(lm, texts, bs, max_new, ac)
        rows[name] = {"seconds": round(seconds, 2), "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1)}
        print(f"{name:<32} {tokens:>6} tokens  {seconds:7.1f} s  {tokens / seconds:8.1f} tokens/s", flush=True)
    base = rows["one at a time"]["tokens_per_s"]
    for r in rows.values():
        r["x_one_at_a_time"] = round(r["tokens_per_s"] / base, 2)
    ratio = rows[f"batch {args.batch_size}"]["x_one_at_a_time"]
    print(f"batched / one-at-a-time throughput: {ratio:.2f}x  "
          f"({'PASS' if ratio >= TARGET else 'FAIL'} >= {TARGET}x at batch {args.batch_size})")
    print(f"with bf16 autocast: {rows[f'batch {args.batch_size} + bf16 autocast']['x_one_at_a_time']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "generate", "prompts": n, "max_new_tokens": max_new,
                                         "rows": rows, "target": TARGET, "pass": ratio >= TARGET,
                                         "machine": {"python": sys.version.split()[0], "torch": torch.__version__,
                                                     "platform": platform.platform(), "device": args.device,
                                                     "threads": torch.get_num_threads()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
