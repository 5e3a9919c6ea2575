"""The ``transformer_lens`` capture backend: TransformerLens 4.x ``TransformerBridge`` over a copy of the HF model.

transformer-lens is imported only when this backend runs (with wandb disabled). ``boot_transformers`` rewires the
HF model it is given, so the bridge gets its own deep copy, built once per model and cached. No weight processing
is applied (the bridge keeps raw HF weights), and the batch's attention mask and position ids are passed through, so
activations at real tokens equal the ``hf`` backend's.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
import weakref
from typing import TYPE_CHECKING, Any

import torch

from drift.capture.sites import execution_key
from drift.errors import DriftError

if TYPE_CHECKING:
    from drift.capture.backends import Sink

_BRIDGES: weakref.WeakKeyDictionary[torch.nn.Module, Any] = weakref.WeakKeyDictionary()


def _bridge_class() -> Any:
    """Import ``TransformerBridge`` with wandb disabled, undoing the import's global logging and warning changes."""
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.environ.setdefault("WANDB_SILENT", "true")
    hf_logger = logging.getLogger("transformers")
    level = hf_logger.level
    try:
        with warnings.catch_warnings():  # transformer_lens installs warning filters on import
            from transformer_lens.model_bridge import TransformerBridge
    except ImportError:
        raise DriftError(
            "the transformer_lens backend needs transformer-lens 4.x: pip install 'polydrift[lens]' "
            "(or use --backend hf)"
        ) from None
    finally:
        hf_logger.setLevel(level)  # ... and silences the transformers logger
    return TransformerBridge


def hook_name(site: str, layer: int) -> str:
    """Return the bridge's hook name for a residual site, e.g. ``blocks.3.hook_resid_mid``."""
    return f"blocks.{layer}.hook_{site}"


def boot_bridge(lm) -> Any:
    """Return the cached ``TransformerBridge`` for ``lm.model``, booting it over a deep copy on first use.

    Args:
        lm: A :class:`~drift.models.loading.LoadedModel`.

    Returns:
        The bridge, in eval mode, with unprocessed (raw HF) weights.

    Raises:
        DriftError: If TransformerLens cannot bridge this model family.
    """
    bridge = _BRIDGES.get(lm.model)
    if bridge is not None:
        return bridge
    bridge_cls = _bridge_class()
    try:
        # Normal (not inference) tensors, so the bridge also works outside the inference_mode extract runs in.
        with torch.inference_mode(False):
            bridge = bridge_cls.boot_transformers(
                lm.source,  # where the weights came from: a local directory needs no hub access
                hf_model=copy.deepcopy(lm.model),
                tokenizer=copy.deepcopy(lm.tokenizer),
                device=lm.device,
                dtype=lm.dtype,
            )
    except Exception as e:  # noqa: BLE001 - any failure to bridge is a user-facing "use hf" error
        raise DriftError(
            f"TransformerLens cannot bridge model family {lm.family.model_type!r} ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}): use --backend hf"
        ) from None
    bridge.eval()
    _BRIDGES[lm.model] = bridge
    return bridge


class TransformerLensBackend:
    """Capture residual sites with TransformerLens ``run_with_cache`` (same numbers as the ``hf`` backend)."""

    name = "transformer_lens"

    def run(self, lm, batch: dict[str, torch.Tensor], targets: list[tuple[str, int]], sink: Sink) -> None:
        """Capture ``targets`` for one batch; arguments as in :class:`drift.capture.backends.Backend`."""
        bridge = boot_bridge(lm)
        ordered = sorted(targets, key=lambda t: execution_key(*t))
        names = [hook_name(site, layer) for site, layer in ordered]
        last_layer = ordered[-1][1]
        stop = last_layer + 1 if last_layer + 1 < lm.n_layers else None
        _, cache = bridge.run_with_cache(
            batch["input_ids"],
            return_type=None,
            names_filter=names,
            stop_at_layer=stop,
            attention_mask=batch["attention_mask"],
            position_ids=batch["position_ids"],
            use_cache=False,
        )
        for (site, layer), name in zip(ordered, names, strict=True):
            if name not in cache:
                raise DriftError(f"TransformerLens did not provide {name} for {lm.family.model_type}: use --backend hf")
            sink(site, layer, cache[name])
