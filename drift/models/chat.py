"""Wrapping instructions in a chat template and locating the instruction and post-instruction tokens.

The post-instruction tokens (Arditi et al. 2024) are the template tokens between the end of the user's instruction
and the start of the response, for SmolLM2 ``<|im_end|>\\n<|im_start|>assistant\\n``. They are found by rendering the
template and mapping the instruction's character span to tokens, so no family needs hand-written token lists.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import torch

from drift.errors import DriftError

PLAIN_FORMAT = "User: {instruction}\nAssistant:"


@dataclass(frozen=True)
class ChatOptions:
    """How an instruction becomes model input.

    Attributes:
        use_chat_template: Wrap in the tokenizer's chat template (falls back to ``plain_format`` when it has none).
        system_prompt: A system message; None keeps the template's own default.
        enable_thinking: Passed to templates with a thinking switch (Qwen3); None leaves the template default.
        plain_format: Format for models without a chat template; must contain ``{instruction}``.
    """

    use_chat_template: bool = True
    system_prompt: str | None = None
    enable_thinking: bool | None = None
    plain_format: str = PLAIN_FORMAT

    def __post_init__(self) -> None:
        if "{instruction}" not in self.plain_format:
            raise DriftError("plain_format must contain '{instruction}', e.g. 'User: {instruction}\\nAssistant:'")


@dataclass(frozen=True)
class Encoded:
    """One tokenized prompt: ids plus the token span of the instruction (``[instr_start, instr_end)``)."""

    input_ids: tuple[int, ...]
    instr_start: int
    instr_end: int

    @property
    def n_post(self) -> int:
        """Number of post-instruction template tokens."""
        return len(self.input_ids) - self.instr_end


class ChatFormatter:
    """Renders instructions for one tokenizer and options; hashable into provenance via :attr:`template_hash`."""

    def __init__(self, tokenizer, options: ChatOptions | None = None) -> None:
        self.tokenizer = tokenizer
        self.options = options or ChatOptions()
        self.uses_template = self.options.use_chat_template and bool(getattr(tokenizer, "chat_template", None))

    def render(self, instruction: str) -> str:
        """Return the full model input text for an instruction."""
        if not self.uses_template:
            return self.options.plain_format.format(instruction=instruction)
        messages = []
        if self.options.system_prompt is not None:
            messages.append({"role": "system", "content": self.options.system_prompt})
        messages.append({"role": "user", "content": instruction})
        kwargs = {}
        if self.options.enable_thinking is not None:
            kwargs["enable_thinking"] = self.options.enable_thinking
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)

    @property
    def template_hash(self) -> str:
        """SHA-256 of the template text and the options that shape the rendered input."""
        template = self.tokenizer.chat_template if self.uses_template else self.options.plain_format
        payload = json.dumps({"template": template, "options": asdict(self.options)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def _span(self, instruction: str, text: str) -> tuple[int, int]:
        start = text.rfind(instruction)
        if start < 0:
            raise DriftError("the chat template altered the instruction text, so its tokens cannot be located")
        return start, start + len(instruction)

    def encode(self, instruction: str) -> Encoded:
        """Tokenize one instruction and find its token span."""
        text = self.render(instruction)
        c0, c1 = self._span(instruction, text)
        # A rendered template already holds its special tokens (BOS included): adding them again doubles the BOS.
        add_special = not self.uses_template
        tok = self.tokenizer
        if getattr(tok, "is_fast", False):
            enc = tok(text, add_special_tokens=add_special, return_offsets_mapping=True)
            ids, offsets = enc["input_ids"], enc["offset_mapping"]
            real = [(i, s, e) for i, (s, e) in enumerate(offsets) if e > s]
            start = next((i for i, s, e in real if e > c0), len(ids))
            end = next((i for i, s, e in real if s >= c1), len(ids))
        else:
            ids = tok(text, add_special_tokens=add_special)["input_ids"]
            start = len(tok(text[:c0], add_special_tokens=add_special)["input_ids"])
            end = len(tok(text[:c1], add_special_tokens=add_special)["input_ids"])
        if end <= start:
            raise DriftError(f"instruction {instruction[:40]!r} produced no tokens: is it empty?")
        return Encoded(tuple(ids), start, end)


def collate(
    encoded: list[Encoded], pad_id: int, padding_side: str = "left", device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Pad a batch; position ids come from the attention mask so padding never shifts positions.

    Returns:
        ``input_ids``, ``attention_mask`` and ``position_ids``, each shaped (batch, max_len).
    """
    if padding_side not in ("left", "right"):
        raise DriftError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
    width = max(len(e.input_ids) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, e in enumerate(encoded):
        n = len(e.input_ids)
        sl = slice(width - n, width) if padding_side == "left" else slice(0, n)
        ids[row, sl] = torch.tensor(e.input_ids, dtype=torch.long)
        mask[row, sl] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "position_ids": positions.to(device)}
