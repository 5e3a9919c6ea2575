"""Shared fixtures: tiny random models saved as local model directories, and the reference-data folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny import FAMILY_CONFIGS, save_tiny  # noqa: E402

FAMILIES = sorted(FAMILY_CONFIGS)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    """One saved tiny model directory per family."""
    root = tmp_path_factory.mktemp("tiny")
    return {fam: save_tiny(fam, root / fam) for fam in FAMILIES}


@pytest.fixture(scope="session")
def tiny_llama(tiny_dirs) -> Path:
    """The tiny Llama model directory."""
    return tiny_dirs["llama"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Keep artifacts of each test out of the project cache, except the default model's copy."""
    monkeypatch.setenv("DRIFT_TEST_TMP", str(tmp_path))


@pytest.fixture(scope="session")
def refdata() -> Path:
    """The external reference-data folder, or skip when it is absent."""
    from drift.paths import refdata_dir

    path = refdata_dir()
    if not path.is_dir():
        pytest.skip(f"reference data not found at {path} (set POLYDRIFT_REFDATA)")
    return path


@pytest.fixture(scope="session")
def demo_study(tmp_path_factory):
    """The short embedded demo on the real default model, run once per session and shared by the tests that read
    it (``tests/test_demo.py`` and the DPO alignment test). ``POLYDRIFT_SKIP_DEMO=1`` skips them for quick local runs;
    CI runs them."""
    import os

    if os.environ.get("POLYDRIFT_SKIP_DEMO") == "1":
        pytest.skip("POLYDRIFT_SKIP_DEMO=1")
    from drift.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    report = run_demo(out, device="cpu", log=lines.append)
    return out, report, lines
