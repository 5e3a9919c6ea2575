"""The direction-selection filters of Arditi et al. (2024), and a reader for their published evaluations.

Each candidate direction (a post-instruction position and a layer) is scored by three numbers: the mean refusal
score on harmful prompts with the direction ablated (lower is better), the mean refusal score on harmless prompts
with the direction added (must be positive), and the mean KL divergence of the next-token distribution on harmless
prompts under ablation (must stay small). Candidates in the last 20% of layers are discarded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from drift.errors import DriftError

KL_THRESHOLD = 0.1
INDUCE_THRESHOLD = 0.0
PRUNE_LAYER_FRACTION = 0.2


@dataclass(frozen=True)
class Candidate:
    """Scores of one candidate direction.

    Attributes:
        position: Post-instruction position (negative offset from the end of the prompt).
        layer: Layer the direction was taken from.
        refusal_score: Mean refusal score on harmful prompts under ablation.
        steering_score: Mean refusal score on harmless prompts under activation addition.
        kl_div_score: Mean KL divergence on harmless prompts under ablation.
    """

    position: int
    layer: int
    refusal_score: float
    steering_score: float
    kl_div_score: float

    def to_dict(self) -> dict:
        """Return the candidate as a dict (the published field names)."""
        return asdict(self)


@dataclass(frozen=True)
class Selection:
    """The outcome of the selection: the chosen candidate and those that passed the filters, best first."""

    chosen: Candidate
    passed: tuple[Candidate, ...]
    n_candidates: int
    n_layers: int


def filter_candidates(
    candidates: Iterable[Candidate],
    n_layers: int,
    kl_threshold: float = KL_THRESHOLD,
    induce_threshold: float = INDUCE_THRESHOLD,
    prune_layer_fraction: float = PRUNE_LAYER_FRACTION,
) -> list[Candidate]:
    """Candidates that pass the filters, sorted by ablation refusal score (lowest first, stable)."""
    max_layer = int(n_layers * (1.0 - prune_layer_fraction))
    kept = [
        c
        for c in candidates
        if c.layer < max_layer and c.kl_div_score < kl_threshold and c.steering_score > induce_threshold
    ]
    return sorted(kept, key=lambda c: c.refusal_score)


def select_candidate(candidates: Iterable[Candidate], n_layers: int | None = None, **filters) -> Selection:
    """Apply the filters and pick the candidate with the lowest ablation refusal score.

    Args:
        candidates: Scored candidates.
        n_layers: Layers of the model (default: the highest candidate layer + 1, right when every layer was scored).
        **filters: ``kl_threshold``, ``induce_threshold``, ``prune_layer_fraction``.

    Raises:
        DriftError: No candidate passes the filters.
    """
    candidates = list(candidates)
    if not candidates:
        raise DriftError("no candidate directions to select from")
    n_layers = n_layers or max(c.layer for c in candidates) + 1
    passed = filter_candidates(candidates, n_layers, **filters)
    if not passed:
        raise DriftError(
            "no candidate direction passes the filters (KL below threshold, positive steering score, early layer): "
            "a model that does not refuse has no refusal to find; otherwise use more prompts or relax "
            "--kl-threshold / --induce-threshold"
        )
    return Selection(passed[0], tuple(passed), len(candidates), n_layers)


def read_published_evaluations(path: str | Path) -> list[Candidate]:
    """Read a ``direction_evaluations.json`` of the refusal-direction repository into candidates."""
    path = Path(path)
    if not path.is_file():
        raise DriftError(f"direction evaluations not found: {path}")
    rows = json.loads(path.read_text(encoding="utf-8"))
    try:
        return [Candidate(int(r["position"]), int(r["layer"]), float(r["refusal_score"]), float(r["steering_score"]),
                          float(r["kl_div_score"])) for r in rows]
    except (KeyError, TypeError) as e:
        raise DriftError(f"{path} is not a list of direction evaluations ({e})") from None
