"""Sanity checks of the blind multilingual refusal test set (tests/fixtures/judge/lexicon_blind).

These tests check the data only (shape, counts, labels, provenance of the prompts); they run no judge.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BLIND = REPO / "tests" / "fixtures" / "judge" / "lexicon_blind"
PROMPTS = REPO / "drift" / "data" / "bundled" / "prompts"

LANGS = "en de fr es it pt pl cs sk da el lt lv ru ar zh hi sw tl".split()
FIELDS = {"id", "lang", "prompt", "label", "completion", "gold", "kind", "source"}
PER_LANG = 40

# kind -> (gold verdict, count per language, label of the prompts it is written for or None for any)
KINDS: dict[str, tuple[str, int, str | None]] = {
    "refusal_plain": ("refusal", 4, "harmful"),
    "refusal_polite_with_alternative": ("refusal", 4, "harmful"),
    "refusal_lecture": ("refusal", 4, "harmful"),
    "refusal_english_reply": ("refusal", 2, "harmful"),
    "compliance_plain": ("compliance", 4, "harmful"),
    "compliance_with_disclaimer": ("compliance", 3, "harmful"),
    "partial_compliance": ("compliance", 4, "harmful"),
    "apology_then_compliance": ("compliance", 3, "harmful"),
    "compliance_harmless": ("compliance", 6, "harmless"),
    "incoherent_repetition": ("incoherent", 2, None),
    "incoherent_gibberish": ("incoherent", 2, None),
    "incoherent_wrong_language_fragment": ("incoherent", 1, None),
    "empty": ("incoherent", 1, None),
}


def expected_counts(lang: str) -> Counter:
    """Kind counts a language file must have (English has two more plain refusals instead of English replies)."""
    want = Counter({kind: n for kind, (_, n, _) in KINDS.items()})
    if lang == "en":
        want["refusal_plain"] += want.pop("refusal_english_reply")
    return want


@lru_cache(maxsize=None)
def load(lang: str) -> tuple[dict, ...]:
    """The records of one language file, in file order."""
    path = BLIND / f"{lang}.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    return tuple(json.loads(line) for line in lines if line.strip())


@lru_cache(maxsize=None)
def bundled_prompts(lang: str) -> dict[str, tuple[str, str]]:
    """Prompt text -> (label, group) of the bundled prompt set of one language."""
    rows = [json.loads(line) for line in (PROMPTS / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()]
    return {row["text"]: (row["label"], row["group"]) for row in rows}


def test_exactly_the_bundled_languages():
    assert sorted(p.stem for p in BLIND.glob("*.jsonl")) == sorted(LANGS)
    assert sorted(p.stem for p in PROMPTS.glob("*.jsonl")) == sorted(LANGS)
    assert (BLIND / "README.md").is_file()


def test_kind_table_is_consistent():
    assert sum(n for _, n, _ in KINDS.values()) == PER_LANG
    assert set(expected_counts("en")) == set(KINDS) - {"refusal_english_reply"}
    assert sum(expected_counts("en").values()) == PER_LANG


@pytest.mark.parametrize("lang", LANGS)
def test_fields_and_ids(lang):
    rows = load(lang)
    assert len(rows) == PER_LANG
    for n, row in enumerate(rows, 1):
        assert set(row) == FIELDS, row.get("id")
        assert all(isinstance(row[f], str) for f in FIELDS), row["id"]
        assert row["id"] == f"{lang}-b{n:03d}"
        assert row["lang"] == lang
        assert row["source"] == "written"
        assert row["label"] in {"harmful", "harmless"}


@pytest.mark.parametrize("lang", LANGS)
def test_kind_counts_and_gold(lang):
    rows = load(lang)
    assert Counter(row["kind"] for row in rows) == expected_counts(lang)
    for row in rows:
        gold, _, label = KINDS[row["kind"]]
        assert row["gold"] == gold, row["id"]
        if label is not None:
            assert row["label"] == label, row["id"]


@pytest.mark.parametrize("lang", LANGS)
def test_prompts_come_from_the_bundled_set(lang):
    bundled = bundled_prompts(lang)
    rows = load(lang)
    for row in rows:
        assert row["prompt"] in bundled, f"{row['id']}: prompt not in drift/data/bundled/prompts/{lang}.jsonl"
        assert row["label"] == bundled[row["prompt"]][0], row["id"]
    assert len({row["prompt"] for row in rows}) == PER_LANG, "each item of a language uses a different prompt"


@pytest.mark.parametrize("lang", LANGS)
def test_completions(lang):
    rows = load(lang)
    for row in rows:
        text = row["completion"]
        if row["kind"] == "empty":
            assert text.strip() == "", row["id"]
        else:
            assert text.strip() and text == text.strip(), row["id"]
        if row["kind"] == "refusal_english_reply":
            assert lang != "en"
            assert all(ch.isascii() for ch in text if ch.isalpha()), row["id"]
    written = [row["completion"] for row in rows if row["kind"] != "empty"]
    assert len(set(written)) == len(written), "completions within a language are distinct"


def test_ids_unique_and_selection_varies_across_languages():
    rows = [row for lang in LANGS for row in load(lang)]
    assert len({row["id"] for row in rows}) == len(rows) == PER_LANG * len(LANGS)
    # The selection varies: no two languages use the same (prompt group, kind) plan.
    plans = set()
    for lang in LANGS:
        groups = bundled_prompts(lang)
        plans.add(frozenset((groups[row["prompt"]][1], row["kind"]) for row in load(lang)))
    assert len(plans) == len(LANGS)
