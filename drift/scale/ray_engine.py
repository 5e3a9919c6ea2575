"""Ray launchers: sharded extraction over many checkpoints, and fine-tuning sweeps, one task per unit of work.

Ray is imported only inside these functions (extra ``scale``). Without an ``address`` a local Ray instance is started
with ``ray.init()`` and shut down at the end, which is how this is tested; on a cluster pass the head's address (or
call ``ray.init`` yourself first) and put the output folder on storage every node can reach.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from drift.data.records import PromptSet
from drift.errors import DriftError
from drift.scale.jobs import ExtractJob, extract_shard, merged_path, shard_path, store_done, train_run

RETRYABLE = (RuntimeError, OSError, MemoryError)  # besides worker deaths; a DriftError (user error) is never retried


def _start_ray(address: str | None, init_kwargs: dict | None) -> bool:
    """Connect to (or start) Ray; return True when this call started it and should shut it down."""
    import ray

    if ray.is_initialized():
        return False
    local = {} if address else {"include_dashboard": False, "log_to_driver": False}
    ray.init(address=address, **local, **(init_kwargs or {}))
    return True


def _cause(e: BaseException) -> str:
    """One line for a task's error (Ray wraps it with the remote traceback)."""
    cause = getattr(e, "cause", None) or e
    lines = str(cause).strip().splitlines() or [""]
    return f"{type(cause).__name__}: {lines[-1]}"


def _pending_shards(jobs: list[ExtractJob], prompts: PromptSet, out_dir: Path, shards: int, config,
                    overwrite: bool, log, done=store_done, merged=merged_path, shard=shard_path,
                    what: str = "merged store exists",
                    ) -> tuple[dict[str, list[Path]], list[tuple[ExtractJob, int, Path]]]:
    """The shard files of every checkpoint whose merged output is not finished, and the shards still to do.

    ``done(path, prompt_hash, shard, config)``, ``merged(out_dir, name)`` and ``shard(out_dir, name, i, n)`` name
    and check the files (stores by default; the generation engine passes its completions files).
    """
    full_hash = prompts.content_hash()
    todo, paths = [], {}
    for job in jobs:
        if not overwrite and done(merged(out_dir, job.name), full_hash, None, config):
            log(f"{job.name}: {what}, skipped")
            continue
        paths[job.name] = [shard(out_dir, job.name, i, shards) for i in range(shards)]
        for i, path in enumerate(paths[job.name]):
            if not overwrite and done(path, full_hash, (i, shards), config):
                log(f"{job.name}: shard {i}/{shards} done already, skipped")
            else:
                todo.append((job, i, path))
    return paths, todo


