"""Synthetic study records with a known relation between drift and ASR change (for tests, docs and notebooks)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def synthetic_study(ft_langs: Sequence[str] = ("fr", "de", "zh"), seeds: int = 8, layers: int = 8,
                    planted_layer: int | None = 5, effect: float = 1.0, noise: float = 0.5,
                    eval_langs: Sequence[str] = ("en", "de", "fr", "zh"), measures: Sequence[str] = ("cosine",),
                    confounded: bool = False, judge: str = "refusal-lexicon", seed: int = 0) -> dict:
    """Records of a made-up study: one base run and ``len(ft_langs) * seeds`` runs fine-tuned from it.

    Each fine-tuned run has a latent drift ``z`` and a capability change ``c`` (independent standard normals). The ASR
    change in every evaluation language is ``0.05 * (effect * z + noise * e)`` plus a per-language offset; the drift
    at ``planted_layer`` is ``z`` plus a little per-language noise, every other layer is pure noise. With
    ``confounded`` the roles change: drift at every layer tracks ``c`` and the ASR change tracks ``c``, so drift and
    ASR change correlate without drift predicting ASR change once capability is known.

    Returns:
        ``{"drift", "asr", "capability"}`` DataFrames in the stages' long-form shapes and ``"runs"`` (study.json run
        records).
    """
    rng = np.random.default_rng(seed)
    runs = [{"run_id": "base", "role": "base", "model": "synthetic", "checkpoint": "base", "method": "base",
             "ft_lang": "", "seed": None, "epochs": None, "parent_run_id": None}]
    runs += [{"run_id": f"ft-{lang}-s{s}", "role": "finetuned", "model": "synthetic", "checkpoint": f"ckpt/{lang}/{s}",
              "method": "sft", "ft_lang": lang, "seed": s, "epochs": 1, "parent_run_id": "base"}
             for lang in ft_langs for s in range(seeds)]
    ft = [r["run_id"] for r in runs[1:]]
    z, c = rng.normal(size=len(ft)), rng.normal(size=len(ft))
    driver = c if confounded else z
    offsets = dict(zip(eval_langs, 0.02 * rng.normal(size=len(eval_langs))))
    asr = [_asr_row("base", judge, lang, 0.2) for lang in eval_langs]
    for i, run_id in enumerate(ft):
        for lang in eval_langs:
            change = 0.05 * (effect * driver[i] + noise * rng.normal()) + offsets[lang]
            asr.append(_asr_row(run_id, judge, lang, 0.2 + change))
        asr.append(_asr_row(run_id, judge, "all", float(np.mean([a["value"] for a in asr[-len(eval_langs):]]))))
    drift = []
    for i, run_id in enumerate(ft):
        for metric in measures:
            for layer in range(layers):
                for lang in (*eval_langs, "all"):
                    tracks = confounded or layer == planted_layer
                    value = driver[i] + 0.2 * rng.normal() if tracks else rng.normal()
                    drift.append({"run_id": run_id, "base_run_id": "base", "site": "resid_post", "layer": layer,
                                  "position": "last", "lang": lang, "metric": metric, "value": float(value),
                                  "n": 40, "ci_low": np.nan, "ci_high": np.nan})
    capability = pd.DataFrame({"run_id": ["base", *ft], "suite": "mcq", "lang": "all", "subject": "all",
                               "metric": "accuracy", "value": 0.5 + 0.05 * np.r_[0.0, c], "n": 124,
                               "ci_low": np.nan, "ci_high": np.nan})
    return {"runs": runs, "drift": pd.DataFrame(drift), "asr": pd.DataFrame(asr), "capability": capability}


def _asr_row(run_id: str, judge: str, lang: str, value: float) -> dict:
    return {"run_id": run_id, "judge": judge, "label": "harmful", "lang": lang, "category": "all", "metric": "asr",
            "value": value, "n": 200, "ci_low": np.nan, "ci_high": np.nan}
