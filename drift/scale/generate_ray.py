"""Sharded generation over many checkpoints on Ray: one task per (checkpoint, shard), merged per checkpoint.

Every (checkpoint, shard) writes ``OUT/shards/NAME/NAME.shard-III-of-NNN.jsonl`` (with its ``.meta.json``), the file
``drift generate --shard I/N`` writes; when all shards of a checkpoint are done they are merged with
:func:`drift.generate.merge_completions` into ``OUT/NAME.jsonl``. Ray is imported only inside the launcher (extra
``scale``); the task body :func:`generate_shard` is plain Python.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from drift.data.records import PromptSet
from drift.errors import DriftError
from drift.scale.jobs import ExtractJob, merged_path, shard_path
from drift.scale.ray_engine import RETRYABLE, _collect, _pending_shards, _start_ray


def completions_shard_path(out_dir: str | Path, name: str, index: int, count: int) -> Path:
    """Where the completions of shard ``index`` of ``count`` of checkpoint ``name`` are written."""
    return shard_path(out_dir, name, index, count).with_suffix(".jsonl")


def completions_path(out_dir: str | Path, name: str) -> Path:
    """Where the merged completions of checkpoint ``name`` are written."""
    return merged_path(out_dir, name).with_suffix(".jsonl")


def completions_done(path: Path, full_hash: str, shard: tuple[int, int] | None, config) -> bool:
    """True when ``path`` holds every completion of the prompt set hashed ``full_hash`` (of ``shard`` when given)
    under the generation settings ``config``; False when it is absent or unfinished (no ``.meta.json`` yet).

    Raises:
        DriftError: ``path`` is finished but holds another prompt set, shard or generation settings.
    """
    from drift.generate.core import META_SUFFIX, read_completions

    meta_path = path.with_name(path.name + META_SUFFIX)
    if not path.is_file() or not meta_path.is_file():
        return False
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    cut = meta.get("shard")
    got = cut["full"]["hash"] if cut else meta.get("prompts", {}).get("hash")
    where = (cut["index"], cut["count"]) if cut else None
    if got != full_hash or where != shard or meta.get("gen_key") != config.key:
        raise DriftError(f"{path} holds completions of another prompt set, shard or generation settings: delete "
                         "it, choose another output folder, or pass overwrite")
    want = len(cut["ids"]) if cut else meta["prompts"]["n"]
    return meta.get("n_completions") == want and len(read_completions(path)) == want


def generate_shard(job: ExtractJob, prompts: PromptSet, index: int, count: int, out: str, config,
                   overwrite: bool = False, hook: Callable[[ExtractJob, int], None] | None = None) -> str:
    """Task body: generate shard ``index`` of ``count`` of ``prompts`` for ``job`` into the completions file ``out``.

    A file left by a killed attempt is resumed (its finished completions are kept). ``hook(job, index)`` runs first,
    inside the worker (tests use it to inject faults).
    """
    from drift.generate import generate_completions
    from drift.scale.jobs import _load

    if hook is not None:
        hook(job, index)
    part = prompts.shard(index, count)
    generate_completions(_load(job), part, out, config, overwrite=overwrite, progress=False)
    return out


def _pending(jobs: list[ExtractJob], prompts: PromptSet, out_dir: Path, shards: int, config, overwrite: bool,
             log) -> tuple[dict[str, list[Path]], list[tuple[ExtractJob, int, Path]]]:
    """The shard files of every checkpoint whose merged file is not finished, and the shards still to generate."""
    return _pending_shards(jobs, prompts, out_dir, shards, config, overwrite, log, done=completions_done,
                           merged=completions_path, shard=completions_shard_path, what="merged completions exist")


def run_generate_ray(
    jobs: list[ExtractJob],
    prompts: PromptSet,
    out_dir: str | Path,
    config=None,
    shards: int = 1,
    num_gpus: float = 0.0,
    num_cpus: float = 1.0,
    max_retries: int = 3,
    address: str | None = None,
    init_kwargs: dict | None = None,
    overwrite: bool = False,
    keep_shards: bool = True,
    task_hook: Callable[[ExtractJob, int], None] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Path]:
    """Generate completions for every checkpoint in ``jobs`` over ``shards`` shards of ``prompts`` on Ray.

    One Ray task per (checkpoint, shard). A task whose worker dies (killed, out of memory, preempted) or that raises
    a retryable error is retried up to ``max_retries`` times and resumes its shard file. Shard files and merged files
    that are already finished are skipped, so rerunning the same call finishes an interrupted sweep. Each
    checkpoint's shards are merged with :func:`drift.generate.merge_completions`; the merged file holds the records a
    single ``drift generate`` run over ``prompts`` writes, in the same order.

    Args:
        jobs: The checkpoints (see :func:`drift.scale.make_jobs`).
        prompts: The full prompt set; every checkpoint sees the same shards.
        out_dir: Output folder: ``NAME.jsonl`` per checkpoint, shards under ``shards/NAME/``.
        config: A :class:`~drift.generate.GenerationConfig` (default: greedy, 256 new tokens).
        shards: Shards per checkpoint.
        num_gpus: GPUs per task (1 on GPU nodes; fractions share a GPU); 0 runs on CPU.
        num_cpus: CPUs per task.
        max_retries: Retries of a failed task.
        address: Ray cluster address (default: the running instance, else a new local one).
        init_kwargs: Extra ``ray.init`` arguments when this call starts Ray (e.g. ``num_cpus``).
        overwrite: Regenerate shards and merged files that exist.
        keep_shards: Keep the shard files after merging (False deletes them).
        task_hook: Called as ``task_hook(job, shard)`` at the start of every task attempt, inside the worker.
        log: Progress lines.

    Returns:
        Checkpoint name -> merged completions path, in the order of ``jobs``.

    Raises:
        DriftError: Bad arguments, or tasks that still failed after their retries (their error is named).
    """
    from drift.generate import GenerationConfig

    config = config or GenerationConfig()
    out_dir = Path(out_dir)
    if not jobs:
        raise DriftError("no checkpoints to generate for: give --models and/or --adapters")
    if len({j.name for j in jobs}) != len(jobs):
        raise DriftError("two jobs share a name: every checkpoint needs its own output name")
    prompts.shard(0, shards)  # validates the shard count against the prompt groups before anything starts
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, todo = _pending(jobs, prompts, out_dir, shards, config, overwrite, log)
    failed = _run_tasks(todo, prompts, shards, config, overwrite, (num_gpus, num_cpus, max_retries), address,
                        init_kwargs, task_hook, log) if todo else {}
    for job in jobs:
        if job.name in paths and job.name not in failed:
            merged = completions_path(out_dir, job.name)
            _merge(merged, paths[job.name], keep_shards)
            log(f"{job.name}: merged {shards} shard(s) into {merged}")
    if failed:
        errors = [e for errs in failed.values() for e in errs]
        raise DriftError(f"{len(errors)} generation task(s) failed after their retries ({'; '.join(errors[:3])}): "
                         "fix the cause and rerun the same command; finished shards and checkpoints are kept")
    return {job.name: completions_path(out_dir, job.name) for job in jobs}


def _run_tasks(todo, prompts, shards, config, overwrite, resources, address, init_kwargs, hook,
               log) -> dict[str, list[str]]:
    """Run the (job, shard, path) tasks on Ray; return the errors of the tasks that failed, by job name."""
    import ray

    num_gpus, num_cpus, max_retries = resources
    started = _start_ray(address, init_kwargs)
    try:
        task = ray.remote(generate_shard).options(num_gpus=num_gpus, num_cpus=num_cpus, max_retries=max_retries,
                                                  retry_exceptions=list(RETRYABLE))
        ref = ray.put(prompts)
        running = {task.remote(job, ref, i, shards, str(path), config, overwrite, hook): (job, i)
                   for job, i, path in todo}
        log(f"submitted {len(running)} generation task(s) to Ray")
        return _collect(running, shards, log)
    finally:
        if started:
            ray.shutdown()


def _merge(merged: Path, parts: list[Path], keep_shards: bool) -> None:
    """Merge one checkpoint's shard files (replacing an unfinished or outdated merge); optionally delete them."""
    from drift.generate import merge_completions
    from drift.generate.core import META_SUFFIX

    merge_completions(merged, parts, overwrite=True)
    if keep_shards:
        return
    for part in parts:  # only this run's files: an extraction may share the shards/NAME folder
        part.unlink(missing_ok=True)
        part.with_name(part.name + META_SUFFIX).unlink(missing_ok=True)
    if not any(parts[0].parent.iterdir()):
        parts[0].parent.rmdir()
