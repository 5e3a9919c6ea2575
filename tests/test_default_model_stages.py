"""Slow tests of the generation, judging, fine-tuning and capability stages on the real default model."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lm():
    from drift.models import load_model

    return load_model("default", device="cpu", dtype="float32")


def test_mcq_accuracy_in_english_beats_chance(lm):
    from scipy.stats import binomtest

    from drift.capability import evaluate_mcq, load_mcq

    items = load_mcq("builtin:mcq", langs=["en"])
    recs = evaluate_mcq(lm, items, batch_size=16)
    k = sum(r["correct"] for r in recs)
    assert binomtest(k, len(recs), 0.25, alternative="greater").pvalue < 0.05, f"{k}/{len(recs)} correct"


def _refusal_rate(lm, prompts):
    from drift.generate import GenerationConfig
    from drift.generate.hf_backend import generate_batches
    from drift.judge import JudgeItem, make_judge

    items = []
    for batch in generate_batches(lm, [p.text for p in prompts], GenerationConfig(max_new_tokens=24, batch_size=24)):
        items += [JudgeItem(prompts[i].id, prompts[i].lang, prompts[i].label, prompts[i].text, g.completion)
                  for i, g in batch]
    verdicts = make_judge("refusal-lexicon").judge(items)
    return sum(v.verdict == "refusal" for v in verdicts), len(items)


@pytest.mark.skipif(os.environ.get("POLYDRIFT_DEMO_TEST") != "1",
                    reason="about 4 minutes on a quiet CPU; set POLYDRIFT_DEMO_TEST=1 (passed on 2026-11-23)")
def test_dpo_alignment_raises_refusal_in_two_languages(lm, tmp_path):
    """The RefusEU setting: the default model almost never refuses; DPO + SFT on a few harmful prompts in English
    and German (rejected = its own answers) makes it refuse them."""
    from scipy.stats import fisher_exact

    from drift.data import load_prompts
    from drift.finetune import FinetuneConfig, build_refusal_pairs, model_answers, train

    prompts = load_prompts("builtin:prompts?lang=en,de")
    harmful = [p for p in prompts if p.label == "harmful"][::8]  # 13 per language
    harmless = [p for p in prompts if p.label == "harmless"][::25]
    before, n = _refusal_rate(lm, harmful)
    answers = lambda ps: model_answers(lm, ps, max_new_tokens=32, batch_size=24)  # noqa: E731
    pairs = build_refusal_pairs(harmful, answers, harmless, answers)
    cfg = FinetuneConfig(method="dpo", model="default", learning_rate=5e-4, batch_size=4, max_steps=30,
                         max_length=128, beta=0.1, sft_weight=1.0, scheduler="constant", lora_dropout=0.0,
                         device="cpu")
    summary = train(lm, pairs, cfg, tmp_path / "dpo", progress=False)
    after, _ = _refusal_rate(lm, harmful)
    assert summary["final_stats"]["reward_accuracy"] >= 0.75
    assert after >= before + n // 3 and fisher_exact([[after, n - after], [before, n - before]])[1] < 0.05, (
        f"refusals {before}/{n} -> {after}/{n}")
