"""Merging the shard stores of one extraction (``drift extract --shard I/N``) into one store.

The merge checks that the shards were cut from the same prompt set, cover it exactly once and agree on everything that
shapes the activations (model weights, tokenizer, chat template, run, sites, layers, positions, dtypes, capture
settings), then copies their rows into a new store laid out exactly as a single-process extraction of the full set:
the prompt table in the full set's order, rows stored in the same processing order, the same chunking and the same
provenance. With ``batch_size`` 1 the activations are bit-identical to a single run; with larger batches they differ
only as batched and unbatched runs do (float rounding of padded batches).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drift.errors import DriftError
from drift.store import layout as L
from drift.store.reader import ActivationStore, open_store
from drift.store.writer import StorePlan, StoreWriter

# Provenance fields that may differ between shards (paths on other machines, library builds, the device used).
_FREE = ("polydrift_version", "software", "model.source", "model.adapter", "capture.device", "run.checkpoint",
         "run.extra", "prompts", "shard")
TOKEN_BUDGET = 1 << 16  # tokens per copied chunk of an all-position store (bounds memory)


@dataclass(frozen=True)
class _Shard:
    path: Path
    store: ActivationStore
    index: int
    count: int
    full: dict
    rows: np.ndarray


def merge_stores(out: str | Path, shards: list[str | Path], overwrite: bool = False, chunk_rows: int = 256) -> Path:
    """Merge shard stores into one store at ``out``, identical in layout to a single-process extraction.

    Args:
        out: The merged ``.h5`` file (written as ``out.partial``, renamed when complete).
        shards: Every shard store of one cut of one prompt set (in any order).
        overwrite: Replace an existing ``out`` once the merged store is complete.
        chunk_rows: Prompts copied per batch (all-position stores are also capped by a token budget).

    Returns:
        The path of the merged store.

    Raises:
        DriftError: A file is not a complete shard store, shards are missing or repeated, prompts are not covered
            exactly once, or the shards disagree on provenance.
    """
    out = Path(out)
    paths = [Path(p) for p in shards]
    if not paths:
        raise DriftError("nothing to merge: give the shard stores written by drift extract --shard I/N")
    if out.resolve() in {p.resolve() for p in paths}:
        raise DriftError(f"the merged output {out} is also one of the shards: choose another output name")
    if out.exists() and not overwrite:
        raise DriftError(f"output {out} already exists: choose another name, or pass --overwrite to replace it")
    opened: list[ActivationStore] = []
    try:
        parts = [_open_shard(p, opened) for p in paths]
        _check_shards(parts)
        plan, source = _merged_plan(parts)
        writer = StoreWriter.open(out, plan, overwrite=overwrite)
        try:
            _copy(writer, parts, source, chunk_rows)
            writer.h5.attrs["merged_from"] = json.dumps(_merge_record(parts), sort_keys=True)
        except BaseException:
            writer.abort()
            raise
        return writer.finish()
    finally:
        for s in opened:
            s.close()


def _open_shard(path: Path, opened: list[ActivationStore]) -> _Shard:
    store = open_store(path)
    opened.append(store)
    if not store.complete:
        raise DriftError(f"{path} is incomplete: finish its extraction (drift extract ... --resume) before merging")
    info, rows = store.provenance.get("shard"), store.shard_rows
    if info is None or rows is None:
        raise DriftError(f"{path} is not a shard store (it was extracted without --shard I/N): only the shards of "
                         "one sharded extraction can be merged")
    return _Shard(path, store, int(info["index"]), int(info["count"]), info["full"], rows)


def _check_shards(parts: list[_Shard]) -> None:
    """Refuse shards of different cuts or sets, missing or repeated shards, and prompts not covered exactly once."""
    from drift.data.shard import check_rows_cover, check_shard_set

    check_shard_set([(str(p.path), p.store.provenance["shard"]) for p in parts])
    check_rows_cover([(str(p.path), [int(r) for r in p.rows], list(p.store.prompts["id"])) for p in parts],
                     int(parts[0].full["n"]))
    _check_provenance(parts)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not any(key == f or key.startswith(f + ".") for f in _FREE):
            out |= _flatten(v, key + ".")
        else:
            out[key] = v
    return out


def _identity(part: _Shard) -> dict:
    s = part.store
    flat = {k: v for k, v in _flatten(s.provenance).items()
            if not any(k == f or k.startswith(f + ".") for f in _FREE)}
    return flat | {"store.sites": s.sites, "store.layers": s.layers, "store.positions": s.positions,
                   "store.storage_dtype": s.storage_dtype, "store.d_model": s.d_model, "store.ragged": s.has_ragged}


def _check_provenance(parts: list[_Shard]) -> None:
    ref = _identity(parts[0])
    for p in parts[1:]:
        other = _identity(p)
        diff = sorted(k for k in ref.keys() | other.keys() if ref.get(k) != other.get(k))
        if diff:
            k = diff[0]
            raise DriftError(
                f"cannot merge {parts[0].path.name} and {p.path.name}: they differ in {', '.join(diff[:4])} "
                f"({_short(ref.get(k))} vs {_short(other.get(k))}); extract every shard with the same model, "
                "adapter, prompts and capture settings"
            )


def _short(v) -> str:
    text = json.dumps(v, sort_keys=True) if not isinstance(v, str) else v
    return text if len(text) <= 40 else text[:37] + "..."


def _merged_plan(parts: list[_Shard]) -> tuple[StorePlan, np.ndarray]:
    """The plan of the single-process store, and for each merged stored row its (shard, shard stored row)."""
    from drift.data.records import PromptSet, make_prompt

    n = int(parts[0].full["n"])
    records: list[dict] = [{}] * n
    n_tokens = np.zeros(n, dtype=np.int64)
    spans = np.zeros((n, 2), dtype=np.int64)
    where = np.zeros((n, 2), dtype=np.int64)  # full row -> (shard, stored row in that shard)
    for k, p in enumerate(parts):
        df, rows = p.store.prompts, np.asarray(p.rows, dtype=np.int64)
        cols = {c: df[c].tolist() for c in L.PROMPT_COLUMNS}
        for j, r in enumerate(rows.tolist()):
            records[r] = {c: cols[c][j] for c in L.PROMPT_COLUMNS}
        n_tokens[rows], spans[rows] = df["n_tokens"].to_numpy(), p.store._h5["prompts/instr_span"][()]
        where[rows, 0], where[rows, 1] = k, p.store._inverse
    full = parts[0].full
    rebuilt = PromptSet([make_prompt(r, f"row {i} of the merged prompts") for i, r in enumerate(records)], full["name"])
    if rebuilt.content_hash() != full["hash"]:
        raise DriftError("the shards' prompts, put back in order, do not match the prompt set they were cut from "
                         f"(hash {full['hash'][:12]}): re-extract the shards from one prompt set")
    order = L.processing_order(n_tokens.tolist())
    s0 = parts[0].store
    prov = {k: v for k, v in s0.provenance.items() if k != "shard"} | {"prompts": dict(full)}
    plan = StorePlan(prompts=records, n_tokens=n_tokens.tolist(), instr_span=[tuple(x) for x in spans.tolist()],
                     order=order, sites=s0.sites, layers=json.loads(s0._h5.attrs["layers"]),
                     positions=s0.positions, ragged=s0.has_ragged, d_model=s0.d_model, dtype=s0.storage_dtype,
                     provenance=prov)
    return plan, where[np.asarray(order, dtype=np.int64)]


def _chunks(parts: list[_Shard], source: np.ndarray, chunk_rows: int, ragged: bool):
    """Yield (start, stop) ranges of merged stored rows, capped by rows and (for ragged stores) tokens."""
    if not ragged:
        for start in range(0, len(source), chunk_rows):
            yield start, min(start + chunk_rows, len(source))
        return
    counts = [np.diff(p.store._h5["ragged/offsets"][()]) for p in parts]
    start, tokens = 0, 0
    for k, (s, row) in enumerate(source):
        t = int(counts[s][row])
        if k > start and (k - start >= chunk_rows or tokens + t > TOKEN_BUDGET):
            yield start, k
            start, tokens = k, 0
        tokens += t
    yield start, len(source)


def _copy(writer: StoreWriter, parts: list[_Shard], source: np.ndarray, chunk_rows: int) -> None:
    plan = writer.plan
    offsets = [p.store._h5["ragged/offsets"][()] if plan.ragged else None for p in parts]
    for start, stop in _chunks(parts, source, chunk_rows, plan.ragged):
        src = source[start:stop]
        fixed, flat = {}, {}
        for site in plan.sites:
            for layer in plan.layers:
                if plan.positions:
                    fixed[(site, layer)] = _gather_fixed(parts, src, site, layer)
                if plan.ragged:
                    flat[(site, layer)] = _gather_ragged(parts, offsets, src, site, layer)
        writer.write_batch(stop - start, fixed, flat)


def _gather_fixed(parts: list[_Shard], src: np.ndarray, site: str, layer: int) -> np.ndarray:
    first = parts[0].store._dataset(site, layer)
    out = np.empty((len(src), *first.shape[1:]), dtype=np.float32)
    for k, p in enumerate(parts):
        mine = np.flatnonzero(src[:, 0] == k)
        if len(mine):
            rows = src[mine, 1]
            lo, hi = int(rows.min()), int(rows.max()) + 1
            block = p.store._dataset(site, layer)[lo:hi]
            out[mine] = L.from_storage(block[rows - lo], p.store.storage_dtype)
    return out


def _gather_ragged(parts, offsets, src: np.ndarray, site: str, layer: int) -> np.ndarray:
    pieces: list[np.ndarray | None] = [None] * len(src)
    for k, p in enumerate(parts):
        mine = np.flatnonzero(src[:, 0] == k)
        if len(mine):
            rows, off = src[mine, 1], offsets[k]
            t0, t1 = int(off[rows.min()]), int(off[rows.max() + 1])
            block = L.from_storage(p.store._dataset(site, layer, ragged=True)[t0:t1], p.store.storage_dtype)
            for m, r in zip(mine, rows):
                pieces[m] = block[off[r] - t0 : off[r + 1] - t0]
    return np.concatenate(pieces, axis=0)


def _merge_record(parts: list[_Shard]) -> list[dict]:
    return [{"file": str(p.path), "shard": f"{p.index}/{p.count}", "created": str(p.store._h5.attrs["created"]),
             "software": p.store.provenance.get("software"), "device": p.store.provenance["capture"].get("device")}
            for p in sorted(parts, key=lambda p: p.index)]
