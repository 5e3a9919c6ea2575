"""Difference-of-means directions: recovery of a planted direction, streaming = batch, storage round trip."""

import numpy as np
import pytest

import drift
from drift import DriftError
from drift.metrics.directions import MeanFitter, fit_directions, load_directions


def _planted(n=2000, d=64, p=3, seed=0):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=d)
    r /= np.linalg.norm(r)
    labels = np.tile(["harmful", "harmless"], n // 2)  # balanced across languages, so pooling is unconfounded
    langs = np.repeat(["en", "de"], n // 2)
    x = rng.normal(size=(n, p, d)) + 3.0 * (labels == "harmful")[:, None, None] * r
    x[langs == "de"] += 5.0  # a language offset shared by both labels cancels in the difference
    return x, langs, labels, r


def test_planted_direction_is_recovered():
    x, langs, labels, r = _planted()
    md = MeanFitter("resid_post", 3, ["last", -2, -1]).update(x, langs, labels).result()
    for lang in ("en", "de", "all"):
        for pos in ("last", -2, -1):
            assert md.direction(pos, lang, unit=True) @ r > 0.95
    assert md.langs == ["de", "en", "all"]


def test_streaming_equals_batch():
    x, langs, labels, _ = _planted()
    whole = MeanFitter("s", 0, ["last", -2, -1]).update(x, langs, labels).result()
    for chunk in (1, 7, 128):
        f = MeanFitter("s", 0, ["last", -2, -1])
        for i in range(0, len(x), chunk):
            f.update(x[i : i + chunk], langs[i : i + chunk], labels[i : i + chunk])
        part = f.result()
        assert part.counts == whole.counts
        for key in whole.means:
            np.testing.assert_allclose(part.means[key], whole.means[key], rtol=1e-12, atol=1e-12)


def test_fit_directions_from_store(tiny_llama, tmp_path):
    lm = drift.load_model(str(tiny_llama), device="cpu", dtype="float32")
    prompts = drift.load_prompts("builtin:prompts?lang=en,de")[::5]
    cfg = drift.CaptureConfig(sites=("resid_pre", "resid_post"), positions=("last", "post_instruction"))
    store = drift.open_store(drift.extract(lm, prompts, tmp_path / "a.h5", cfg, progress=False))
    ds = fit_directions(store, chunk_size=7)
    x = store.read("resid_pre", 2).astype(np.float64)
    df = store.prompts
    want = x[(df.label == "harmful").to_numpy()].mean(0) - x[(df.label == "harmless").to_numpy()].mean(0)
    np.testing.assert_allclose(ds.direction("resid_pre", 2, -3), want[store.positions.index(-3)], rtol=1e-10)
    de = (df.lang == "de").to_numpy()
    want_de = x[de & (df.label == "harmful").to_numpy()].mean(0) - x[de & (df.label == "harmless").to_numpy()].mean(0)
    np.testing.assert_allclose(ds.direction("resid_pre", 2, "last", lang="de"), want_de[0], rtol=1e-10)
    langs, cos = ds.cosine_matrix("resid_pre", 2)
    assert langs == ["de", "en", "all"] and np.allclose(np.diag(cos), 1) and np.allclose(cos, cos.T)
    path = ds.save(tmp_path / "dirs.npz")
    again = load_directions(path)
    np.testing.assert_array_equal(again.direction("resid_post", 3, -1), ds.direction("resid_post", 3, -1))
    assert again.meta["run"]["run_id"] == store.run.run_id and again.positions == ds.positions
    with pytest.raises(DriftError, match="lacks harmful or harmless"):
        ds.direction("resid_pre", 2, "last", lang="zh")


def test_needs_both_labels(tiny_llama, tmp_path):
    lm = drift.load_model(str(tiny_llama), device="cpu", dtype="float32")
    prompts = drift.load_prompts("builtin:prompts?lang=en&label=harmful")[:4]
    store = drift.open_store(drift.extract(lm, prompts, tmp_path / "h.h5", progress=False))
    with pytest.raises(DriftError, match="needs both harmful and harmless"):
        fit_directions(store)
