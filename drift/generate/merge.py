"""Merging the completions of a sharded generation (``drift generate --shard I/N``) into one ``completions.jsonl``.

Each shard's ``.meta.json`` records the shard, the full prompt set's hash and each prompt's row in it. The merge checks
that the shards are one complete cut of one prompt set, agree on the model state and generation settings, and hold one
completion for every prompt, then writes the records in the order of the full prompt set with a merged ``.meta.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from drift.data.shard import check_rows_cover, check_shard_set
from drift.errors import DriftError
from drift.generate.core import META_SUFFIX, read_completions

# Meta fields that must agree between shards (everything that shapes the completions).
_SAME = ("model", "dtype", "chat_template_sha256", "generation", "gen_key")


def merge_completions(out: str | Path, shards: list[str | Path], overwrite: bool = False) -> Path:
    """Merge shard completion files into ``out`` (records in the full prompt set's order, plus ``.meta.json``).

    Args:
        out: The merged ``.jsonl`` file.
        shards: Every shard's completions file (each with its ``.meta.json`` beside it), in any order.
        overwrite: Replace an existing ``out``.

    Raises:
        DriftError: A file is not a finished shard, shards are missing or repeated, a prompt lacks a completion or has
            two, or the shards were generated with different models or settings.
    """
    out, paths = Path(out), [Path(p) for p in shards]
    if not paths:
        raise DriftError("nothing to merge: give the completion files written by drift generate --shard I/N")
    if out.suffix != ".jsonl":
        raise DriftError(f"completions are written as JSONL: give an output ending in .jsonl, not {out.name}")
    if out.exists() and not overwrite:
        raise DriftError(f"output {out} already exists: choose another name, or pass --overwrite to replace it")
    if out.resolve() in {p.resolve() for p in paths}:
        raise DriftError(f"the merged output {out} is also one of the shards: choose another output name")
    metas = [_read_meta(p) for p in paths]
    check_shard_set([(str(p), m["shard"]) for p, m in zip(paths, metas)])
    check_rows_cover([(str(p), m["shard"]["rows"], m["shard"]["ids"]) for p, m in zip(paths, metas)],
                     int(metas[0]["shard"]["full"]["n"]))
    _check_same(paths, metas)
    merged: list[tuple[int, dict]] = []
    for path, meta in zip(paths, metas):
        merged += _shard_records(path, meta)
    merged.sort(key=lambda x: x[0])
    tmp = out.with_name(out.name + ".partial")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(rec, ensure_ascii=False) + "\n" for _, rec in merged)
    os.replace(tmp, out)
    _write_merged_meta(out, paths, metas, len(merged))
    return out


def _read_meta(path: Path) -> dict:
    meta_path = path.with_name(path.name + META_SUFFIX)
    if not path.is_file():
        raise DriftError(f"completions file not found: {path}")
    if not meta_path.is_file():
        raise DriftError(f"{path} has no {meta_path.name} beside it: merge the files written by drift generate "
                         "--shard I/N, with their .meta.json")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if "shard" not in meta:
        raise DriftError(f"{path} is not a shard (it was generated without --shard I/N): only the shards of one "
                         "sharded generation can be merged")
    return meta


def _check_same(paths: list[Path], metas: list[dict]) -> None:
    ref = metas[0]
    for path, meta in zip(paths[1:], metas[1:]):
        diff = [k for k in _SAME if meta.get(k) != ref.get(k)]
        if meta["run"]["run_id"] != ref["run"]["run_id"]:
            diff.insert(0, "run_id")
        if diff:
            raise DriftError(f"cannot merge {paths[0]} and {path}: they differ in {', '.join(diff)}; generate every "
                             "shard with the same model, adapter and generation settings")


def _shard_records(path: Path, meta: dict) -> list[tuple[int, dict]]:
    """The shard's records keyed by full-set row; refuses foreign, repeated or missing completions."""
    row_of = dict(zip(meta["shard"]["ids"], meta["shard"]["rows"]))
    spec = f"{meta['shard']['index']}/{meta['shard']['count']}"
    found: dict[str, dict] = {}
    for rec in read_completions(path):
        if rec.get("run_id") != meta["run"]["run_id"] or rec.get("gen_key") != meta["gen_key"]:
            raise DriftError(f"{path} holds completions of another run or generation config ({rec.get('run_id')}): "
                             "regenerate that shard into a fresh file")
        if rec["id"] not in row_of:
            raise DriftError(f"{path} (shard {spec}) has a completion for prompt {rec['id']!r}, which is not in that "
                             "shard: regenerate the shard into a fresh file")
        if rec["id"] in found:
            raise DriftError(f"{path} has two completions for prompt {rec['id']!r}: regenerate that shard")
        found[rec["id"]] = rec
    missing = [i for i in row_of if i not in found]
    if missing:
        raise DriftError(f"{path} (shard {spec}) lacks completions for {len(missing)} prompt(s) (e.g. "
                         f"{', '.join(missing[:3])}): rerun drift generate --shard {spec} with the same --out to "
                         "finish it")
    return [(row_of[i], rec) for i, rec in found.items()]


def _write_merged_meta(out: Path, paths: list[Path], metas: list[dict], n: int) -> None:
    order = sorted(range(len(metas)), key=lambda k: metas[k]["shard"]["index"])
    meta = {k: v for k, v in metas[order[0]].items() if k not in ("shard", "seconds_last_call")}
    meta |= {"prompts": metas[0]["shard"]["full"], "n_completions": n,
             "merged_from": [{"file": str(paths[k]), "shard": f"{metas[k]['shard']['index']}/"
                              f"{metas[k]['shard']['count']}", "device": metas[k].get("device"),
                              "seconds_last_call": metas[k].get("seconds_last_call")} for k in order]}
    tmp = out.with_name(out.name + META_SUFFIX + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, out.with_name(out.name + META_SUFFIX))
