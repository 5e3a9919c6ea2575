"""polydrift: how fine-tuning moves the safety behaviour of language models across languages.

The public API is small and imported lazily, so ``import drift`` stays fast and has no side effects::

    import drift
    lm = drift.load_model("default")
    prompts = drift.load_prompts("builtin:prompts?lang=en,de")
    drift.extract(lm, prompts, "acts.h5", drift.CaptureConfig(positions=("last", "post_instruction")))
    store = drift.open_store("acts.h5")
"""

from __future__ import annotations

import importlib
from typing import Any

from drift._version import __version__
from drift.errors import DriftError

_LAZY = {
    "ActivationStore": "drift.store",
    "open_store": "drift.store",
    "CaptureConfig": "drift.capture",
    "extract": "drift.capture",
    "ChatOptions": "drift.models",
    "LoadedModel": "drift.models",
    "load_model": "drift.models",
    "Prompt": "drift.data",
    "PromptSet": "drift.data",
    "load_prompts": "drift.data",
    "load_polyrefuse": "drift.data",
    "load_table": "drift.data",
    "RunManifest": "drift.runs",
    "linear_cka": "drift.metrics",
    "debiased_cka": "drift.metrics",
    "rbf_cka": "drift.metrics",
    "fit_directions": "drift.metrics",
}

__all__ = ["DriftError", "__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'drift' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
