"""Batched log-likelihood of continuations given contexts: the primitive behind perplexity and multiple choice."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from drift.finetune.encode import IGNORE, pad_batch
from drift.finetune.objective import ResponseLM


def score_sequences(lm, rows: Sequence[tuple[list[int], list[int]]], batch_size: int = 16,
                    top1: bool = False) -> list[tuple[float, int, int]]:
    """(summed log-prob, label tokens, top-1 hits) of each (input_ids, labels) row, in the input order.

    Rows are length-sorted into batches; only labelled positions are projected through the LM head.
    """
    module = ResponseLM(lm.model).eval()
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))
    out: list[tuple[float, int, int]] = [(0.0, 0, 0)] * len(rows)
    pad = lm.tokenizer.pad_token_id
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = {k: v.to(lm.device) for k, v in pad_batch([rows[i] for i in idx], pad).items()}
        with torch.inference_mode():
            res = module(**batch, top1=True)
        for j, i in enumerate(idx):
            out[i] = (float(res[0][j]), int(res[1][j]), int(res[2][j]) if top1 else 0)
    return out


def context_rows(lm, contexts: Sequence[str], continuations: Sequence[str], chat: bool = True,
                 max_length: int | None = None) -> list[tuple[list[int], list[int]]]:
    """Token rows scoring ``continuation`` after ``context``: with ``chat``, the context is the user turn of the chat
    template and the continuation starts the assistant's answer; otherwise both are plain text."""
    rows = []
    tok = lm.tokenizer
    for ctx, cont in zip(contexts, continuations):
        if chat:
            prefix = list(lm.formatter.encode(ctx).input_ids)
        else:
            prefix = tok(ctx, add_special_tokens=True)["input_ids"]
        cont_ids = tok(cont, add_special_tokens=False)["input_ids"]
        if max_length is not None and len(prefix) + len(cont_ids) > max_length:
            prefix = prefix[-max(max_length - len(cont_ids), 1):]  # keep the end of the context
            cont_ids = cont_ids[: max_length - len(prefix)]
        rows.append((prefix + cont_ids, [IGNORE] * len(prefix) + cont_ids))
    return rows
