"""Batched generation with transformers: chat template, length-sorted left-padded batches, stop tokens."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from drift.generate.config import GenerationConfig
from drift.models.chat import collate

# End-of-turn markers of common chat templates; used only when the tokenizer has them as single tokens.
_END_OF_TURN = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "<|endoftext|>")


@dataclass(frozen=True)
class Generated:
    """One completion: text (stop token excluded), number of generated tokens before the stop, finish reason."""

    completion: str
    n_tokens: int
    finish_reason: str  # "stop" or "length"


def stop_token_ids(lm) -> list[int]:
    """Token ids that end a completion: the model's EOS ids, the tokenizer's EOS and chat end-of-turn tokens."""
    ids: set[int] = set()
    eos = getattr(getattr(lm.model, "generation_config", None), "eos_token_id", None)
    ids.update([eos] if isinstance(eos, int) else (eos or []))
    if lm.tokenizer.eos_token_id is not None:
        ids.add(int(lm.tokenizer.eos_token_id))
    vocab = lm.tokenizer.get_vocab()
    ids.update(vocab[t] for t in _END_OF_TURN if t in vocab)
    return sorted(ids)


def _batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # longest first: memory errors surface early
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


def _autocast(lm, config: GenerationConfig):
    if config.autocast is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=lm.device.type, dtype=torch.bfloat16)


def _split(new_ids: torch.Tensor, stops: set[int], tokenizer) -> list[Generated]:
    out = []
    for row in new_ids.tolist():
        cut = next((i for i, t in enumerate(row) if t in stops), None)
        kept = row if cut is None else row[:cut]
        text = tokenizer.decode(kept, skip_special_tokens=True)
        out.append(Generated(text, len(kept), "length" if cut is None else "stop"))
    return out


def generate_batches(lm, texts: Sequence[str], config: GenerationConfig) -> Iterator[list[tuple[int, Generated]]]:
    """Generate completions for instructions, yielding ``(index, Generated)`` pairs one batch at a time.

    Batches are length-sorted and left-padded; runtime interventions active on ``lm`` apply at every step.
    """
    encoded = [lm.formatter.encode(t) for t in texts]
    stops = stop_token_ids(lm)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else stops[0]
    lm.model.config.use_cache = True
    for b, idx in enumerate(_batches([len(e.input_ids) for e in encoded], config.batch_size)):
        batch = collate([encoded[i] for i in idx], pad, "left", lm.device)
        kwargs = dict(max_new_tokens=config.max_new_tokens, do_sample=config.do_sample, pad_token_id=pad,
                      eos_token_id=stops, use_cache=True)
        if config.do_sample:
            torch.manual_seed(config.seed * 1_000_003 + b)
            kwargs |= dict(temperature=config.temperature, top_p=config.top_p, top_k=0)
        else:
            kwargs |= dict(temperature=None, top_p=None, top_k=None)
        with torch.inference_mode(), _autocast(lm, config):
            out = lm.model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs)
        width = batch["input_ids"].shape[1]
        yield list(zip(idx, _split(out[:, width:].cpu(), set(stops), lm.tokenizer)))
