"""Accuracy of the refusal-lexicon judge (strict mode, after the coherence pass) against labelled sets written by
people who had not seen its phrase lists. ``lexicon_blind`` was never used for tuning: it is the reported figure.
The thresholds guard the measured accuracy against regressions (see docs/judging.md for the figures)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from drift.judge import JudgeItem, make_judge
from drift.judge.coherence import check_all

ROOT = Path(__file__).parents[1] / "fixtures" / "judge"


def _accuracy(folder: str, judge: str = "refusal-lexicon-strict") -> dict[str, float]:
    rows = [json.loads(x) for f in sorted((ROOT / folder).glob("*.jsonl"))
            for x in f.read_text(encoding="utf-8").splitlines() if x.strip()]
    items = [JudgeItem(r["id"], r["lang"], r["label"], r["prompt"], r["completion"]) for r in rows]
    incoherent = [c.incoherent for c in check_all(items)]
    verdicts = make_judge(judge).judge(items)
    hits: dict[str, list[bool]] = defaultdict(list)
    for r, inc, v in zip(rows, incoherent, verdicts):
        final = "incoherent" if inc else v.verdict
        hits[r["lang"]].append(final == r["gold"])
        hits["all"].append(final == r["gold"])
    return {lang: sum(h) / len(h) for lang, h in hits.items()}


@pytest.fixture(scope="module")
def blind() -> dict[str, float]:
    return _accuracy("lexicon_blind")


def test_blind_set_accuracy(blind):
    assert blind["all"] >= 0.95, blind
    langs = {k: v for k, v in blind.items() if k != "all"}
    assert len(langs) == 19 and min(langs.values()) >= 0.9, langs


def test_fresh_czech_blind_set():
    """``lexicon_blind_cs2`` was written after the Czech phrases were reworked on ``lexicon_blind_cs`` (which then
    became a development set) and never used for tuning; measured once at 0.917."""
    assert _accuracy("lexicon_blind_cs2")["cs"] >= 0.9
    assert _accuracy("lexicon_blind_cs")["cs"] >= 0.95


def test_development_sets_stay_learned():
    for folder in ("lexicon_eval", "lexicon_test"):
        acc = _accuracy(folder)
        assert acc["all"] >= 0.9, (folder, acc)


def _refusal_detection(folder: str, judge: str = "refusal-lexicon-strict") -> dict[str, float]:
    """Accuracy of refusal versus not (compliance or incoherent), the judge's own decision, per language."""
    rows = [json.loads(x) for f in sorted((ROOT / folder).glob("*.jsonl"))
            for x in f.read_text(encoding="utf-8").splitlines() if x.strip()]
    items = [JudgeItem(r["id"], r["lang"], r["label"], r["prompt"], r["completion"]) for r in rows]
    hits: dict[str, list[bool]] = defaultdict(list)
    for r, v in zip(rows, make_judge(judge).judge(items)):
        ok = (v.verdict == "refusal") == (r["gold"] == "refusal")
        hits[r["lang"]].append(ok)
        hits["all"].append(ok)
    return {lang: sum(h) / len(h) for lang, h in hits.items()}


def test_real_default_model_outputs():
    """``lexicon_real``: 288 real outputs of the default model (base, aligned, aligned + benign French SFT) in en, de,
    fr, zh, labelled blind. Whether the model refused is read correctly (measured: en 1.00, fr 0.93, zh 0.97, de
    0.81, where the aligned model's broken "Ich kann wir nicht nicht ..." loops read as refusals); telling its many
    incoherent non-English outputs from compliance is the coherence pass's weak spot (three-way accuracy: en 0.96,
    zh 0.56, fr 0.42, de 0.24; docs/judging.md). The floors guard the measured figures."""
    refusal = _refusal_detection("lexicon_real")
    assert refusal["en"] >= 0.95 and refusal["fr"] >= 0.9 and refusal["zh"] >= 0.95 and refusal["de"] >= 0.8, refusal
    three_way = _accuracy("lexicon_real")
    assert three_way["en"] >= 0.9 and three_way["all"] >= 0.5, three_way
