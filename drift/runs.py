"""Run manifests: the identity of one model state, which every artifact names by ``run_id``."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from drift.errors import DriftError

MANIFEST_NAME = "polydrift-run.json"


@dataclass(frozen=True)
class RunManifest:
    """One model state (see ../shared/DESIGN.md, "Records and identities").

    Attributes:
        run_id: Stable id derived from the provenance.
        model: Base model id.
        checkpoint: ``base`` for the untouched model, else the adapter/merged-weights path.
        method: ``base``, ``sft``, ``dpo``, ``adapter`` (an adapter of unknown origin), ...
        ft_lang: Fine-tuning language(s), comma-separated, or empty.
        seed: Training seed, or None.
        epochs: Training epochs, or None.
        weights: Content fingerprint of the weights the run was captured with.
        extra: Anything else the producing stage recorded (hyperparameters, data hash, ...).
    """

    run_id: str
    model: str
    checkpoint: str = "base"
    method: str = "base"
    ft_lang: str = ""
    seed: int | None = None
    epochs: float | None = None
    weights: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Return the manifest as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RunManifest:
        """Build a manifest from a dict, ignoring unknown keys."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def make_run_id(model: str, weights: str, method: str = "base") -> str:
    """A readable, stable run id: the model's short name, the method and a hash of the weights."""
    short = re.sub(r"[^A-Za-z0-9.]+", "-", model.rstrip("/").split("/")[-1]).strip("-").lower() or "model"
    digest = hashlib.sha256(f"{model}\n{weights}".encode()).hexdigest()[:10]
    return f"{short}-{method}-{digest}"


def read_manifest(folder: str | Path) -> RunManifest | None:
    """Read ``polydrift-run.json`` from a checkpoint folder, or return None when there is none."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return RunManifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as e:
        raise DriftError(f"run manifest {path} is unreadable ({e}): fix or delete it") from None


def manifest_for(lm) -> RunManifest:
    """Return the run manifest of a loaded model: its checkpoint's manifest if it has one, else a derived one.

    Active runtime interventions (``lm.interventions``) make a different model state: they are recorded in ``extra``
    and change the ``run_id``.
    """
    manifest = _checkpoint_manifest(lm)
    if not lm.interventions:
        return manifest
    tag = hashlib.sha256(json.dumps(lm.interventions, sort_keys=True).encode()).hexdigest()[:10]
    return RunManifest.from_dict({**manifest.to_dict(), "run_id": f"{manifest.run_id}-iv{tag}",
                                  "extra": {**manifest.extra, "interventions": list(lm.interventions)}})


def _checkpoint_manifest(lm) -> RunManifest:
    weights = lm.weights_fingerprint()
    for folder in (lm.adapter, lm.source):
        found = read_manifest(folder) if folder else None
        if found is not None:
            return RunManifest.from_dict({**found.to_dict(), "weights": weights})
    if lm.adapter is None:
        return RunManifest(make_run_id(lm.model_id, weights), lm.model_id, weights=weights)
    return RunManifest(
        make_run_id(lm.model_id, weights, "adapter"),
        lm.model_id,
        checkpoint=str(Path(lm.adapter).resolve()),
        method="adapter",
        weights=weights,
    )
