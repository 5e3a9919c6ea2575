"""Tokenize training data with the chat template; loss falls on response tokens only.

The prompt is encoded exactly as at generation time (:meth:`ChatFormatter.encode`), and the response is the rest of
the rendered two-turn conversation (the assistant's text plus the template's end-of-turn tokens), so the model
learns to stop where the template ends a turn. Without a chat template the response ends with the EOS token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from drift.errors import DriftError

IGNORE = -100


@dataclass(frozen=True)
class EncodedExample:
    """Token ids of a prompt and a response (the response is what carries loss)."""

    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]

    def sequence(self, max_length: int) -> tuple[list[int], list[int]] | None:
        """(input_ids, labels) truncated to ``max_length`` (response cut first); None if no response token fits."""
        room = max_length - len(self.prompt_ids)
        if room < 1:
            return None
        resp = list(self.response_ids[:room])
        return list(self.prompt_ids) + resp, [IGNORE] * len(self.prompt_ids) + resp


def response_suffix(formatter, instruction: str, response: str) -> str:
    """The text that follows the rendered prompt when the assistant answers ``response``."""
    tok = formatter.tokenizer
    if not formatter.uses_template:
        return response + (tok.eos_token or "")
    prompt = formatter.render(instruction)
    messages = []
    if formatter.options.system_prompt is not None:
        messages.append({"role": "system", "content": formatter.options.system_prompt})
    messages += [{"role": "user", "content": instruction}, {"role": "assistant", "content": response}]
    kwargs = {} if formatter.options.enable_thinking is None else {"enable_thinking": formatter.options.enable_thinking}
    full = tok.apply_chat_template(messages, tokenize=False, **kwargs)
    if not full.startswith(prompt):
        # Templates that rewrite earlier turns (e.g. dropping thinking) still end with the answer and end-of-turn.
        at = full.rfind(response)
        if at < 0:
            raise DriftError("the chat template does not reproduce the response text; cannot locate its tokens")
        return full[at:]
    return full[len(prompt):]


def encode_example(formatter, instruction: str, response: str) -> EncodedExample:
    """Encode one (instruction, response) pair for training."""
    prompt_ids = formatter.encode(instruction).input_ids
    suffix = response_suffix(formatter, instruction, response)
    resp_ids = tuple(formatter.tokenizer(suffix, add_special_tokens=False)["input_ids"])
    if not resp_ids:
        raise DriftError(f"the response to {instruction[:40]!r} produced no tokens")
    return EncodedExample(tuple(prompt_ids), resp_ids)


def pad_batch(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad (input_ids, labels) rows into tensors with an attention mask (training does not need left padding)."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (x, y) in enumerate(rows):
        ids[r, : len(x)] = torch.tensor(x)
        labels[r, : len(y)] = torch.tensor(y)
        mask[r, : len(x)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
