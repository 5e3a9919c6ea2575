"""Default locations: the artifact cache and the external reference data."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    """Return the artifact cache folder: ``$DRIFT_CACHE`` or ``cache/`` beside the package."""
    env = os.environ.get("DRIFT_CACHE")
    return Path(env).expanduser() if env else REPO_ROOT / "cache"


def refdata_dir() -> Path:
    """Return the external reference-data folder: ``$POLYDRIFT_REFDATA`` or ``../shared/data``."""
    env = os.environ.get("POLYDRIFT_REFDATA")
    return Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "data"
