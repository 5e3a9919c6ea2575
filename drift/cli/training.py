"""Subcommands of the fine-tuning stage: finetune."""

from __future__ import annotations

import argparse

from drift.cli.common import csv_list
from drift.cli.scale import RAY_OPTIONS, add_finetune_scale_args, check_local_options, finetune_with_ray
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
    add_finetune_scale_args(p)
    return {"finetune": cmd_finetune} | register_capability(sub)


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

    check_local_options(args, RAY_OPTIONS, "a local run trains the sweep's runs one after another in this process")
    overrides = _overrides(args)
    if args.config:
        sweep = load_sweep(args.config, **overrides)
    else:
        if "out" not in overrides:
            raise DriftError("give --out (the sweep folder) or a --config file")
        sweep = make_sweep(overrides, where="the command line")
    if args.engine == "ray":
        manifests = finetune_with_ray(args, sweep)
    else:
        manifests = run_sweep(sweep, progress=not args.quiet)
    print(f"{len(manifests)} run(s) in {sweep.out}: " + ", ".join(m.run_id for m in manifests))
    return 0


def register_capability(sub) -> dict:
    """Add the ``capability`` parser; return its handler."""
    p = sub.add_parser("capability", help="perplexity, multiple choice, task capability and fluency of a model state")
    p.add_argument("--model", default="default", help="base model, or a merged fine-tuned checkpoint")
    p.add_argument("--adapter", help="a LoRA run folder written by drift finetune")
    p.add_argument("--suite", type=csv_list, default=["perplexity", "mcq", "task", "fluency"],
                   help="perplexity,mcq,task,fluency (default: all)")
    p.add_argument("--langs", type=csv_list, help="languages of the bundled data to use")
    p.add_argument("--limit", type=int, help="items per language from the bundled data")
    p.add_argument("--mcq", default="builtin:mcq", help="builtin:mcq, a table (jsonl/json/csv/parquet) or hf:NAME")
    p.add_argument("--shots", type=int, default=0)
    p.add_argument("--scoring", choices=["option", "letter"], default="option")
    p.add_argument("--text", help="a plain-text file (documents separated by blank lines) for text perplexity")
    p.add_argument("--text-lang", default="en")
    p.add_argument("--task-data", help="held-out task data when the model has no fine-tuning manifest")
    p.add_argument("--task-method", choices=["sft", "dpo"], default="sft")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--overwrite", action="store_true")
    return {"capability": cmd_capability}


def cmd_capability(args: argparse.Namespace) -> int:
    """``drift capability``: capability records of one model state."""
    import pandas as pd

    from drift.capability.run import run_capability

    written = run_capability(args.model, args.out, adapter=args.adapter, suites=args.suite, langs=args.langs,
                             limit=args.limit, mcq=args.mcq, shots=args.shots, scoring=args.scoring, text=args.text,
                             text_lang=args.text_lang, task_data=args.task_data, task_method=args.task_method,
                             device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                             overwrite=args.overwrite)
    df = pd.read_csv(written["capability.csv"])
    pooled = df[(df.lang == "all") & (df.subject == "all")]
    for _, r in pooled.iterrows():
        print(f"{r['metric']:<22} {r['value']:.4f}  [{r['ci_low']:.4f}, {r['ci_high']:.4f}]  n={r['n']}")
    print(f"wrote {', '.join(str(p) for p in written.values())}")
    return 0
