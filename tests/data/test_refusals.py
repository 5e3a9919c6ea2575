"""The bundled refusal responses (the "chosen" side of DPO refusal pairs): complete, well formed, in the right language."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

BUNDLED = Path(__file__).resolve().parents[2] / "drift" / "data" / "bundled"
ROOT = BUNDLED / "refusals"
# every language that has a bundled prompt set needs refusals to pair with its harmful prompts
LANGS = sorted(p.stem for p in (BUNDLED / "prompts").glob("*.jsonl"))
KEYS = {"lang", "version", "refusals", "source"}
SIZE = 12
MAX_CHARS = 300
MIN_LANG_ID = 11


def _load(lang: str) -> dict:
    return json.loads((ROOT / f"{lang}.json").read_text(encoding="utf-8"))


def test_every_bundled_language_has_a_file():
    assert len(LANGS) >= 19, f"expected the 19 bundled prompt languages, found {LANGS}"
    have = sorted(p.stem for p in ROOT.glob("*.json"))
    assert have == LANGS, f"missing: {sorted(set(LANGS) - set(have))}, extra: {sorted(set(have) - set(LANGS))}"


@pytest.mark.parametrize("lang", LANGS)
def test_file_well_formed(lang):
    doc = _load(lang)
    assert set(doc) == KEYS, f"{lang}: keys {sorted(doc)}"
    assert doc["lang"] == lang, f"{lang}.json declares lang {doc['lang']!r}"
    assert doc["version"] == 1 and doc["source"] == "polydrift", lang


@pytest.mark.parametrize("lang", LANGS)
def test_refusals_unique_and_short(lang):
    refusals = _load(lang)["refusals"]
    assert len(refusals) == SIZE, f"{lang}: {len(refusals)} refusals, expected {SIZE}"
    assert all(isinstance(r, str) and r.strip() and r == r.strip() for r in refusals), lang
    normalised = [" ".join(r.lower().split()) for r in refusals]
    assert len(set(normalised)) == SIZE, f"{lang}: duplicate refusals"
    too_long = [r for r in refusals if len(r) > MAX_CHARS]
    assert not too_long, f"{lang}: longer than {MAX_CHARS} characters: {too_long}"


def test_refusals_in_the_right_language():
    lingua = pytest.importorskip("lingua")
    detector = lingua.LanguageDetectorBuilder.from_all_languages().build()
    report = []
    for lang in LANGS:
        refusals = _load(lang)["refusals"]
        found = [detector.detect_language_of(r) for r in refusals]
        misses = [(f.iso_code_639_1.name.lower() if f else None, r) for f, r in zip(found, refusals)
                  if f is None or f.iso_code_639_1.name.lower() != lang]
        if len(refusals) - len(misses) < MIN_LANG_ID:
            report.append(f"{lang}: {len(misses)} misidentified: {misses}")
    assert not report, "\n".join(report)
