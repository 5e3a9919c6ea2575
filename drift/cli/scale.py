"""Subcommands and options for running beyond one process: ``drift merge``, and the Ray engine of ``drift extract``,
``drift generate`` and ``drift finetune``."""

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


# Options that only mean something to the Ray engine, so a local run refuses them.
RAY_OPTIONS = ("--num-gpus", "--num-cpus", "--max-retries", "--ray-address")
CHECKPOINT_OPTIONS = ("--models", "--adapters", "--shards", "--delete-shards")


def add_ray_args(p: argparse.ArgumentParser, unit: str, retries: int) -> None:
    """``--engine`` and the Ray resources (``--num-gpus``, ``--num-cpus``, ``--max-retries``, ``--ray-address``).

    Args:
        p: The subcommand's parser.
        unit: What one Ray task does, for the help text (e.g. ``one task per run of the sweep``).
        retries: The default of ``--max-retries``, for the help text (see :func:`ray_options`).
    """
    p.add_argument("--engine", default="local", choices=["local", "ray"], help=f"local (default) or ray: {unit}")
    p.add_argument("--num-gpus", type=float, help="with --engine ray: GPUs per task (default 0)")
    p.add_argument("--num-cpus", type=float, help="with --engine ray: CPUs per task (default 1)")
    p.add_argument("--max-retries", type=int, help=f"with --engine ray: retries of a failed task (default {retries})")
    p.add_argument("--ray-address", help="with --engine ray: address of a running Ray cluster (default: local)")


def ray_options(args: argparse.Namespace, retries: int) -> dict:
    """The Ray resources given on the command line, with their defaults, as launcher keyword arguments."""
    return {"num_gpus": 0.0 if args.num_gpus is None else args.num_gpus,
            "num_cpus": 1.0 if args.num_cpus is None else args.num_cpus,
            "max_retries": retries if args.max_retries is None else args.max_retries,
            "address": args.ray_address}


def check_local_options(args: argparse.Namespace, flags: tuple[str, ...], hint: str) -> None:
    """Refuse any of ``flags`` given without ``--engine ray``; ``hint`` says what a local run does instead."""
    if args.engine == "ray":
        return
    given = [f for f in flags if getattr(args, f[2:].replace("-", "_")) not in (None, False)]
    if given:
        raise DriftError(f"{given[0]} needs --engine ray ({hint})")


def add_sharded_scale_args(p: argparse.ArgumentParser, verb: str) -> None:
    """Options of a per-prompt stage (``extract``, ``generate``) for one shard (``--shard``) or the Ray engine."""
    p.add_argument("--shard", help=f"{verb} only shard I of N of the prompts (I/N, 0-based), for drift merge")
    add_ray_args(p, "one task per checkpoint x shard; --out is then a folder", retries=3)
    p.add_argument("--models", type=csv_list, help="with --engine ray: full checkpoints, each used as is")
    p.add_argument("--adapters", type=csv_list, help="with --engine ray: adapter folders, each applied to --model")
    p.add_argument("--shards", type=int, help="with --engine ray: shards per checkpoint (default 1)")
    p.add_argument("--delete-shards", action="store_true", help="with --engine ray: delete shard files once merged")


def check_sharded_scale_args(args: argparse.Namespace, verb: str) -> None:
    """Refuse Ray-only options without ``--engine ray``, and ``--shard`` or ``--adapter`` with it."""
    if args.engine == "ray":
        if args.shard:
            raise DriftError("--shard picks one shard for a local run; with --engine ray use --shards N")
        if getattr(args, "adapter", None):
            raise DriftError(f"--adapter is for a local run; with --engine ray give --adapters {args.adapter} "
                             "(each applied to --model)")
        if args.shards is not None and args.shards < 1:
            raise DriftError(f"--shards must be at least 1, not {args.shards}")
        return
    check_local_options(args, CHECKPOINT_OPTIONS + RAY_OPTIONS,
                        f"a local run {verb}s for one --model/--adapter; use --shard I/N for one shard")


def add_extract_scale_args(p: argparse.ArgumentParser) -> None:
    """Options of ``drift extract`` for one shard (``--shard``) or the Ray engine (``--engine ray``)."""
    add_sharded_scale_args(p, "extract")


def check_extract_scale_args(args: argparse.Namespace) -> None:
    """Refuse Ray-only options without ``--engine ray`` and ``--shard`` with it."""
    check_sharded_scale_args(args, "extract")


def _jobs(args: argparse.Namespace, chat, suffix: str) -> list:
    """The checkpoints of ``--model``/``--models``/``--adapters``; refuses an ``--out`` that names a file."""
    from drift.scale import make_jobs

    if Path(args.out).suffix == suffix:
        raise DriftError(f"with --engine ray, --out is a folder (one NAME{suffix} per checkpoint), not {args.out}")
    load = {"dtype": args.dtype, "device": args.device, "revision": args.revision, "chat": chat}
    return make_jobs(args.model, args.models, args.adapters, load)


def _run_on_ray(args: argparse.Namespace, run, suffix: str, config, prompts, chat) -> int:
    """Run ``run`` (an engine of :mod:`drift.scale`) on every checkpoint x shard and print the merged files."""
    written = run(_jobs(args, chat, suffix), prompts, args.out, config, shards=args.shards or 1,
                  overwrite=args.overwrite, keep_shards=not args.delete_shards, **ray_options(args, retries=3))
    for name, path in written.items():
        print(f"wrote {path} ({name}, {len(prompts)} prompts)")
    return 0


def extract_with_ray(args: argparse.Namespace, config, prompts, chat) -> int:
    """``drift extract --engine ray``: every checkpoint x shard as a Ray task, merged per checkpoint under --out."""
    from drift.scale import run_extract_ray

    return _run_on_ray(args, run_extract_ray, ".h5", config, prompts, chat)


def generate_with_ray(args: argparse.Namespace, config, prompts, chat) -> int:
    """``drift generate --engine ray``: every checkpoint x shard as a Ray task, merged per checkpoint under --out."""
    from drift.scale.generate_ray import run_generate_ray

    if args.ablate or args.add:
        raise DriftError("--ablate and --add run with the local engine only: generate each checkpoint with drift "
                         "generate --shard I/N, or save an orthogonalised checkpoint and pass it in --models")
    return _run_on_ray(args, run_generate_ray, ".jsonl", config, prompts, chat)


def add_finetune_scale_args(p: argparse.ArgumentParser) -> None:
    """Options of ``drift finetune`` for the Ray engine (one task per run of the sweep)."""
    add_ray_args(p, "one task per run of the sweep (finished runs are skipped)", retries=2)


def finetune_with_ray(args: argparse.Namespace, sweep) -> list:
    """``drift finetune --engine ray``: every unfinished run of ``sweep`` as one Ray task; returns all manifests."""
    from drift.scale import run_sweep_ray

    return run_sweep_ray(sweep, **ray_options(args, retries=2))
