"""Sanity checks of the labelled evaluation set for the multilingual refusal judge (the data, not the judge)."""

import json
import re
from pathlib import Path

import pytest

SET_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "judge" / "lexicon_eval"
PROMPT_DIR = Path(__file__).resolve().parents[2] / "drift" / "data" / "bundled" / "prompts"
LANGS = "en de fr es it pt pl cs sk da el lt lv ru ar zh hi sw tl".split()
KIND_GOLD = {
    "refusal_plain": "refusal",
    "refusal_polite_with_alternative": "refusal",
    "refusal_lecture": "refusal",
    "refusal_english_reply": "refusal",
    "compliance_plain": "compliance",
    "compliance_with_disclaimer": "compliance",
    "partial_compliance": "compliance",
    "apology_then_compliance": "compliance",
    "compliance_harmless": "compliance",
    "incoherent_repetition": "incoherent",
    "incoherent_gibberish": "incoherent",
    "incoherent_wrong_language_fragment": "incoherent",
    "empty": "incoherent",
}
REQUIRED = {"id", "lang", "prompt", "label", "completion", "gold", "kind", "source"}
OPTIONAL = {"note", "truncated"}
MIN_ITEMS = 30
SMOLLM_LANGS = {"en", "de", "fr", "es", "zh"}


def _read(lang: str) -> list[dict]:
    path = SET_DIR / f"{lang}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def items() -> dict[str, list[dict]]:
    return {lang: _read(lang) for lang in LANGS}


@pytest.fixture(scope="module")
def detector():
    """A lingua detector over the set's 19 languages (loading every language model takes ~20 s on a busy machine)."""
    lingua = pytest.importorskip("lingua")
    codes = [getattr(lingua.IsoCode639_1, lang.upper()) for lang in LANGS]
    return lingua.LanguageDetectorBuilder.from_iso_codes_639_1(*codes).build()


def _codes(detector, texts: list[str]) -> list[str | None]:
    found = detector.detect_languages_in_parallel_of(texts)
    return [f.iso_code_639_1.name.lower() if f is not None else None for f in found]


def test_every_language_has_a_file_and_nothing_else():
    assert sorted(p.stem for p in SET_DIR.glob("*.jsonl")) == sorted(LANGS)


def test_size_and_kinds_per_language(items):
    for lang, rows in items.items():
        assert len(rows) >= MIN_ITEMS, f"{lang}: {len(rows)} items"
        missing = set(KIND_GOLD) - {r["kind"] for r in rows}
        assert not missing, f"{lang}: no item of kind {sorted(missing)}"


def test_fields_and_values(items):
    for lang, rows in items.items():
        for r in rows:
            assert REQUIRED <= set(r) <= REQUIRED | OPTIONAL, r["id"]
            assert r["lang"] == lang and r["label"] in ("harmful", "harmless"), r["id"]
            assert r["kind"] in KIND_GOLD and r["gold"] == KIND_GOLD[r["kind"]], r["id"]
            assert r["source"] in ("written", "smollm2-base"), r["id"]
            assert isinstance(r["completion"], str) and r["prompt"].strip(), r["id"]
            assert r.get("truncated", False) in (True, False), r["id"]


def test_ids_unique_and_well_formed(items):
    ids = [r["id"] for rows in items.values() for r in rows]
    assert len(ids) == len(set(ids))
    for lang, rows in items.items():
        assert all(re.fullmatch(rf"{lang}-\d{{3}}", r["id"]) for r in rows), lang


def test_kind_matches_label_and_content(items):
    for rows in items.values():
        for r in rows:
            if r["kind"] == "compliance_harmless":
                assert r["label"] == "harmless", r["id"]
            if r["kind"] in ("compliance_plain", "compliance_with_disclaimer", "partial_compliance",
                             "apology_then_compliance"):
                assert r["label"] == "harmful", r["id"]
            assert (r["kind"] == "empty") == (r["completion"].strip() == ""), r["id"]


def test_all_three_verdicts_on_both_labels_somewhere(items):
    pairs = {(r["label"], r["gold"]) for rows in items.values() for r in rows}
    for label in ("harmful", "harmless"):
        for gold in ("refusal", "compliance", "incoherent"):
            assert (label, gold) in pairs, (label, gold)


def test_prompts_come_from_the_bundled_set(items):
    for lang, rows in items.items():
        bundled = {}
        for line in (PROMPT_DIR / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines():
            p = json.loads(line)
            bundled[p["text"]] = p["label"]
        for r in rows:
            assert bundled.get(r["prompt"]) == r["label"], r["id"]


def test_model_outputs_present_where_generated(items):
    for lang, rows in items.items():
        n = sum(r["source"] == "smollm2-base" for r in rows)
        assert (n >= 10) if lang in SMOLLM_LANGS else (n == 0), (lang, n)


def test_prompt_language_identity(items, detector):
    for lang, rows in items.items():
        codes = _codes(detector, [r["prompt"] for r in rows])
        wrong = [(r["id"], c) for r, c in zip(rows, codes) if c != lang]
        assert not wrong, f"{lang}: prompts not identified as {lang}: {wrong}"


def test_written_completion_language_identity(items, detector):
    """Hand-written answers are in the prompt's language, except the English-reply refusals."""
    for lang, rows in items.items():
        rows = [r for r in rows if r["source"] == "written" and r["gold"] != "incoherent"]
        expected = ["en" if r["kind"] == "refusal_english_reply" else lang for r in rows]
        codes = _codes(detector, [r["completion"] for r in rows])
        wrong = [(r["id"], c) for r, c, e in zip(rows, codes, expected) if c != e]
        assert not wrong, f"{lang}: completions in an unexpected language: {wrong}"
