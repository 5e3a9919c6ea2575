"""Chat formatting: post-instruction tokens, BOS handling, plain format, options in the template hash."""

import pytest
from tiny import CHATML, GEMMA_STYLE, make_tokenizer

from drift import DriftError
from drift.models.chat import ChatFormatter, ChatOptions, collate


def test_post_instruction_tokens_are_the_template_suffix():
    tok = make_tokenizer(CHATML)
    fmt = ChatFormatter(tok)
    e = fmt.encode("How do plants make food?")
    post = tok.decode(list(e.input_ids[e.instr_end :]))
    assert post == "<|im_end|>\n<|im_start|>assistant\n"
    assert tok.decode(list(e.input_ids[e.instr_start : e.instr_end])) == "How do plants make food?"


def test_bos_not_doubled_when_template_has_it():
    tok = make_tokenizer(GEMMA_STYLE)
    e = ChatFormatter(tok).encode("Hello there")
    assert list(e.input_ids).count(tok.bos_token_id) == 1 and e.input_ids[0] == tok.bos_token_id
    assert tok.decode(list(e.input_ids[e.instr_end :])) == "<end_of_turn>\n<start_of_turn>model\n"


def test_plain_format_without_template():
    tok = make_tokenizer(None)
    fmt = ChatFormatter(tok)
    assert not fmt.uses_template and fmt.render("Hi") == "User: Hi\nAssistant:"
    custom = ChatFormatter(tok, ChatOptions(plain_format="Q: {instruction}\nA:"))
    e = custom.encode("Hi")
    assert tok.decode(list(e.input_ids[e.instr_end :])).strip().endswith("A:")
    with pytest.raises(DriftError, match="must contain"):
        ChatOptions(plain_format="no slot")


def test_options_change_rendering_and_hash():
    tok = make_tokenizer(CHATML)
    base, sys_ = ChatFormatter(tok), ChatFormatter(tok, ChatOptions(system_prompt="Be brief."))
    assert "Be brief." in sys_.render("x") and base.template_hash != sys_.template_hash
    e = sys_.encode("x y z")
    assert tok.decode(list(e.input_ids[e.instr_start : e.instr_end])) == "x y z"


@pytest.mark.parametrize("side", ["left", "right"])
def test_collate_positions_ignore_padding(side):
    tok = make_tokenizer(CHATML)
    fmt = ChatFormatter(tok)
    enc = [fmt.encode("short"), fmt.encode("a much longer instruction than the other one")]
    batch = collate(enc, tok.pad_token_id, side)
    mask, pos = batch["attention_mask"], batch["position_ids"]
    for row, e in enumerate(enc):
        real = pos[row][mask[row].bool()]
        assert real.tolist() == list(range(len(e.input_ids)))
