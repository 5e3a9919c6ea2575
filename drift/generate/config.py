"""Generation settings, recorded with every completion because ASR depends on them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from drift.errors import DriftError

BACKENDS = ("hf", "vllm")


@dataclass(frozen=True)
class GenerationConfig:
    """How completions are generated.

    Attributes:
        max_new_tokens: Cap on generated tokens (ASR changes with it; default 256).
        do_sample: Sample instead of greedy decoding.
        temperature: Sampling temperature (ignored when greedy).
        top_p: Nucleus sampling mass (ignored when greedy).
        seed: Sampling seed; with the same prompts and batch size a sampled run is reproducible.
        batch_size: Prompts per batch (length-sorted, left-padded).
        backend: ``hf`` (transformers) or ``vllm`` (GPU machines; imported only when chosen).
        autocast: ``bfloat16`` to run the forward under bf16 autocast (about 2x faster on recent CPUs), or None.
    """

    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 16
    backend: str = "hf"
    autocast: str | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise DriftError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise DriftError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.do_sample and (self.temperature <= 0 or not 0 < self.top_p <= 1):
            raise DriftError("sampling needs temperature > 0 and 0 < top_p <= 1")
        if self.backend not in BACKENDS:
            raise DriftError(f"unknown generation backend {self.backend!r}; choose from {', '.join(BACKENDS)}")
        if self.autocast not in (None, "bfloat16"):
            raise DriftError(f"autocast must be 'bfloat16' or None, got {self.autocast!r}")

    def to_dict(self) -> dict:
        """The settings that shape the completions (batch size excluded for greedy decoding)."""
        d = asdict(self)
        if not self.do_sample:
            d.pop("batch_size")
            d.pop("seed")
            d.pop("temperature")
            d.pop("top_p")
        return d

    @property
    def key(self) -> str:
        """A short hash of :meth:`to_dict`, used to decide whether a stored completion can be reused."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
