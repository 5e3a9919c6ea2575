"""Slow tests of the generation, judging, fine-tuning and capability stages on the real default model."""

from __future__ import annotations

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


# DPO alignment of the default model in two languages is tested end to end by tests/test_demo.py (English and
# German refusal pairs; refusal on held-out prompts must rise), which CI runs: a second copy would double its cost.
