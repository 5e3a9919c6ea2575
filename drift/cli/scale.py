"""Subcommands and options for running beyond one process: ``drift merge``, and the Ray engine of ``drift extract``."""

from __future__ import annotations

import argparse
from pathlib import Path

from drift.cli.common import csv_list
from drift.errors import DriftError


def register(sub) -> dict:
    """Add the parser of ``drift merge``; return its handler."""
    p = sub.add_parser("merge", help="merge shard stores (or shard completions) into one, checking coverage and "
                                     "provenance")
    p.add_argument("out", help="the merged .h5 store (or .jsonl completions)")
    p.add_argument("shards", nargs="+", help="every shard written by drift extract/generate --shard I/N")
    p.add_argument("--completions", action="store_true",
                   help="merge completions .jsonl files (implied when OUT ends in .jsonl)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    return {"merge": cmd_merge}


def cmd_merge(args: argparse.Namespace) -> int:
    """``drift merge``: one store (or completions file) from all shards of one cut."""
    completions = args.completions or args.out.endswith(".jsonl")
    if completions:
        from drift.generate import merge_completions

        bad = [s for s in args.shards if not s.endswith(".jsonl")]
        if bad:
            raise DriftError(f"{bad[0]} is not a .jsonl completions file: merge stores and completions separately")
        path = merge_completions(args.out, args.shards, overwrite=args.overwrite)
    else:
        from drift.store import merge_stores

        path = merge_stores(args.out, args.shards, overwrite=args.overwrite)
    print(f"wrote {path} (merged {len(args.shards)} shards)")
    return 0


def add_extract_scale_args(p: argparse.ArgumentParser) -> None:
    """Options of ``drift extract`` for one shard (``--shard``) or the Ray engine (``--engine ray``)."""
    p.add_argument("--shard", help="extract only shard I of N of the prompts (I/N, 0-based), for drift merge")
    p.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local (default) or ray: one task per checkpoint x shard; --out is then a folder")
    p.add_argument("--models", type=csv_list, help="with --engine ray: full checkpoints to extract, each as is")
    p.add_argument("--adapters", type=csv_list, help="with --engine ray: adapter folders, each applied to --model")
    p.add_argument("--shards", type=int, default=1, help="with --engine ray: shards per checkpoint (default 1)")
    p.add_argument("--num-gpus", type=float, default=0.0, help="with --engine ray: GPUs per task (default 0)")
    p.add_argument("--num-cpus", type=float, default=1.0, help="with --engine ray: CPUs per task (default 1)")
    p.add_argument("--max-retries", type=int, default=3, help="with --engine ray: retries of a failed task")
    p.add_argument("--ray-address", help="with --engine ray: address of a running Ray cluster (default: local)")
    p.add_argument("--delete-shards", action="store_true", help="with --engine ray: delete shard files once merged")


def check_extract_scale_args(args: argparse.Namespace) -> None:
    """Refuse Ray-only options without ``--engine ray`` and ``--shard`` with it."""
    if args.engine == "ray":
        if args.shard:
            raise DriftError("--shard picks one shard for a local run; with --engine ray use --shards N")
        if args.shards < 1:
            raise DriftError(f"--shards must be at least 1, not {args.shards}")
        return
    ray_only = [f for f, v in (("--models", args.models), ("--adapters", args.adapters),
                               ("--shards", args.shards != 1), ("--ray-address", args.ray_address)) if v]
    if ray_only:
        raise DriftError(f"{ray_only[0]} needs --engine ray (a local run extracts one --model/--adapter; use "
                         "--shard I/N for one shard)")


def extract_with_ray(args: argparse.Namespace, config, prompts, chat) -> int:
    """``drift extract --engine ray``: every checkpoint x shard as a Ray task, merged per checkpoint under --out."""
    from drift.scale import make_jobs, run_extract_ray

    out = Path(args.out)
    if out.suffix == ".h5":
        raise DriftError(f"with --engine ray, --out is a folder (one NAME.h5 per checkpoint), not {out}")
    load = {"dtype": args.dtype, "device": args.device, "revision": args.revision, "chat": chat}
    jobs = make_jobs(args.model, args.models, args.adapters, load)
    written = run_extract_ray(jobs, prompts, out, config, shards=args.shards, num_gpus=args.num_gpus,
                              num_cpus=args.num_cpus, max_retries=args.max_retries, address=args.ray_address,
                              overwrite=args.overwrite, keep_shards=not args.delete_shards)
    for name, path in written.items():
        print(f"wrote {path} ({name}, {len(prompts)} prompts)")
    return 0
