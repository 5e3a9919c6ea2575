"""The units of work a launcher schedules, and their task bodies (plain Python: no Ray needed to run or test them).

An extraction sweep is a list of :class:`ExtractJob` (one per checkpoint) times ``N`` shards of the prompt set. Each
(checkpoint, shard) writes ``OUT/shards/NAME/NAME.shard-III-of-NNN.h5``; when all shards of a checkpoint are done they
are merged into ``OUT/NAME.h5``, the store a single-process extraction would have written.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from drift.errors import DriftError

_CACHE: dict[tuple, object] = {}  # the last model loaded in this worker process, reused by its next shard


@dataclass(frozen=True)
class ExtractJob:
    """One checkpoint to extract.

    Attributes:
        name: Output stem (``NAME.h5``); letters, digits, ``.``, ``_`` and ``-``.
        model: Base model: ``default``, a hub id, a local directory or a ``.gguf`` file.
        adapter: A PEFT adapter directory merged into ``model``, or None.
        load: Further :func:`~drift.models.load_model` arguments (``dtype``, ``device``, ``revision``, ``chat``).
    """

    name: str
    model: str
    adapter: str | None = None
    load: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.name) or self.name.startswith("."):
            raise DriftError(f"job name {self.name!r} is not a plain file stem: use letters, digits, '.', '_', '-'")


def make_jobs(model: str, models: list[str] | None = None, adapters: list[str] | None = None,
              load: dict | None = None) -> list[ExtractJob]:
    """Jobs for full checkpoints ``models`` (each as is) and ``adapters`` (each applied to ``model``).

    With neither, the one job is ``model`` itself. Names come from the folder or file names; duplicates are an error.
    """
    load = load or {}
    specs = [(m, None) for m in models or []] + [(model, a) for a in adapters or []]
    specs = specs or [(model, None)]
    jobs, seen = [], {}
    for m, a in specs:
        stem = Path((a or m).rstrip("/")).name.removesuffix(".gguf")
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "model"
        if name in seen:
            raise DriftError(f"two checkpoints would both be written as {name}.h5 ({seen[name]} and {a or m}): "
                             "give them folders with different names")
        seen[name] = a or m
        jobs.append(ExtractJob(name, m, a, dict(load)))
    return jobs


def shard_path(out_dir: str | Path, name: str, index: int, count: int) -> Path:
    """Where shard ``index`` of ``count`` of checkpoint ``name`` is written."""
    return Path(out_dir) / "shards" / name / f"{name}.shard-{index:03d}-of-{count:03d}.h5"


def merged_path(out_dir: str | Path, name: str) -> Path:
    """Where the merged store of checkpoint ``name`` is written."""
    return Path(out_dir) / f"{name}.h5"


def store_done(path: Path, full_hash: str, shard: tuple[int, int] | None = None, config=None) -> bool:
    """True when ``path`` is a finished store of the prompt set hashed ``full_hash`` (and of ``shard`` and the
    capture ``config`` when given); False when there is no such file.

    Raises:
        DriftError: ``path`` exists but holds another prompt set, shard or capture settings (another sweep's file).
    """
    from drift.store import open_store

    if not path.exists():
        return False
    with open_store(path) as store:
        prov = store.provenance
        got = prov["shard"]["full"]["hash"] if "shard" in prov else prov["prompts"]["hash"]
        where = (prov["shard"]["index"], prov["shard"]["count"]) if "shard" in prov else None
        if store.complete and got == full_hash and where == shard and _same_capture(prov, config):
            return True
    raise DriftError(f"{path} exists but holds another prompt set, shard or capture settings: delete it, choose "
                     "another output folder, or pass overwrite")


def _same_capture(prov: dict, config) -> bool:
    """Whether a store's recorded capture settings are those of ``config`` (None: not checked)."""
    if config is None:
        return True
    from dataclasses import asdict

    from drift.capture.sites import check_layers

    want = asdict(config) | {"layers": check_layers(config.layers, prov["model"]["n_layers"])}
    cap = prov["capture"]
    return all(list(v) == list(cap[k]) if isinstance(v, (list, tuple)) else v == cap[k] for k, v in want.items())


def _load(job: ExtractJob):
    from drift.models import load_model

    key = (job.model, job.adapter, repr(sorted(job.load.items())))
    if key not in _CACHE:
        _CACHE.clear()  # at most one model per worker: free the previous one first
        _CACHE[key] = load_model(job.model, adapter=job.adapter, **job.load)
    return _CACHE[key]


def extract_shard(job: ExtractJob, prompts, index: int, count: int, out: str, config,
                  hook: Callable[[ExtractJob, int], None] | None = None) -> str:
    """Task body: extract shard ``index`` of ``count`` of ``prompts`` for ``job`` into ``out``.

    A partial file left by a killed attempt is resumed (bit-identical to an uninterrupted run); a partial that cannot
    be resumed is started over. ``hook(job, index)`` runs first, inside the worker (tests use it to inject faults).
    """
    from drift.capture import extract
    from drift.store import partial_path

    if hook is not None:
        hook(job, index)
    part = prompts.shard(index, count)
    lm = _load(job)
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    resume = partial_path(out_path).exists()
    try:
        extract(lm, part, out_path, config, resume=resume, overwrite=True, progress=False)
    except DriftError:
        if not resume:
            raise
        extract(lm, part, out_path, config, resume=False, overwrite=True, progress=False)
    return str(out_path)


def train_run(config, folder: str, cache: str | None) -> dict:
    """Task body: train one run of a sweep into ``folder`` (returns the manifest; a finished folder is kept)."""
    from drift.finetune import run_one
    from drift.runs import read_manifest

    found = read_manifest(folder) if Path(folder).is_dir() else None
    if found is not None:
        return found.to_dict()
    return run_one(config, folder, progress=False, cache=Path(cache) if cache else None, overwrite=True).to_dict()
