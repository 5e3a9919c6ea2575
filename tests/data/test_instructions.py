"""The bundled instruction-response files for fine-tuning: well formed, parallel to English, in the right language."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drift.data.languages import check_lang

ROOT = Path(__file__).resolve().parents[2] / "drift" / "data" / "bundled" / "instructions"
FIELDS = {"id", "group", "lang", "label", "category", "text", "response", "source"}
FULL_LANGS = ("en", "de", "fr", "zh")  # these carry every item; any other language at least the first MIN_SIZE
FULL_SIZE = 150
MIN_SIZE = 64
MIN_LANG_ID = 0.95
MAX_CATEGORY_SHARE = 0.15
MAX_WORDS = 150  # responses are short: about 120 words in English
MAX_CHARS_UNSPACED = 400  # the same budget in characters for languages written without spaces
UNSPACED = {"zh", "ja", "th"}
LANGS = sorted(p.stem for p in ROOT.glob("*.jsonl"))


def _read(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        assert line.strip(), f"{path.name} line {n}: blank line"
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            pytest.fail(f"{path.name} line {n}: not valid JSON ({e})")
    return rows


@pytest.fixture(scope="module")
def data() -> dict[str, list[dict]]:
    return {lang: _read(ROOT / f"{lang}.jsonl") for lang in LANGS}


def test_expected_languages_present():
    assert set(FULL_LANGS) <= set(LANGS), f"missing: {sorted(set(FULL_LANGS) - set(LANGS))}"
    for lang in LANGS:
        assert check_lang(lang) == lang


@pytest.mark.parametrize("lang", LANGS)
def test_records_well_formed(data, lang):
    for r in data[lang]:
        assert set(r) == FIELDS, r.get("id")
        assert all(isinstance(v, str) and v.strip() for v in r.values()), r["id"]
        assert r["lang"] == lang and r["label"] == "harmless" and r["source"] == "polydrift", r["id"]
        assert r["id"] == f"{r['group']}-{lang}", r["id"]
        assert r["group"].startswith("benign-") and r["group"][7:].isdigit(), r["id"]
        if lang in UNSPACED:
            assert len(r["response"]) <= MAX_CHARS_UNSPACED, r["id"]
        else:
            assert len(r["response"].split()) <= MAX_WORDS, r["id"]


@pytest.mark.parametrize("lang", LANGS)
def test_sizes(data, lang):
    need = FULL_SIZE if lang in FULL_LANGS else MIN_SIZE
    assert len(data[lang]) >= need, f"{lang}: {len(data[lang])} items, expected at least {need}"


@pytest.mark.parametrize("lang", LANGS)
def test_parallel_to_english(data, lang):
    en = {r["group"]: r for r in data["en"]}
    groups = [r["group"] for r in data[lang]]
    assert groups == sorted(groups), f"{lang}: groups out of order"
    assert set(groups) <= set(en), f"{lang}: groups not in English: {sorted(set(groups) - set(en))[:5]}"
    # every language has at least the first MIN_SIZE English items, so a partial language still spans every topic
    first = {r["group"] for r in data["en"][:MIN_SIZE]}
    assert first <= set(groups), f"{lang}: missing {sorted(first - set(groups))[:5]}"
    for r in data[lang]:
        assert r["category"] == en[r["group"]]["category"], r["id"]
        if lang != "en":
            assert r["text"] != en[r["group"]]["text"], f"{r['id']}: text left untranslated"
            assert r["response"] != en[r["group"]]["response"], f"{r['id']}: response left untranslated"


@pytest.mark.parametrize("lang", LANGS)
def test_no_duplicates(data, lang):
    rows = data[lang]
    for field in ("id", "group"):
        assert len({r[field] for r in rows}) == len(rows), f"{lang}: duplicate {field}"
    for field in ("text", "response"):
        values = [" ".join(r[field].lower().split()) for r in rows]
        assert len(set(values)) == len(values), f"{lang}: duplicate {field}"


def test_topics_balanced(data):
    cats = [r["category"] for r in data["en"]]
    counts = {c: cats.count(c) for c in set(cats)}
    assert len(counts) >= 10 and max(counts.values()) <= MAX_CATEGORY_SHARE * len(cats), counts
    first = {r["category"] for r in data["en"][:MIN_SIZE]}
    assert first == set(counts), "the first items, which every language has, should span every topic"


@pytest.fixture(scope="module")
def detector():
    lingua = pytest.importorskip("lingua")
    return lingua.LanguageDetectorBuilder.from_all_languages().build()


@pytest.mark.slow  # about 30 s: lingua scores every row against all of its languages
@pytest.mark.parametrize("field", ["text", "response"])
def test_language_identity(data, detector, field):
    bad = {}
    for lang in LANGS:
        rows = data[lang]
        found = detector.detect_languages_in_parallel_of([r[field] for r in rows])
        misses = [r["id"] for r, f in zip(rows, found) if f is None or f.iso_code_639_1.name.lower() != lang]
        if len(misses) > (1 - MIN_LANG_ID) * len(rows):
            bad[lang] = misses
    assert not bad, f"{field} not identified as its language: {bad}"
