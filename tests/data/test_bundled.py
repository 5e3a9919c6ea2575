"""The bundled prompt set: parallel, unique, and each row in the language it claims."""

import collections

import pytest

from drift.data import load_builtin

MIN_LANGS = 12


@pytest.fixture(scope="module")
def bundled():
    return load_builtin("prompts")


def test_size_and_languages(bundled):
    assert len(bundled.langs) >= MIN_LANGS
    for label in ("harmful", "harmless"):
        assert len(bundled.filter(labels=[label], langs=["en"])) >= 100


def test_every_group_in_every_language(bundled):
    langs_per_group = collections.defaultdict(set)
    for p in bundled:
        langs_per_group[p.group].add(p.lang)
    assert all(v == set(bundled.langs) for v in langs_per_group.values())


def test_no_duplicates(bundled):
    for lang in bundled.langs:
        texts = [p.text.strip().lower() for p in bundled.filter(langs=[lang])]
        assert len(texts) == len(set(texts)), lang


def test_harmful_categories_spread(bundled):
    cats = collections.Counter(p.category for p in bundled.filter(labels=["harmful"], langs=["en"]))
    assert len(cats) >= 8 and max(cats.values()) <= 20


def test_language_identity(bundled):
    lingua = pytest.importorskip("lingua")
    detector = lingua.LanguageDetectorBuilder.from_all_languages().build()
    for lang in bundled.langs:
        rows = bundled.filter(langs=[lang])
        found = detector.detect_languages_in_parallel_of([p.text for p in rows])
        hits = sum(1 for f in found if f is not None and f.iso_code_639_1.name.lower() == lang)
        assert hits / len(rows) >= 0.95, f"{lang}: only {hits}/{len(rows)} identified as {lang}"
