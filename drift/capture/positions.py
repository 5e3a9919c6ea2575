"""Turning a batch's full hidden states into the requested positions, counted from real tokens only."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from drift.errors import DriftError
from drift.models.chat import Encoded

POSITIONS = ("last", "post_instruction", "mean", "all")


def check_positions(positions: Iterable[str]) -> list[str]:
    """Validate position names and return them without duplicates."""
    positions = list(dict.fromkeys(positions))
    bad = [p for p in positions if p not in POSITIONS]
    if bad or not positions:
        raise DriftError(f"unknown position(s) {bad or positions}: choose from {', '.join(POSITIONS)}")
    return positions


def position_labels(positions: list[str], n_post: int) -> list[str | int]:
    """Labels of the fixed position axis: ``last``, ``mean``, and -n_post..-1 for ``post_instruction``."""
    labels: list[str | int] = []
    for p in positions:
        if p == "last":
            labels.append("last")
        elif p == "mean":
            labels.append("mean")
        elif p == "post_instruction":
            labels.extend(range(-n_post, 0))
    return labels


def common_n_post(encoded: list[Encoded]) -> int:
    """Number of post-instruction tokens, which must be the same for every prompt."""
    counts = {e.n_post for e in encoded}
    if len(counts) != 1:
        raise DriftError(f"post-instruction token counts differ between prompts ({sorted(counts)}): the chat template "
                         "tokenizes differently around some instructions; use --positions last or mean")
    n = counts.pop()
    if n == 0:
        raise DriftError("the prompt format has no tokens after the instruction: post_instruction is empty")
    return n


@dataclass
class BatchIndex:
    """Where each prompt's real tokens sit in a padded batch (absolute column indices)."""

    start: torch.Tensor  # (b,) first real token
    length: torch.Tensor  # (b,) real tokens
    instr_start: torch.Tensor  # (b,) absolute
    instr_end: torch.Tensor  # (b,) absolute, exclusive

    @classmethod
    def build(cls, encoded: list[Encoded], width: int, padding_side: str) -> BatchIndex:
        """Index a batch padded to ``width`` on ``padding_side``."""
        length = torch.tensor([len(e.input_ids) for e in encoded])
        start = width - length if padding_side == "left" else torch.zeros_like(length)
        return cls(
            start=start,
            length=length,
            instr_start=start + torch.tensor([e.instr_start for e in encoded]),
            instr_end=start + torch.tensor([e.instr_end for e in encoded]),
        )


def reduce_positions(hidden: torch.Tensor, idx: BatchIndex, positions: list[str], n_post: int) -> torch.Tensor:
    """Select the fixed positions from hidden states (b, T, d) and return float32 (b, n_positions, d)."""
    device = hidden.device
    last = (idx.start + idx.length - 1).to(device)
    parts = []
    for p in positions:
        if p == "last":
            parts.append(hidden[torch.arange(hidden.shape[0], device=device), last][:, None])
        elif p == "post_instruction":
            cols = last[:, None] + torch.arange(-n_post + 1, 1, device=device)[None, :]
            parts.append(torch.gather(hidden, 1, cols[..., None].expand(-1, -1, hidden.shape[-1])))
        elif p == "mean":
            t = torch.arange(hidden.shape[1], device=device)[None, :]
            mask = (t >= idx.instr_start.to(device)[:, None]) & (t < idx.instr_end.to(device)[:, None])
            summed = (hidden.float() * mask[..., None]).sum(1)
            parts.append((summed / mask.sum(1, keepdim=True))[:, None])
    return torch.cat([x.float() for x in parts], dim=1) if parts else hidden.new_zeros((hidden.shape[0], 0, hidden.shape[-1]))


def real_tokens(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Every prompt's real-token rows, concatenated in batch order: float32 (sum of lengths, d).

    Args:
        hidden: (b, T, d) hidden states.
        mask: (b, T) attention mask of the batch (1 on real tokens).
    """
    return hidden[mask.to(hidden.device).bool()].float()
