"""Fine-tuning step time: our response-only LM head versus the full-logits loss and trl's fused head, in one run.

On the default model with a fresh LoRA adapter (r 16, all linear layers), the same SFT batches (bundled
instructions, chat template, loss on response tokens only) are timed for one optimizer step (forward, backward,
AdamW) under three losses:

- ``full logits``: ``model(input_ids, labels=...)``, the transformers loss (the LM head over every position);
- ``trl fused head``: trl's ``add_fused_lm_head`` (what ``DPOTrainer``/``SFTTrainer`` use in trl 1.16), which
  scores every position when Triton is absent (CPU);
- ``polydrift ResponseLM``: the backbone, then the LM head only at positions that carry a label.

Each row is warmed up, then timed ``--repeats`` times round-robin (best kept). Ratios are against ``full logits``.
A DPO step (chosen and rejected in one forward) is timed for ResponseLM too, with and without bf16 autocast.

    python benchmarks/finetune.py --quick
    python benchmarks/finetune.py --batch-size 8 --repeats 3 --json finetune.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import torch


def _batches(lm, n, batch_size, max_length):
    from drift.finetune import load_instructions
    from drift.finetune.encode import pad_batch
    from drift.finetune.trainer import encode_sft

    rows = encode_sft(lm.formatter, load_instructions("builtin:instructions", langs=["en"])[:n], max_length)
    pad = lm.tokenizer.pad_token_id
    return [pad_batch([(r["input_ids"], r["labels"]) for r in rows[i:i + batch_size]], pad)
            for i in range(0, len(rows), batch_size)]


def _step_fn(kind, model, opt):
    from drift.finetune.objective import ResponseLM, sft_loss

    module = ResponseLM(model)

    def step(batch, autocast):
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        with ctx:
            if kind == "full":
                loss = model(**batch).loss
            elif kind == "trl":
                loss = model(**batch, fused_lm_head=True).loss
            else:
                loss = sft_loss(module, batch)[0]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print step times and ratios."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 batches, 1 repeat")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=192)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    from peft import LoraConfig, get_peft_model

    from drift.models import load_model

    lm = load_model("default", device="cpu", dtype="float32")
    n_batches = 2 if args.quick else 4
    batches = _batches(lm, n_batches * args.batch_size, args.batch_size, args.max_length)
    try:
        from trl.trainer.utils import add_fused_lm_head

        add_fused_lm_head(lm.model)  # keeps the original forward unless fused_lm_head=True is passed
        kinds = ["full", "trl", "ours"]
    except ImportError:
        kinds = ["full", "ours"]
    model = get_peft_model(lm.model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                task_type="CAUSAL_LM"))
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-5)
    rows = [(k, False) for k in kinds] + [("ours", True)]
    steps = {r: _step_fn(r[0], model, opt) for r in rows}
    for r in rows:
        steps[r](batches[0], r[1])  # warm-up
    best = {r: float("inf") for r in rows}
    for _ in range(1 if args.quick else args.repeats):
        for r in rows:
            start = time.perf_counter()
            for b in batches:
                steps[r](b, r[1])
            best[r] = min(best[r], (time.perf_counter() - start) / len(batches))
    names = {"full": "full logits (transformers loss)", "trl": "trl 1.16 fused head", "ours": "polydrift ResponseLM"}
    base = best[("full", False)]
    result = {}
    for r in rows:
        name = names[r[0]] + (" + bf16 autocast" if r[1] else "")
        result[name] = {"seconds_per_step": round(best[r], 3), "x_full_logits": round(base / best[r], 2)}
        print(f"{name:<44} {best[r]:6.2f} s/step   {base / best[r]:5.2f}x full logits", flush=True)
    tokens = sum(int(b["attention_mask"].sum()) for b in batches) / len(batches)
    print(f"batch {args.batch_size}, {tokens:.0f} real tokens per batch, max_length {args.max_length}")
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "finetune", "rows": result, "batch_size": args.batch_size,
                                         "torch": torch.__version__, "threads": torch.get_num_threads()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
