"""Capture backends behind one interface: run a batch and hand each (site, layer) hidden state to a sink.

``hf`` (forward hooks) is the default and needs nothing beyond transformers; ``nnsight`` and
``transformer_lens`` live in their own modules and import their packages only when chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from drift.capture.sites import execution_key, hook_target
from drift.errors import DriftError

Sink = Callable[[str, int, torch.Tensor], None]


class Backend(Protocol):
    """Runs one padded batch and calls ``sink(site, layer, hidden)`` with hidden states shaped (b, T, d)."""

    name: str

    def run(self, lm, batch: dict[str, torch.Tensor], targets: list[tuple[str, int]], sink: Sink) -> None:
        """Capture ``targets`` for one batch.

        Args:
            lm: A :class:`~drift.models.loading.LoadedModel`.
            batch: ``input_ids``, ``attention_mask`` and ``position_ids`` on ``lm.device``.
            targets: (site, layer) pairs to capture.
            sink: Called with ``(site, layer, hidden)`` for each target, hidden shaped (batch, seq, d_model).
        """


class _StopForward(Exception):
    """Raised by the last hook so the forward pass ends there (no later blocks, no LM head)."""


def _first(x):
    return x[0] if isinstance(x, (tuple, list)) else x


class HFHooksBackend:
    """PyTorch forward hooks on the HF model; stops the forward pass after the last requested site."""

    name = "hf"

    def run(self, lm, batch: dict[str, torch.Tensor], targets: list[tuple[str, int]], sink: Sink) -> None:
        """Capture ``targets`` for one batch (see :class:`Backend`)."""
        ordered = sorted(targets, key=lambda t: execution_key(*t))
        final = ordered[-1]
        handles = []

        def make(site: str, layer: int, kind: str):
            def read(hidden: torch.Tensor) -> None:
                sink(site, layer, hidden)
                if (site, layer) == final:
                    raise _StopForward

            if kind == "pre":
                return lambda mod, args, kwargs: read(args[0] if args else kwargs["hidden_states"])
            return lambda mod, args, kwargs, output: read(_first(output))

        try:
            for site, layer in ordered:
                module, kind = hook_target(lm.model, lm.family, site, layer)
                fn = make(site, layer, kind)
                if kind == "pre":
                    handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))
                else:
                    handles.append(module.register_forward_hook(fn, with_kwargs=True))
            try:
                lm.model(**batch, use_cache=False)
            except _StopForward:
                pass
        finally:
            for h in handles:
                h.remove()


def get_backend(name: str) -> Backend:
    """Return the backend called ``name`` (``hf``, ``nnsight`` or ``transformer_lens``)."""
    if name == "hf":
        return HFHooksBackend()
    if name == "nnsight":
        from drift.capture.nnsight_backend import NNsightBackend

        return NNsightBackend()
    if name in ("transformer_lens", "lens"):
        from drift.capture.lens_backend import TransformerLensBackend

        return TransformerLensBackend()
    raise DriftError(f"unknown backend {name!r}: choose hf, nnsight or transformer_lens")
