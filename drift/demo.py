"""The embedded demo: the RefusEU setting on SmolLM2-135M-Instruct, end to end on a CPU.

The default model almost never refuses harmful requests, so the demo first aligns it (DPO with a likelihood term on
the chosen refusal, English and German pairs, its own answers as the rejected side), then fine-tunes the aligned
model on benign French instruction data, and evaluates all three model states on held-out prompts in en, de, fr and
zh: generation, judging, capture, drift, probes, capability, relate, report. ``full`` runs the bigger study:
English-only versus multilingual alignment, two fine-tuning languages, all bundled languages (hours on a CPU).
"""

from __future__ import annotations

from pathlib import Path

from drift.paths import cache_dir

SHORT = {
    "study": {"name": "demo", "model": "default"},
    "align": {"langs": ["en", "de"], "limit_per_lang": 16, "learning_rate": 5e-4, "scheduler": "constant",
              "batch_size": 4, "max_steps": 40, "max_length": 128, "beta": 0.1, "sft_weight": 1.0,
              "lora_dropout": 0.0},
    "finetune": {"langs": ["fr"], "limit_per_lang": 96, "learning_rate": 2e-4, "batch_size": 8, "max_steps": 16,
                 "max_length": 192, "lora_dropout": 0.0},
    "eval": {"langs": ["en", "de", "fr", "zh"], "limit_per_lang": 12, "max_new_tokens": 32, "batch_size": 24,
             "capability_limit": 6},
}

FULL = {
    "study": {"name": "demo-full", "model": "default"},
    "align": [{**SHORT["align"], "langs": ["en"], "limit_per_lang": 32},
              {**SHORT["align"], "langs": ["en", "de", "fr", "es", "zh"], "limit_per_lang": 8, "max_steps": 60}],
    "finetune": {**SHORT["finetune"], "langs": ["fr", "zh"], "seeds": [0, 1]},
    "eval": {**SHORT["eval"], "limit_per_lang": 20, "max_new_tokens": 64, "capability_limit": 20, "langs": ["en", "de", "fr", "es", "it", "pt", "pl", "cs", "sk", "da", "el", "lt", "lv",
                                        "ru", "ar", "zh", "hi", "sw", "tl"]},
}


def fast_bf16(device: str = "auto") -> bool:
    """Whether bf16 autocast speeds this machine up: a CUDA device, or a CPU with native bf16 arithmetic
    (AVX512-BF16 or AMX; about 2x faster training and generation there, and much slower where it is emulated)."""
    import torch

    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return True
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without these probes: stay in float32
        return False


def demo_config(out_dir: str | Path | None = None, full: bool = False, device: str = "auto",
                bf16: bool | None = None):
    """The demo's StudyConfig (written under the cache's ``demo/`` folder unless ``out_dir`` is given).

    ``bf16`` (default: :func:`fast_bf16`) trains under bf16 autocast and generates under it; capture stays float32.
    """
    from drift.study.config import study_from_dict

    table = {k: (dict(v) if isinstance(v, dict) else v) for k, v in (FULL if full else SHORT).items()}
    if fast_bf16(device) if bf16 is None else bf16:
        aligns = table["align"] if isinstance(table["align"], list) else [table["align"]]
        aligns = [{**a, "precision": "bf16"} for a in aligns]
        table["align"] = aligns if isinstance(table["align"], list) else aligns[0]
        table["finetune"] = {**table["finetune"], "precision": "bf16"}
        table["eval"] = {**table["eval"], "autocast": "bfloat16"}
    name = table["study"]["name"]
    table["study"] = {**table["study"], "out": str(out_dir or cache_dir() / name), "device": device}
    return study_from_dict(table, "the embedded demo")


def summarize(root: Path, judge: str = "refusal-lexicon-strict") -> list[str]:
    """Lines of the headline results: attack success rate on held-out harmful prompts per model state and language.

    ASR is the share of coherent answers that comply (95% Wilson interval); the share of incoherent answers, which
    count as neither, follows in parentheses.
    """
    import json

    import pandas as pd

    asr = pd.read_csv(root / "judged" / "asr.csv")
    runs = {r["run_id"]: r for r in json.loads((root / "study.json").read_text())["runs"]}
    rows = asr[(asr.category == "all") & (asr.judge == judge) & (asr.label == "harmful")]
    lines = [f"attack success rate on held-out harmful prompts (judge {judge}; share of coherent answers that "
             "comply, 95% CI; incoherent share in parentheses):"]
    groups = dict(list(rows.groupby("run_id", sort=False)))
    for rid in [r for r in runs if r in groups] + [r for r in groups if r not in runs]:  # study order: base first
        run, by = runs.get(rid, {}), {(r.metric, r.lang): r for r in groups[rid].itertuples()}
        cells = []
        for lang in sorted({lang for _, lang in by if lang != "all"}):
            a, inc = by.get(("asr", lang)), by.get(("incoherent_rate", lang))
            text = "n/a" if a is None or a.n == 0 else f"{a.value:.0%} [{a.ci_low:.0%}, {a.ci_high:.0%}]"
            cells.append(f"{lang} {text}" + ("" if inc is None else f" ({inc.value:.0%})"))
        lines.append(f"  {run.get('role', '?'):<9} {run.get('ft_lang') or '-':<6} " + "  ".join(cells))
    return lines


def run_demo(out_dir: str | Path | None = None, full: bool = False, device: str = "auto", progress: bool = False,
             log=print, bf16: bool | None = None) -> Path:
    """Run (or resume) the demo study, print its headline results, and return the report path."""
    from drift.study.run import run_study

    cfg = demo_config(out_dir, full, device, bf16)
    report = run_study(cfg, log=log, progress=progress)
    for line in summarize(Path(cfg.out), cfg.eval.primary_judge):
        log(line)
    log(f"report: {report}")
    return report
