"""The bundled multiple-choice capability set: parallel, well-formed, balanced, each question in its language."""

import collections
import json
from importlib import resources

import pytest

LANGS = "en de fr es it pt pl cs sk da el lt lv ru ar zh hi sw tl".split()
SUBJECTS = {"arithmetic", "time", "science", "geography", "animals", "body", "language", "everyday"}
MIN_ITEMS = 100
KEYS = {"id", "group", "lang", "subject", "question", "choices", "answer", "source"}


@pytest.fixture(scope="module")
def mcq() -> dict[str, list[dict]]:
    folder = resources.files("drift.data.bundled").joinpath("mcq")
    out = {}
    for lang in LANGS:
        lines = folder.joinpath(f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()
        out[lang] = [json.loads(line) for line in lines if line.strip()]
    return out


def test_exactly_the_bundled_languages():
    folder = resources.files("drift.data.bundled").joinpath("mcq")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".jsonl"))
    assert names == sorted(f"{lang}.jsonl" for lang in LANGS)


def test_schema_and_size(mcq):
    for lang, rows in mcq.items():
        assert len(rows) >= MIN_ITEMS, lang
        for k, r in enumerate(rows, 1):
            assert set(r) == KEYS, (lang, k, sorted(r))
            assert r["group"] == f"mcq-{k:03d}" and r["id"] == f"mcq-{k:03d}-{lang}", (lang, r["id"])
            assert r["lang"] == lang and r["source"] == "polydrift", r["id"]
            assert r["subject"] in SUBJECTS, r["id"]
            assert isinstance(r["question"], str) and r["question"].strip(), r["id"]
            assert isinstance(r["answer"], int) and 0 <= r["answer"] <= 3, r["id"]


def test_four_distinct_choices(mcq):
    for rows in mcq.values():
        for r in rows:
            choices = r["choices"]
            assert isinstance(choices, list) and len(choices) == 4, r["id"]
            assert all(isinstance(c, str) and c.strip() for c in choices), r["id"]
            assert len({c.strip().casefold() for c in choices}) == 4, r["id"]


def test_parallel_across_languages(mcq):
    master = mcq["en"]
    for lang, rows in mcq.items():
        assert [r["group"] for r in rows] == [m["group"] for m in master], lang
        assert [r["answer"] for r in rows] == [m["answer"] for m in master], lang
        assert [r["subject"] for r in rows] == [m["subject"] for m in master], lang


def test_numbers_stay_numbers(mcq):
    """A choice that is a bare number in English is the same number, at the same place, in every language."""
    for lang, rows in mcq.items():
        for r, m in zip(rows, mcq["en"]):
            for c, e in zip(r["choices"], m["choices"]):
                assert c.isdigit() == e.isdigit() and (not e.isdigit() or c == e), (r["id"], c, e)


def test_no_duplicate_questions(mcq):
    for lang, rows in mcq.items():
        questions = [r["question"].strip().casefold() for r in rows]
        assert len(questions) == len(set(questions)), lang


def test_answer_positions_balanced(mcq):
    answers = [r["answer"] for r in mcq["en"]]
    counts = collections.Counter(answers)
    for pos in range(4):
        share = counts[pos] / len(answers)
        assert 0.15 <= share <= 0.35, f"answer {'ABCD'[pos]} is correct in {share:.0%} of items"


def test_subjects_spread(mcq):
    counts = collections.Counter(r["subject"] for r in mcq["en"])
    assert set(counts) == SUBJECTS and min(counts.values()) >= 10, counts


@pytest.mark.slow  # about 20 s: lingua loads a model for every language it considers
def test_language_identity(mcq):
    lingua = pytest.importorskip("lingua")
    detector = lingua.LanguageDetectorBuilder.from_all_languages().build()
    for lang, rows in mcq.items():
        found = detector.detect_languages_in_parallel_of([r["question"] for r in rows])
        hits = sum(1 for f in found if f is not None and f.iso_code_639_1.name.lower() == lang)
        assert hits / len(rows) >= 0.90, f"{lang}: only {hits}/{len(rows)} questions identified as {lang}"
