"""Subcommands of the fine-tuning stage: finetune."""

from __future__ import annotations

import argparse

from drift.cli.common import csv_list
from drift.errors import DriftError


def register(sub) -> dict:
    """Add the parsers of this module's subcommands; return their handlers by name."""
    p = sub.add_parser("finetune", help="benign SFT or DPO refusal alignment: one run or a language x seed x epochs "
                                        "sweep")
    p.add_argument("--config", help="TOML file with a [finetune] table (flags below override it)")
    p.add_argument("--model", help="base model (default: the embedded SmolLM2)")
    p.add_argument("--data", help="builtin:instructions, a JSON/JSONL/dataset folder, a preference file (dpo) or "
                                  "builtin:refusal-pairs")
    p.add_argument("--method", choices=["sft", "dpo"])
    p.add_argument("--langs", type=csv_list, help="fine-tuning languages: one run per language")
    p.add_argument("--seeds", type=lambda v: [int(x) for x in csv_list(v)], help="e.g. 0,1,2")
    p.add_argument("--epochs", type=lambda v: [float(x) for x in csv_list(v)], help="e.g. 1,3")
    p.add_argument("--out", help="sweep folder (one subfolder per run; rerun to resume)")
    p.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA (saves merged weights)")
    p.add_argument("--lora-r", type=int)
    p.add_argument("--lora-alpha", type=int)
    p.add_argument("--lora-targets", type=csv_list, help="module names, or all-linear (default)")
    p.add_argument("--lr", type=float, dest="learning_rate")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--grad-accum", type=int)
    p.add_argument("--max-length", type=int)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--limit-per-lang", type=int, help="use at most this many examples per language")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--beta", type=float, help="DPO beta")
    p.add_argument("--sft-weight", type=float, help="weight of the chosen-answer likelihood term in DPO")
    p.add_argument("--scheduler", help="learning-rate schedule: linear, constant, cosine, ...")
    p.add_argument("--device", help="auto, cpu, cuda")
    p.add_argument("--quiet", action="store_true")
    return {"finetune": cmd_finetune}


def _overrides(args: argparse.Namespace) -> dict:
    keys = ["model", "data", "method", "langs", "seeds", "epochs", "out", "lora_r", "lora_alpha", "lora_targets",
            "learning_rate", "batch_size", "grad_accum", "max_length", "max_steps", "limit_per_lang", "precision",
            "beta", "sft_weight", "scheduler", "device"]
    out = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    if args.lora_targets == ["all-linear"]:
        out["lora_targets"] = "all-linear"
    if args.full:
        out |= {"lora": False, "save": "merged"}
    return out


def cmd_finetune(args: argparse.Namespace) -> int:
    """``drift finetune``: run a sweep (or a single run) and print one line per run."""
    from drift.finetune import load_sweep, make_sweep, run_sweep

    overrides = _overrides(args)
    if args.config:
        sweep = load_sweep(args.config, **overrides)
    else:
        if "out" not in overrides:
            raise DriftError("give --out (the sweep folder) or a --config file")
        sweep = make_sweep(overrides, where="the command line")
    manifests = run_sweep(sweep, progress=not args.quiet)
    print(f"{len(manifests)} run(s) in {sweep.out}: " + ", ".join(m.run_id for m in manifests))
    return 0
