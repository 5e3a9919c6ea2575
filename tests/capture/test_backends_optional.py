"""The optional nnsight and transformer_lens backends give the hf backend's numbers, family by family.

Stores are compared at every site, layer and fixed position, on left-padded batches of prompts of different lengths.
Each optional package is skipped when it is not installed. Every family is tested with both backends: the
TransformerLens bridge boots in well under a second per tiny model.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import FAMILIES

import drift
from drift import CaptureConfig, extract, load_model, open_store
from drift.capture.backends import get_backend

SITES = ("resid_pre", "resid_mid", "resid_post")
POSITIONS = ("last", "post_instruction", "mean")
OPTIONAL = {"nnsight": "nnsight", "transformer_lens": "transformer_lens"}  # backend -> package


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine their spinning made this file 5x
    slower (about 10 s with one thread, 55 s with two)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def prompts():
    return drift.load_prompts("builtin:prompts?lang=en")[:7]


@pytest.fixture(scope="module")
def models(tiny_dirs):
    """One loaded model per family, shared by both backends (as a user would)."""
    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = load_model(str(tiny_dirs[family]), device="cpu", dtype="float32")
        return cache[family]

    return get


@pytest.fixture(scope="module")
def hf_stores(models, prompts, tmp_path_factory):
    """The hf backend's store per family, extracted once."""
    cache = {}

    def get(family, cfg):
        key = (family, cfg.sites, cfg.layers)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"hf-{family}") / "hf.h5"
            cache[key] = extract(models(family), prompts, out, cfg, progress=False)
        return cache[key]

    return get


def _assert_same_store(got_path, want_path):
    with open_store(got_path) as got, open_store(want_path) as want:
        assert got.sites == want.sites and got.layers == want.layers and got.positions == want.positions
        assert got.provenance["capture"]["backend"] != want.provenance["capture"]["backend"]
        for site in want.sites:
            for layer in want.layers:
                ref = want.read(site, layer)
                scale = float(np.abs(ref).max())
                np.testing.assert_allclose(
                    got.read(site, layer), ref, rtol=1e-5, atol=1e-5 * scale, err_msg=f"{site} layer {layer}"
                )


def _config(backend, **kwargs):
    return CaptureConfig(backend=backend, sites=SITES, positions=POSITIONS, batch_size=3, **kwargs)


@pytest.mark.parametrize("backend", sorted(OPTIONAL))
@pytest.mark.parametrize("family", FAMILIES)
def test_matches_hf_backend(family, backend, models, prompts, hf_stores, tmp_path):
    pytest.importorskip(OPTIONAL[backend])
    lm = models(family)
    ids = [len(lm.formatter.encode(p.text).input_ids) for p in prompts]
    assert len(set(ids)) > 1, "prompts of one length would not exercise left padding"
    got = extract(lm, prompts, tmp_path / f"{backend}.h5", _config(backend), progress=False)
    _assert_same_store(got, hf_stores(family, _config("hf")))


@pytest.mark.parametrize("backend", sorted(OPTIONAL))
@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_stops_early_on_a_layer_subset(family, backend, models, prompts, hf_stores, tmp_path):
    """A subset of layers exercises the early stop (nnsight tracer.stop, TransformerLens stop_at_layer)."""
    pytest.importorskip(OPTIONAL[backend])
    sub = dict(sites=("resid_mid",), layers=(0, 2))
    cfg = CaptureConfig(backend=backend, positions=POSITIONS, batch_size=3, **sub)
    got = extract(models(family), prompts, tmp_path / f"{backend}.h5", cfg, progress=False)
    _assert_same_store(got, hf_stores(family, CaptureConfig(positions=POSITIONS, batch_size=3, **sub)))


def test_nnsight_wrapper_is_cached_and_freed(tiny_dirs):
    pytest.importorskip("nnsight")
    import gc
    import weakref

    from drift.capture.nnsight_backend import wrap_model

    lm = load_model(str(tiny_dirs["llama"]), device="cpu", dtype="float32")
    assert wrap_model(lm.model) is wrap_model(lm.model)
    ref = weakref.ref(lm.model)
    del lm
    gc.collect()
    assert ref() is None, "the cached nnsight wrapper keeps the model alive"


def test_lens_bridge_leaves_the_model_alone(tiny_dirs, prompts):
    pytest.importorskip("transformer_lens")
    lm = load_model(str(tiny_dirs["gpt2"]), device="cpu", dtype="float32")
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    attn, side = lm.model.config._attn_implementation, lm.tokenizer.padding_side
    batch = {k: v for k, v in lm.tokenizer([p.text for p in prompts[:2]], return_tensors="pt", padding=True).items()}
    batch["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        get_backend("transformer_lens").run(lm, batch, [("resid_post", 1)], lambda *a: None)
    assert type(lm.model.transformer.h[0]).__name__ == "GPT2Block"
    assert lm.model.config._attn_implementation == attn and lm.tokenizer.padding_side == side
    assert all(torch.equal(before[k], v) for k, v in lm.model.state_dict().items())


def test_importing_drift_imports_neither_package():
    code = (
        "import sys, drift, drift.capture, drift.capture.nnsight_backend, drift.capture.lens_backend; "
        "bad = [m for m in ('nnsight', 'transformer_lens', 'wandb') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_lens_unsupported_family_is_a_drift_error(tiny_dirs, monkeypatch):
    pytest.importorskip("transformer_lens")
    from drift.capture.lens_backend import _bridge_class, boot_bridge

    def refuse(*args, **kwargs):
        raise NotImplementedError("no adapter\nsecond line")

    monkeypatch.setattr(_bridge_class(), "boot_transformers", refuse)
    lm = load_model(str(tiny_dirs["qwen2"]), device="cpu", dtype="float32")
    with pytest.raises(drift.DriftError, match=r"'qwen2'.*no adapter.*--backend hf") as info:
        boot_bridge(lm)
    assert "\n" not in str(info.value)
