"""Fixtures of the scale tests: small tiny models (2 layers) and a whole-file view of a store for comparisons."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from tiny import save_tiny

from drift.data import PromptSet, load_prompts

# Attributes that legitimately differ between a single run and a merge: when the file was started, what it merged.
VOLATILE = ("created", "merged_from")


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """One torch thread, as in a Ray worker: much faster for tiny models on a busy machine; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def small_model(tmp_path_factory):
    """``small_model(seed)``: a tiny random Llama (2 layers, d_model 32) per seed, saved once per session."""
    root = tmp_path_factory.mktemp("small-models")

    def make(seed: int) -> Path:
        folder = root / f"ckpt{seed}"
        return folder if folder.is_dir() else save_tiny("llama", folder, n_layers=2, d_model=32, seed=seed)

    return make


@pytest.fixture(scope="session")
def scale_prompts() -> PromptSet:
    """20 prompts in 10 groups (each in en and de; harmful and harmless)."""
    full = load_prompts("builtin:prompts?lang=en,de&category=fraud,cooking,travel")
    return full.filter(groups=full.groups[::3])


def store_content(path: Path) -> dict:
    """Every attribute and dataset of a store (values, dtype, chunking, attributes), minus the volatile attributes."""
    out: dict = {}
    with h5py.File(path, "r") as f:
        out["/attrs"] = {k: _plain(v) for k, v in f.attrs.items() if k not in VOLATILE}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = (obj[()], obj.dtype.str, obj.chunks, {k: _plain(v) for k, v in obj.attrs.items()})

        f.visititems(visit)
    return out


def _plain(v):
    return v.tolist() if isinstance(v, np.ndarray) else v


def assert_same_store(a: Path, b: Path) -> None:
    """Assert two stores hold the same content: bit-identical arrays, same layout, same attributes."""
    x, y = store_content(a), store_content(b)
    assert sorted(x) == sorted(y)
    assert x["/attrs"] == y["/attrs"]
    for key in x:
        if key == "/attrs":
            continue
        (vx, *meta_x), (vy, *meta_y) = x[key], y[key]
        assert meta_x == meta_y, key
        assert vx.dtype == vy.dtype and np.array_equal(vx, vy), key
