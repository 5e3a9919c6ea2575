"""The ``nnsight`` capture backend: read residual sites through an nnsight trace of the loaded HF model.

nnsight is imported only when this backend runs. The model is wrapped once in ``nnsight.NNsight`` (the plain module
wrapper: inputs go to ``forward`` untouched, and no tokenizer or pipeline is built around the already-loaded model),
and the wrapper is cached on the model itself (see :func:`wrap_model`). Sites are read in execution order; the
trace stops after the last one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from drift.capture.sites import execution_key
from drift.errors import DriftError

if TYPE_CHECKING:
    from drift.capture.backends import Sink

_ATTR = "_drift_nnsight_envoy"


class _Slot:
    """Holds the wrapper on the model; copies and pickles of the model get an empty slot, not the wrapper."""

    def __init__(self, envoy: Any = None) -> None:
        self.envoy = envoy

    def __deepcopy__(self, memo: dict) -> _Slot:
        return _Slot()

    def __reduce__(self) -> tuple:
        return _Slot, ()


def _nnsight() -> Any:
    """Import nnsight, or raise a DriftError saying how to install it."""
    try:
        import nnsight
    except ImportError:
        raise DriftError(
            "the nnsight backend needs nnsight: pip install 'polydrift[nnsight]' (or use --backend hf)"
        ) from None
    return nnsight


def wrap_model(model: torch.nn.Module) -> Any:
    """Return the cached ``nnsight.NNsight`` wrapper of ``model``, creating it on first use.

    The wrapper holds the model strongly, so a ``WeakKeyDictionary`` keyed by the model would never drop either; the
    wrapper is kept in a slot on the model instead, and lives exactly as long as the model does.

    Args:
        model: The loaded causal LM.

    Returns:
        The nnsight envoy mirroring ``model``'s module tree.
    """
    slot = model.__dict__.get(_ATTR)
    if slot is None or slot.envoy is None:
        slot = _Slot(_nnsight().NNsight(model))
        model.__dict__[_ATTR] = slot
    return slot.envoy


def _first(x: Any) -> torch.Tensor:
    return x[0] if isinstance(x, (tuple, list)) else x


def _site_value(block: Any, site: str, mid_norm: str) -> Any:
    """The live proxy of ``site`` for one block envoy, inside a trace."""
    if site == "resid_pre":
        args, kwargs = block.inputs
        return args[0] if args else kwargs["hidden_states"]
    if site == "resid_post":
        return _first(block.output)
    return block.get(mid_norm).input


class NNsightBackend:
    """Capture residual sites with an nnsight trace (same numbers as the ``hf`` backend)."""

    name = "nnsight"

    def run(self, lm, batch: dict[str, torch.Tensor], targets: list[tuple[str, int]], sink: Sink) -> None:
        """Capture ``targets`` for one batch; arguments as in :class:`drift.capture.backends.Backend`."""
        nnsight = _nnsight()
        wrapper = wrap_model(lm.model)
        ordered = sorted(targets, key=lambda t: execution_key(*t))
        layers = wrapper.get(lm.family.layers)
        mid_norm = lm.family.mid_norm
        with wrapper.trace(**batch, use_cache=False) as tracer:
            saved = nnsight.save([])
            for site, layer in ordered:
                saved.append(_site_value(layers[layer], site, mid_norm))
            tracer.stop()
        for (site, layer), hidden in zip(ordered, saved, strict=True):
            sink(site, layer, hidden)
