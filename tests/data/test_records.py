import json

import pytest

from drift import DriftError
from drift.data import Prompt, PromptSet, load_prompts, make_prompt


def _ps():
    rows = []
    for g in range(20):
        for lang in ("en", "de", "fr"):
            rows.append(Prompt(f"g{g}-{lang}", f"g{g}", lang, "harmful" if g % 2 else "harmless", "c", f"t {g} {lang}", "s"))
    return PromptSet(rows, "toy")


def test_filter_and_properties():
    ps = _ps()
    assert ps.langs == ["en", "de", "fr"] and set(ps.labels) == {"harmful", "harmless"}
    de = ps.filter(langs=["de"], labels=["harmful"])
    assert len(de) == 10 and {p.lang for p in de} == {"de"} and {p.label for p in de} == {"harmful"}
    with pytest.raises(DriftError, match="unknown language code 'xx'"):
        ps.filter(langs=["xx"])
    with pytest.raises(DriftError, match="unknown label filter"):
        ps.filter(labels=["evil"])


def test_split_by_group_is_deterministic_and_never_straddles():
    ps = _ps()
    train, test = ps.split(0.3, seed=1)
    assert len(train) + len(test) == len(ps) and len(test) > 0
    assert not set(train.groups) & set(test.groups)
    for g in test.groups:  # every translation of a test group is in test
        assert len(test.filter(groups=[g])) == 3
    assert [p.id for p in ps.split(0.3, seed=1)[1]] == [p.id for p in test]
    assert [p.id for p in ps.split(0.3, seed=2)[1]] != [p.id for p in test]


def test_content_hash_changes_with_content():
    ps = _ps()
    assert ps.content_hash() == _ps().content_hash()
    assert ps[:-1].content_hash() != ps.content_hash()


def test_duplicate_ids_rejected():
    p = Prompt("a", "a", "en", "harmful", "", "x", "")
    with pytest.raises(DriftError, match="duplicate prompt id 'a'"):
        PromptSet([p, p])


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"id": "1", "lang": "en", "label": "harmful"}, "missing field"),
        ({"id": "1", "lang": "en", "label": "harmful", "text": "   "}, "empty prompt text"),
        ({"id": "1", "lang": "english", "label": "harmful", "text": "x"}, "unknown language code 'english'"),
        ({"id": "1", "lang": "en", "label": "bad", "text": "x"}, "unknown label 'bad'"),
    ],
)
def test_make_prompt_errors(raw, message):
    with pytest.raises(DriftError, match=message):
        make_prompt(raw, "f.jsonl line 3")


def test_jsonl_roundtrip(tmp_path):
    ps = _ps()
    path = ps.to_jsonl(tmp_path / "p.jsonl")
    again = load_prompts(str(path))
    assert again.to_records() == ps.to_records()
    assert json.loads(path.read_text().splitlines()[0])["id"] == "g0-en"
