"""Constants and small codecs of the on-disk layout (docs/store-spec.md, version 1.1)."""

from __future__ import annotations

import numpy as np

ENCODING_TYPE = "polydrift.activation-store"
ENCODING_VERSION = "1.1"  # 1.1 added the optional shard/rows dataset and merged_from attribute
READABLE_VERSIONS = ("1.0", "1.1")
SHARD_ROWS = "shard/rows"
PROMPT_COLUMNS = ("id", "group", "lang", "label", "category", "text", "source")
STORAGE_DTYPES = ("float32", "float16", "bfloat16")
FLOAT16_MAX = 65504.0


def processing_order(n_tokens: list[int]) -> list[int]:
    """The order rows are computed and stored in: decreasing token count, ties by prompt row."""
    return sorted(range(len(n_tokens)), key=lambda i: (-n_tokens[i], i))


def acts_path(site: str, layer: int) -> str:
    """HDF5 path of the fixed-position dataset for (site, layer)."""
    return f"acts/{site}/{layer}"


def ragged_path(site: str, layer: int) -> str:
    """HDF5 path of the all-position (ragged) dataset for (site, layer)."""
    return f"ragged/{site}/{layer}"


def encode_position(label: str | int) -> str:
    """Position label as stored: ``last``, ``mean`` or a negative offset written as text (``-3``)."""
    return str(label)


def decode_position(label: str) -> str | int:
    """Inverse of :func:`encode_position`."""
    return int(label) if label.lstrip("-").isdigit() else label


def to_storage(x: np.ndarray, dtype: str) -> np.ndarray:
    """Convert float32 activations to the storage representation (bfloat16 as its uint16 bit pattern).

    bfloat16 keeps the top 16 bits of each float32 after round-to-nearest-even, which is what torch does, so a
    model computed in bfloat16 is stored losslessly.
    """
    if dtype == "float32":
        return np.ascontiguousarray(x, dtype=np.float32)
    if dtype == "float16":
        return x.astype(np.float16)
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return (rounded >> np.uint32(16)).astype(np.uint16)


def from_storage(x: np.ndarray, dtype: str) -> np.ndarray:
    """Convert stored values back to float32."""
    if dtype == "bfloat16":
        return (x.astype(np.uint32) << np.uint32(16)).view(np.float32)
    return x.astype(np.float32, copy=False)


def h5_dtype(dtype: str) -> np.dtype:
    """The HDF5 element type used for a storage dtype."""
    return {"float32": np.dtype("f4"), "float16": np.dtype("f2"), "bfloat16": np.dtype("u2")}[dtype]
