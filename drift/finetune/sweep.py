"""Sweeps of fine-tuning runs: each run trains into a temporary folder, writes its manifest, then is renamed, so an
interrupted sweep resumes by skipping the runs whose folder (with its manifest) exists."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
from pathlib import Path

from drift.errors import DriftError
from drift.finetune.config import FinetuneConfig, SweepConfig
from drift.runs import MANIFEST_NAME, RunManifest, make_run_id, read_manifest

REFUSAL_PAIRS = "builtin:refusal-pairs"


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("polydrift", "torch", "transformers", "peft", "accelerate"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _files_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.glob("*.safetensors")):
        h.update(f.read_bytes())
    return h.hexdigest()


def heldout_group(group: str, fraction: float) -> bool:
    """Whether an item group is held out: a fixed hash of the group id, so every run and language agrees."""
    digest = int(hashlib.sha256(f"heldout:{group}".encode()).hexdigest()[:8], 16)
    return digest / 0xFFFFFFFF < fraction


def prepare_data(config: FinetuneConfig, lm, cache: Path | None = None) -> tuple[list, list]:
    """Load the run's data and split it by group into (training, held-out); ``builtin:refusal-pairs`` builds
    refusal pairs from the bundled prompts with the model's own answers (cached in ``cache`` so every seed of a
    sweep trains on the same pairs)."""
    from drift.finetune.data import load_instructions, load_preferences

    if config.method == "sft":
        data = load_instructions(config.data, langs=config.langs or None, limit=config.limit_per_lang)
    elif config.data != REFUSAL_PAIRS:
        data = load_preferences(config.data, langs=config.langs or None)
    else:
        data = _refusal_pairs(config, lm, cache)
    heldout = [d for d in data if heldout_group(d.group, config.heldout_fraction)]
    train = [d for d in data if not heldout_group(d.group, config.heldout_fraction)]
    if not train:
        raise DriftError("every example fell into the held-out split: lower heldout_fraction or add data")
    return train, heldout


def pairs_path(config: FinetuneConfig, cache: Path | None) -> Path | None:
    """Where a sweep caches the refusal pairs built for a config (None without a cache folder)."""
    if cache is None or config.data != REFUSAL_PAIRS:
        return None
    tag = hashlib.sha256(json.dumps([config.model, config.langs, config.limit_per_lang, config.max_length]).encode())
    return cache / f"refusal-pairs-{tag.hexdigest()[:10]}.jsonl"


def _refusal_pairs(config: FinetuneConfig, lm, cache: Path | None) -> list:
    from dataclasses import asdict

    from drift.data import load_prompts
    from drift.data.limits import first_per
    from drift.finetune.data import PreferencePair
    from drift.finetune.pairs import build_refusal_pairs, model_answers

    path = pairs_path(config, cache)
    if path is not None and path.is_file():
        return [PreferencePair(**json.loads(x)) for x in path.read_text(encoding="utf-8").splitlines()]
    prompts = load_prompts("builtin:prompts", langs=list(config.langs) or None)
    limit = config.limit_per_lang

    def take(label: str):
        # held-out groups are for evaluation: no answers are generated for them
        return first_per([p for p in prompts.filter(labels=[label])
                          if not heldout_group(p.group, config.heldout_fraction)], limit)

    answer = lambda ps: model_answers(lm, ps, max_new_tokens=min(96, config.max_length // 2))  # noqa: E731
    pairs = build_refusal_pairs(take("harmful"), answer, take("harmless"), answer, seed=config.seed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(asdict(p), ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")
    return pairs


def run_one(config: FinetuneConfig, out_dir: str | Path, progress: bool = True, cache: Path | None = None,
            overwrite: bool = False) -> RunManifest:
    """Train one run into ``out_dir`` (written as ``out_dir.partial`` and renamed when complete)."""
    from drift.finetune.data import data_hash
    from drift.finetune.trainer import check_lora_targets, train
    from drift.models import load_model

    out_dir = Path(out_dir)
    if out_dir.exists():
        if not overwrite:
            raise DriftError(f"output directory {out_dir} exists: choose another --out or pass --overwrite")
    lm = load_model(config.model, dtype="float32", device=config.device)
    if config.lora:
        check_lora_targets(lm.model, config.lora_targets)
    data, heldout = prepare_data(config, lm, cache)
    base_weights = lm.weights_fingerprint()
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    summary = train(lm, data, config, partial, progress=progress)
    weights = _files_hash(partial)
    langs = ",".join(config.langs) or ",".join(sorted({d.lang for d in data}))
    manifest = RunManifest(
        run_id=make_run_id(lm.model_id, weights, config.method), model=lm.model_id,
        checkpoint=str(out_dir.resolve()), method=config.method, ft_lang=langs, seed=config.seed,
        epochs=config.epochs, weights=weights,
        extra={"base_spec": config.model, "base_weights": base_weights, "config": config.to_dict(),
               "data": {"spec": config.data, "hash": data_hash(data), "n": len(data), "n_heldout": len(heldout),
                        "heldout_hash": data_hash(heldout),
                        "pairs_file": str(pairs_path(config, cache).resolve()) if pairs_path(config, cache) else None},
               "training": summary,
               "saved": config.save if config.lora else "merged", "versions": _versions()},
    )
    (partial / MANIFEST_NAME).write_text(json.dumps(manifest.to_dict(), indent=2), encoding="utf-8")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(partial, out_dir)
    return manifest


def run_sweep(sweep: SweepConfig, progress: bool = True, log=print) -> list[RunManifest]:
    """Run every run of a sweep that has not finished yet; return all manifests in sweep order."""
    out = Path(sweep.out)
    out.mkdir(parents=True, exist_ok=True)
    manifests = []
    runs = sweep.runs()
    for i, (name, config) in enumerate(runs, 1):
        folder = out / name
        found = read_manifest(folder) if folder.is_dir() else None
        if found is not None:
            log(f"[{i}/{len(runs)}] {name}: done already ({found.run_id}), skipped")
            manifests.append(found)
            continue
        if folder.exists():
            raise DriftError(f"{folder} exists without a run manifest: delete it or choose another sweep out")
        log(f"[{i}/{len(runs)}] {name}: training")
        m = run_one(config, folder, progress=progress, cache=out / "_data")
        t = m.extra["training"]
        log(f"[{i}/{len(runs)}] {name}: {t['steps']} steps in {t['seconds']} s, loss {t['first_loss']:.3f} -> "
            f"{t['final_loss']:.3f} ({m.run_id})")
        manifests.append(m)
    return manifests
