"""Generate completions for a prompt set into ``completions.jsonl``: resumable, with provenance beside it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

from drift.data.records import Prompt, PromptSet
from drift.errors import DriftError
from drift.generate.config import GenerationConfig

META_SUFFIX = ".meta.json"


def read_completions(path: str | Path) -> list[dict]:
    """Read completion records from a JSONL file; a torn last line (an interrupted write) is ignored.

    Raises:
        DriftError: If the file is missing or a line other than the last is not JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise DriftError(f"completions file not found: {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise DriftError(f"{path}: line {i + 1} is not JSON; fix or remove it") from None
    return records


def _truncate_torn_tail(path: Path) -> None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def _done_ids(path: Path, run_id: str, key: str, overwrite: bool) -> set[str]:
    if not path.exists() or overwrite:
        return set()
    _truncate_torn_tail(path)
    done = set()
    for rec in read_completions(path):
        if rec.get("run_id") != run_id or rec.get("gen_key") != key:
            raise DriftError(
                f"{path} holds completions of another model state or generation config (run {rec.get('run_id')}); "
                "choose another --out, or pass --overwrite to replace it"
            )
        done.add(rec["id"])
    return done


def _record(p: Prompt, gen, run_id: str, model_id: str, config: GenerationConfig) -> dict:
    return {
        "run_id": run_id, "id": p.id, "group": p.group, "lang": p.lang, "label": p.label, "category": p.category,
        "prompt": p.text, "completion": gen.completion, "n_tokens": gen.n_tokens, "finish_reason": gen.finish_reason,
        "model": model_id, "source": p.source, "generation": config.to_dict(), "gen_key": config.key,
    }


def generate_completions(
    lm,
    prompts: PromptSet | Iterable[Prompt],
    out: str | Path,
    config: GenerationConfig | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Generate a completion for every prompt and write ``completions.jsonl`` (plus ``.meta.json`` provenance).

    Rerunning with the same model state and config skips prompt ids already written, so an interrupted run resumes.
    Runtime interventions active on ``lm`` (:func:`drift.interventions.ablate_direction`, ``add_direction``) apply
    and change the run id. With ``overwrite``, a new file is written beside the old one and replaces it at the end.

    Args:
        lm: A :class:`~drift.models.LoadedModel` (for ``backend="vllm"`` only its tokenizer and source are used).
        prompts: Prompts to complete; a shard from :meth:`PromptSet.shard` records its place in the full set in the
            ``.meta.json`` file, for ``drift merge --completions``.
        out: The ``.jsonl`` file to write.
        config: Generation settings (default: greedy, 256 new tokens, batch 16).
        overwrite: Replace an existing file of another run or config.
        progress: Show a progress bar.

    Returns:
        The path of the completions file.
    """
    from tqdm.auto import tqdm

    from drift.runs import manifest_for

    config = config or GenerationConfig()
    out = Path(out)
    if out.suffix != ".jsonl":
        raise DriftError(f"completions are written as JSONL: give an --out ending in .jsonl, not {out.name}")
    out.parent.mkdir(parents=True, exist_ok=True)
    manifest = manifest_for(lm)
    target = out.with_name(out.name + ".partial") if overwrite and out.exists() else out
    if target != out and target.exists():
        target.unlink()
    todo = list(prompts)
    if not todo:
        raise DriftError("no prompts to generate for: check the prompt set and its filters")
    if len({p.id for p in todo}) != len(todo):
        raise DriftError("prompt ids are not unique: give every prompt its own id")
    done = _done_ids(target, manifest.run_id, config.key, overwrite and target == out)
    todo = [p for p in todo if p.id not in done]
    start = time.perf_counter()
    with open(target, "a", encoding="utf-8") as fh, tqdm(total=len(todo), disable=not progress, desc="generate") as bar:
        for batch in _backend(lm, [p.text for p in todo], config):
            for i, gen in batch:
                fh.write(json.dumps(_record(todo[i], gen, manifest.run_id, lm.model_id, config), ensure_ascii=False))
                fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
            bar.update(len(batch))
    if target != out:
        os.replace(target, out)
    _write_meta(out, lm, manifest, config, len(done) + len(todo), time.perf_counter() - start, _prompt_meta(prompts))
    return out


def _prompt_meta(prompts) -> dict:
    """The prompt set's identity, and for a shard its place in the full set (what ``drift merge`` checks)."""
    if not isinstance(prompts, PromptSet):
        return {}
    meta: dict = {"prompts": {"name": prompts.name, "hash": prompts.content_hash(), "n": len(prompts)}}
    if prompts.shard_info is not None:
        meta["shard"] = prompts.shard_info.to_dict() | {"ids": [p.id for p in prompts],
                                                         "rows": list(prompts.shard_info.rows)}
    return meta


def _backend(lm, texts: list[str], config: GenerationConfig):
    if config.backend == "vllm":
        from drift.generate.hf_backend import stop_token_ids
        from drift.generate.vllm_backend import generate_batches_vllm

        if lm.interventions:
            raise DriftError("runtime interventions need the hf backend; use an orthogonalised checkpoint with vllm")
        return generate_batches_vllm(lm.source, lm.formatter, texts, config, adapter=lm.adapter,
                                     stop_ids=stop_token_ids(lm))
    from drift.generate.hf_backend import generate_batches

    return generate_batches(lm, texts, config)


def _write_meta(out: Path, lm, manifest, config: GenerationConfig, n: int, seconds: float, extra: dict) -> None:
    from drift._version import __version__

    meta = {
        "polydrift_version": __version__, "run": manifest.to_dict(), "model": lm.model_id, "adapter": lm.adapter,
        "dtype": str(lm.dtype).removeprefix("torch."), "device": str(lm.device), "chat_template_sha256":
        lm.formatter.template_hash, "generation": config.to_dict(), "gen_key": config.key, "n_completions": n,
        "seconds_last_call": round(seconds, 2), "contains_harmful_text": True, **extra,
    }
    tmp = out.with_name(out.name + META_SUFFIX + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, out.with_name(out.name + META_SUFFIX))


def export_completions(path: str | Path, out: str | Path, redact: bool = True, overwrite: bool = False) -> Path:
    """Copy completions for sharing; with ``redact``, completions of harmful prompts are replaced by a marker."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise DriftError(f"{out} exists: choose another path or pass overwrite=True")
    recs = read_completions(path)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for rec in recs:
            if redact and rec.get("label") == "harmful":
                rec = {**rec, "completion": "[redacted: completion to a harmful prompt]", "redacted": True}
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    return out
