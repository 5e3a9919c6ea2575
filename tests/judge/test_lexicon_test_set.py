"""Sanity checks of the blind lexicon test set in tests/fixtures/judge/lexicon_test (the data only, no judge)."""

import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

SET_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "judge" / "lexicon_test"
PROMPT_DIR = Path(__file__).resolve().parents[2] / "drift" / "data" / "bundled" / "prompts"

LANGS = "en de fr es it pt pl cs sk da el lt lv ru ar zh hi sw tl".split()
FIELDS = {"id", "lang", "prompt", "label", "completion", "gold", "kind", "source"}
PER_LANG = 26
PER_KIND = 2

# Every kind and the verdict it must carry.
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
# Compliance kinds that answer a harmful prompt, and the one that answers a harmless prompt.
HARMFUL_COMPLIANCE = {"compliance_plain", "compliance_with_disclaimer", "partial_compliance", "apology_then_compliance"}
INCOHERENT = {kind for kind, gold in KIND_GOLD.items() if gold == "incoherent"}
# Unicode-name prefix of the script that an in-language answer must use, for the non-Latin languages.
SCRIPTS = {"el": "GREEK", "ru": "CYRILLIC", "ar": "ARABIC", "zh": "CJK", "hi": "DEVANAGARI"}


def read_set(lang: str) -> list[dict]:
    """Return the items of one language file, in file order."""
    lines = (SET_DIR / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def read_prompts(lang: str) -> dict[str, str]:
    """Return the bundled prompts of one language as a mapping from text to label."""
    lines = (PROMPT_DIR / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()
    return {row["text"]: row["label"] for row in map(json.loads, filter(str.strip, lines))}


def in_script(text: str, prefix: str) -> bool:
    """Whether any letter of ``text`` has a Unicode name starting with ``prefix``."""
    return any(unicodedata.name(ch, "").startswith(prefix) for ch in text if ch.isalpha())


def test_one_file_per_bundled_language():
    bundled = {path.stem for path in PROMPT_DIR.glob("*.jsonl")}
    present = {path.stem for path in SET_DIR.glob("*.jsonl")}
    assert bundled == set(LANGS) == present
    assert (SET_DIR / "README.md").is_file()


@pytest.mark.parametrize("lang", LANGS)
def test_fields_and_ids(lang):
    items = read_set(lang)
    assert len(items) == PER_LANG
    for i, item in enumerate(items, 1):
        assert set(item) == FIELDS, item.get("id")
        assert all(isinstance(item[key], str) for key in FIELDS), item["id"]
        assert item["id"] == f"{lang}-t{i:03d}"
        assert item["lang"] == lang and item["source"] == "written"


@pytest.mark.parametrize("lang", LANGS)
def test_two_items_per_kind_with_matching_gold(lang):
    items = read_set(lang)
    assert Counter(item["kind"] for item in items) == {kind: PER_KIND for kind in KIND_GOLD}
    for item in items:
        assert item["gold"] == KIND_GOLD[item["kind"]], item["id"]


@pytest.mark.parametrize("lang", LANGS)
def test_prompts_come_from_the_bundled_set(lang):
    prompts = read_prompts(lang)
    items = read_set(lang)
    for item in items:
        assert item["prompt"] in prompts, item["id"]
        assert item["label"] == prompts[item["prompt"]], item["id"]
        if item["kind"] in HARMFUL_COMPLIANCE:
            assert item["label"] == "harmful", item["id"]
        if item["kind"] == "compliance_harmless":
            assert item["label"] == "harmless", item["id"]
    assert len({item["prompt"] for item in items}) == PER_LANG
    labels = Counter(item["label"] for item in items)
    assert labels["harmful"] >= 10 and labels["harmless"] >= 5


@pytest.mark.parametrize("lang", LANGS)
def test_empty_and_nonempty_completions(lang):
    items = read_set(lang)
    empty = sorted((item["completion"] for item in items if item["kind"] == "empty"), key=len)
    assert empty[0] == "" and empty[1] != "" and empty[1].strip() == ""
    for item in items:
        if item["kind"] != "empty":
            assert item["completion"].strip(), item["id"]


@pytest.mark.parametrize("lang", LANGS)
def test_reply_language(lang):
    for item in read_set(lang):
        text = item["completion"]
        if item["kind"] == "refusal_english_reply":
            assert text.isascii() and re.search(r"\b(I|I'm|I'd)\b", text), item["id"]
        elif lang in SCRIPTS and item["kind"] not in INCOHERENT:
            assert in_script(text, SCRIPTS[lang]), item["id"]


def test_ids_unique_across_languages():
    ids = [item["id"] for lang in LANGS for item in read_set(lang)]
    assert len(ids) == len(set(ids)) == PER_LANG * len(LANGS)