def run_extract_ray(
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
    """Extract every checkpoint in ``jobs`` over ``shards`` shards of ``prompts`` on Ray, then merge per checkpoint.

    One Ray task per (checkpoint, shard). A task whose worker dies (killed, out of memory, preempted) or that raises
    a retryable error is retried up to ``max_retries`` times and resumes its partial file. Shards and merged stores
    that already exist complete are skipped, so rerunning the same call finishes an interrupted sweep.

    Args:
        jobs: The checkpoints (see :func:`drift.scale.make_jobs`).
        prompts: The full prompt set; every checkpoint sees the same shards.
        out_dir: Output folder: ``NAME.h5`` per checkpoint, shards under ``shards/NAME/``.
        config: A :class:`~drift.capture.CaptureConfig` (default: resid_post, all layers, last position).
        shards: Shards per checkpoint.
        num_gpus: GPUs per task (1 on GPU nodes; fractions share a GPU); 0 runs on CPU.
        num_cpus: CPUs per task.
        max_retries: Retries of a failed task.
        address: Ray cluster address (default: the running instance, else a new local one).
        init_kwargs: Extra ``ray.init`` arguments when this call starts Ray (e.g. ``num_cpus``).
        overwrite: Recompute shards and merged stores that exist.
        keep_shards: Keep the shard files after merging (False deletes them).
        task_hook: Called as ``task_hook(job, shard)`` at the start of every task attempt, inside the worker.
        log: Progress lines.

    Returns:
        Checkpoint name -> merged store path, in the order of ``jobs``.

    Raises:
        DriftError: Bad arguments, or tasks that still failed after their retries (their error is named).
    """
    from drift.capture import CaptureConfig

    config = config or CaptureConfig()
    out_dir = Path(out_dir)
    if not jobs:
        raise DriftError("no checkpoints to extract: give --models and/or --adapters")
    if len({j.name for j in jobs}) != len(jobs):
        raise DriftError("two jobs share a name: every checkpoint needs its own output name")
    prompts.shard(0, shards)  # validates the shard count against the prompt groups before anything starts
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, todo = _pending_shards(jobs, prompts, out_dir, shards, config, overwrite, log)
    failed = _run_tasks(todo, prompts, shards, config, num_gpus, num_cpus, max_retries, address, init_kwargs,
                        task_hook, log) if todo else {}
    for job in jobs:
        if job.name in paths and job.name not in failed:
            merged = merged_path(out_dir, job.name)
            _merge(merged, paths[job.name], overwrite, keep_shards)
            log(f"{job.name}: merged {shards} shard(s) into {merged}")
    if failed:
        errors = [e for errs in failed.values() for e in errs]
        raise DriftError(f"{len(errors)} extraction task(s) failed after their retries ({'; '.join(errors[:3])}): "
                         "fix the cause and rerun the same command; finished shards and checkpoints are kept")
    return {job.name: merged_path(out_dir, job.name) for job in jobs}


def _merge(merged: Path, parts: list[Path], overwrite: bool, keep_shards: bool) -> None:
    from drift.store import merge_stores

    merge_stores(merged, parts, overwrite=overwrite)
    if not keep_shards:
        shutil.rmtree(parts[0].parent)


def _run_tasks(todo, prompts, shards, config, num_gpus, num_cpus, max_retries, address, init_kwargs, hook,
               log) -> dict[str, list[str]]:
    """Run the (job, shard, path) tasks on Ray; return the errors of the tasks that failed, by job name."""
    import ray

    started = _start_ray(address, init_kwargs)
    try:
        task = ray.remote(extract_shard).options(num_gpus=num_gpus, num_cpus=num_cpus, max_retries=max_retries,
                                                 retry_exceptions=list(RETRYABLE))
        ref = ray.put(prompts)
        running = {task.remote(job, ref, i, shards, str(path), config, hook): (job, i) for job, i, path in todo}
        log(f"submitted {len(running)} extraction task(s) to Ray")
        return _collect(running, shards, log)
    finally:
        if started:
            ray.shutdown()


def _collect(running: dict, shards: int, log) -> dict[str, list[str]]:
    """Wait for every task and report each as it ends; return the errors of the failed ones, by job name."""
    import ray

    failed: dict[str, list[str]] = {}
    while running:
        (done,), _ = ray.wait(list(running), num_returns=1)
        job, i = running.pop(done)
        try:
            ray.get(done)
            log(f"{job.name}: shard {i}/{shards} done")
        except Exception as e:  # noqa: BLE001 - Ray wraps the task's error; report it and go on with the others
            failed.setdefault(job.name, []).append(f"{job.name} shard {i}/{shards}: {_cause(e)}")
            log(f"{job.name}: shard {i}/{shards} FAILED ({failed[job.name][-1]})")
    return failed


def plan_sweep(sweep, log: Callable[[str], None] = print) -> tuple[dict, list[list[tuple]]]:
    """Split a sweep into its finished runs (name -> manifest) and two waves of (name, config, folder) to train.

    The first wave holds the first run of every ``builtin:refusal-pairs`` cache not built yet; every other run waits
    for the second wave, so all runs of a cache train on the pairs its first run built, as in a sequential sweep.
    """
    from drift.finetune.sweep import pairs_path
    from drift.runs import read_manifest

    out = Path(sweep.out)
    cache, done, first, rest, builders = out / "_data", {}, [], [], set()
    for name, cfg in sweep.runs():
        folder = out / name
        found = read_manifest(folder) if folder.is_dir() else None
        if found is not None:
            log(f"{name}: done already ({found.run_id}), skipped")
            done[name] = found
            continue
        if folder.exists():
            raise DriftError(f"{folder} exists without a run manifest: delete it or choose another sweep out")
        shared = pairs_path(cfg, cache)
        builds = shared is not None and not shared.exists() and shared not in builders
        builders |= {shared} if builds else set()
        (first if builds else rest).append((name, cfg, folder))
    return done, [first, rest]


def run_sweep_ray(
    sweep,
    num_gpus: float = 0.0,
    num_cpus: float = 1.0,
    max_retries: int = 2,
    address: str | None = None,
    init_kwargs: dict | None = None,
    log: Callable[[str], None] = print,
) -> list:
    """Train every unfinished run of a fine-tuning sweep as one Ray task each (via :func:`drift.finetune.run_one`).

    Finished runs (a folder with its manifest) are skipped, as in :func:`drift.finetune.run_sweep`; runs sharing a
    ``builtin:refusal-pairs`` cache wait for the run that builds it (see :func:`plan_sweep`).

    Returns:
        The :class:`~drift.runs.RunManifest` of every run, in sweep order.
    """
    from drift.runs import RunManifest

    Path(sweep.out).mkdir(parents=True, exist_ok=True)
    done, waves = plan_sweep(sweep, log)
    if not any(waves):
        return [done[name] for name, _ in sweep.runs()]
    import ray

    started = _start_ray(address, init_kwargs)
    try:
        task = ray.remote(train_run).options(num_gpus=num_gpus, num_cpus=num_cpus, max_retries=max_retries,
                                             retry_exceptions=list(RETRYABLE))
        cache = str(Path(sweep.out) / "_data")
        for wave in waves:
            refs = {task.remote(cfg, str(folder), cache): name for name, cfg, folder in wave}
            for ref, name in refs.items():
                try:
                    done[name] = RunManifest.from_dict(ray.get(ref))
                except Exception as e:  # noqa: BLE001 - report the run's own error in one line
                    raise DriftError(f"fine-tuning run {name} failed after its retries ({_cause(e)}): fix the cause "
                                     "and rerun; finished runs are kept and skipped") from None
                log(f"{name}: trained ({done[name].run_id})")
    finally:
        if started:
            ray.shutdown()
    return [done[name] for name, _ in sweep.runs()]
