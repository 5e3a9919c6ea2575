"""Refusal openings: every bundled language has them, and their first tokens follow the response start."""

import pytest
from tiny import CHATML, make_tokenizer

from drift import DriftError
from drift.data import load_builtin
from drift.models.chat import ChatFormatter
from drift.models.refusal import REFUSAL_OPENINGS, refusal_openings, refusal_token_ids


def test_every_bundled_language_has_openings():
    assert set(load_builtin().langs) <= set(REFUSAL_OPENINGS)
    with pytest.raises(DriftError, match="no refusal openings for language 'qq'"):
        refusal_openings("qq")


@pytest.mark.parametrize("template", [CHATML, None])
def test_first_tokens_are_what_the_response_starts_with(template):
    tok = make_tokenizer(template)
    fmt = ChatFormatter(tok)
    ids = refusal_token_ids(fmt, "en")
    prompt = fmt.render("x")
    for phrase in REFUSAL_OPENINGS["en"]:
        full = tok(prompt + phrase, add_special_tokens=not fmt.uses_template)["input_ids"]
        base = tok(prompt, add_special_tokens=not fmt.uses_template)["input_ids"]
        assert full[len(base)] in ids
    assert len(ids) == len(set(ids))
    custom = refusal_token_ids(fmt, phrases=("Nope",))
    assert len(custom) == 1
