"""Subcommands that run whole studies: run, demo."""

from __future__ import annotations

import argparse


def register(sub) -> dict:
    """Add the parsers of this module's subcommands; return their handlers by name."""
    p = sub.add_parser("run", help="run or resume a whole study from a TOML file")
    p.add_argument("study", help="STUDY.toml with [study], [align], [finetune] and [eval] tables")
    p.add_argument("--out", help="study folder (default: [study] out)")
    p.add_argument("--device", help="override [study] device")
    p.add_argument("--progress", action="store_true", help="show progress bars")

    p = sub.add_parser("demo", help="the embedded study on the default model: align, fine-tune, judge, measure, "
                                    "report (about 8 minutes on a 2-core CPU with bf16)")
    p.add_argument("--out-dir", help="where to write (default: the cache's demo/ folder)")
    p.add_argument("--full", action="store_true", help="the bigger study (two alignments, two fine-tuning "
                                                       "languages, all bundled languages; hours on a CPU)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, auto")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                   help="bf16 autocast for training and generation (auto: where the hardware has native bf16)")
    return {"run": cmd_run, "demo": cmd_demo}


def cmd_run(args: argparse.Namespace) -> int:
    """``drift run``: every stage of a study, skipping what is up to date."""
    from dataclasses import replace

    from drift.study.config import load_study
    from drift.study.run import run_study

    cfg = load_study(args.study)
    if args.out or args.device:
        cfg = replace(cfg, out=args.out or cfg.out, device=args.device or cfg.device)
    report = run_study(cfg, progress=args.progress)
    print(f"report: {report}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """``drift demo``: the embedded study."""
    from drift.demo import run_demo

    bf16 = {"auto": None, "bf16": True, "fp32": False}[args.precision]
    run_demo(args.out_dir, full=args.full, device=args.device, progress=args.progress, bf16=bf16)
    return 0
