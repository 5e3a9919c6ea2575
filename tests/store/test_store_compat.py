"""Stores written by layout 1.0 stay readable: committed fixtures, decoded by the reader and by the spec's rules."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from drift import open_store

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
IDS = ["harmful-099-en", "harmful-100-en", "harmless-001-en", "harmless-002-en"]
# Sums recorded when the fixtures were written (resid_post per layer; all tokens of resid_pre layer 1).
EXPECTED = {
    "float32": ([7.5929122236557305, 108.82236143015325], -46.41646263631992),
    "bfloat16": ([7.577018737792969, 108.81888961791992], -46.42391014099121),
}


def _decode_by_spec(ds: h5py.Dataset) -> np.ndarray:
    raw = ds[()]
    if ds.attrs["dtype"] == "bfloat16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float32)


@pytest.mark.parametrize("dtype", sorted(EXPECTED))
def test_v1_fixture_reads(dtype):
    path = FIXTURES / f"store-v1.0-{dtype}.h5"
    post_sums, ragged_sum = EXPECTED[dtype]
    with open_store(path) as s:
        assert s.complete and s.storage_dtype == dtype and list(s.prompts["id"]) == IDS
        assert s.sites == ["resid_pre", "resid_post"] and s.layers == [0, 1]
        assert s.positions[0] == "last" and s.positions[-1] == -1
        for layer, want in zip(s.layers, post_sums):
            got = s.read("resid_post", layer)
            assert float(got.astype(np.float64).sum()) == pytest.approx(want, rel=1e-12)
        assert float(np.concatenate(s.read_ragged("resid_pre", 1)).astype(np.float64).sum()) == pytest.approx(
            ragged_sum, rel=1e-12
        )
        with h5py.File(path, "r") as f:  # the spec alone is enough to read the file
            order = f["order"][()]
            by_spec = _decode_by_spec(f["acts/resid_post/1"])
            unsorted = np.empty_like(by_spec)
            unsorted[order] = by_spec
            np.testing.assert_array_equal(unsorted, s.read("resid_post", 1))
