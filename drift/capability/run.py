"""The capability stage: one model state in, ``capability.csv`` (long-form records) and item-level tables out."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from drift.data.limits import first_per
from drift.errors import DriftError

SUITES = ("perplexity", "mcq", "task", "fluency")


def _task_data(manifest, task_data: str | None, task_method: str):
    """Held-out task data: from the run's manifest (its data spec and held-out groups) or an explicit file."""
    from drift.finetune.config import FinetuneConfig
    from drift.finetune.data import load_instructions, load_preferences
    from drift.finetune.sweep import heldout_group

    if task_data is not None:
        loader = load_instructions if task_method == "sft" else load_preferences
        return loader(task_data), task_method
    cfg = manifest.extra.get("config") if manifest is not None else None
    if not cfg:
        return None, task_method
    config = FinetuneConfig(**cfg)
    if config.method == "dpo" and config.data == "builtin:refusal-pairs":
        pairs_file = manifest.extra.get("data", {}).get("pairs_file")
        if not pairs_file or not Path(pairs_file).is_file():
            return None, "dpo"
        data = load_preferences(pairs_file)
    elif config.method == "dpo":
        data = load_preferences(config.data, langs=config.langs or None)
    else:
        data = load_instructions(config.data, langs=config.langs or None, limit=config.limit_per_lang)
    return [d for d in data if heldout_group(d.group, config.heldout_fraction)], config.method


def run_capability(
    model: str, out: str | Path, adapter: str | None = None, suites: Sequence[str] = SUITES,
    langs: Sequence[str] | None = None, limit: int | None = None, mcq: str = "builtin:mcq", shots: int = 0,
    scoring: str = "option", text: str | None = None, text_lang: str = "en", task_data: str | None = None,
    task_method: str = "sft", fluency_tokens: int = 64, heldout_fraction: float | None = None,
    device: str = "auto", dtype: str = "auto",
    batch_size: int = 16, overwrite: bool = False, log=print,
) -> dict[str, Path]:
    """Measure the capability of one model state (base, adapter or merged checkpoint) and write its records.

    Suites: ``perplexity`` (response perplexity on the bundled benign data: the groups held out of fine-tuning at
    ``heldout_fraction`` (default: the run's own, else all), the same items for every run compared; plus ``text``), ``mcq`` (``mcq`` spec, ``shots``, ``scoring``), ``task`` (the run's own held-out
    data from its manifest, or ``task_data``), ``fluency`` (generation on bundled harmless prompts, then the coherence
    pass). ``langs`` and ``limit`` (per language) restrict the bundled data.
    """
    from drift.capability import measures
    from drift.capability.mcq import evaluate_mcq, load_mcq
    from drift.finetune.data import load_instructions
    from drift.finetune.sweep import heldout_group
    from drift.models import load_model
    from drift.runs import manifest_for, read_manifest

    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        raise DriftError(f"unknown capability suite(s) {unknown}: choose from {', '.join(SUITES)}")
    out = Path(out)
    if (out / "capability.csv").exists() and not overwrite:
        raise DriftError(f"{out / 'capability.csv'} exists: choose another --out or pass --overwrite")
    if text is not None and not Path(text).is_file():
        raise DriftError(f"text file not found: {text}")
    out.mkdir(parents=True, exist_ok=True)
    lm = load_model(model, adapter=adapter, device=device, dtype=dtype)
    manifest = manifest_for(lm)
    run_id = manifest.run_id
    trained = read_manifest(adapter) if adapter else read_manifest(lm.source)
    records: list[dict] = []
    written: dict[str, Path] = {}
    if "perplexity" in suites:
        data = load_instructions("builtin:instructions", langs=langs)
        if heldout_fraction is None and trained is not None and trained.extra.get("config"):
            heldout_fraction = trained.extra["config"].get("heldout_fraction", 0.1)
        if heldout_fraction is not None:
            data = [d for d in data if heldout_group(d.group, heldout_fraction)]
        data = first_per(data, limit)
        records += measures.response_perplexity(lm, data, run_id, batch_size=batch_size)
        if text is not None:
            docs = [t for t in Path(text).read_text(encoding="utf-8").split("\n\n") if t.strip()]
            records += measures.text_perplexity(lm, docs, text_lang, run_id)
        log(f"perplexity: {len(data)} responses")
    if "mcq" in suites:
        items = load_mcq(mcq, langs=langs, limit=limit)
        item_recs = evaluate_mcq(lm, items, shots=shots, scoring=scoring, batch_size=batch_size)
        records += measures.mcq_records(item_recs, run_id)
        pd.DataFrame([{**r, "run_id": run_id} for r in item_recs]).to_csv(out / "mcq_items.csv", index=False)
        written["mcq_items.csv"] = out / "mcq_items.csv"
        log(f"mcq: {len(items)} items")
    if "task" in suites:
        heldout, method = _task_data(trained, task_data, task_method)
        if heldout:
            records += measures.task_records(lm, heldout, run_id, method=method, batch_size=batch_size)
            log(f"task: {len(heldout)} held-out examples ({method})")
        else:
            log("task: skipped (no fine-tuning manifest with held-out data; pass task_data)")
    if "fluency" in suites:
        from drift.data import load_prompts

        prompts = list(load_prompts("builtin:prompts", langs=list(langs) if langs else None, labels=["harmless"]))
        prompts = first_per(prompts, limit)
        records += measures.fluency_records(lm, prompts, run_id, fluency_tokens, batch_size)
        log(f"fluency: {len(prompts)} generations")
    df = pd.DataFrame(records)
    tmp = out / "capability.csv.tmp"
    df.to_csv(tmp, index=False)
    os.replace(tmp, out / "capability.csv")
    meta = {"run": manifest.to_dict(), "suites": list(suites), "langs": list(langs or []), "limit": limit,
            "mcq": mcq, "shots": shots, "scoring": scoring, "text": text}
    (out / "capability.meta.json").write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    return {"capability.csv": out / "capability.csv", **written, "capability.meta.json": out / "capability.meta.json"}
