"""The hf capture backend against output_hidden_states, across families, batch sizes and padding sides."""

import numpy as np
import pytest
import torch
from conftest import FAMILIES

import drift
from drift import CaptureConfig, DriftError, extract, load_model, open_store
from drift.capture import encode_prompts

ALL_SITES = ("resid_pre", "resid_mid", "resid_post")


@pytest.fixture(scope="module")
def prompts():
    return drift.load_prompts("builtin:prompts?lang=en")[:9]


def _reference(lm, prompts):
    """Per prompt, unbatched: hidden_states from HF, plus resid_mid read with a plain hook."""
    from drift.capture.sites import hook_target

    out = []
    for e in encode_prompts(lm, prompts):
        mids = {}
        handles = []
        for layer in range(lm.n_layers):
            module, _ = hook_target(lm.model, lm.family, "resid_mid", layer)
            handles.append(module.register_forward_pre_hook(lambda m, a, layer=layer: mids.__setitem__(layer, a[0])))
        with torch.no_grad():
            hs = lm.model(torch.tensor([e.input_ids]), output_hidden_states=True).hidden_states
        for h in handles:
            h.remove()
        out.append((e, hs, mids))
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_matches_output_hidden_states(family, tiny_dirs, prompts, tmp_path):
    lm = load_model(str(tiny_dirs[family]), device="cpu", dtype="float32")
    cfg = CaptureConfig(sites=ALL_SITES, positions=("last", "post_instruction", "mean", "all"), batch_size=4)
    store = open_store(extract(lm, prompts, tmp_path / "a.h5", cfg, progress=False))
    ref = _reference(lm, prompts)
    for layer in range(lm.n_layers):
        pre = store.read("resid_pre", layer)
        post = store.read("resid_post", layer)
        mid = store.read("resid_mid", layer)
        ragged = store.read_ragged("resid_post", layer)
        for row, (e, hs, mids) in enumerate(ref):
            n_post = e.n_post
            want_pre = hs[layer][0].numpy()
            np.testing.assert_allclose(pre[row, 0], want_pre[-1], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(pre[row, 1 : 1 + n_post], want_pre[-n_post:], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(mid[row, 0], mids[layer][0, -1].numpy(), rtol=1e-5, atol=1e-5)
            if layer < lm.n_layers - 1:  # the last hidden_states entry is after the final norm
                want_post = hs[layer + 1][0].numpy()
                np.testing.assert_allclose(post[row, 0], want_post[-1], rtol=1e-5, atol=1e-5)
                np.testing.assert_allclose(ragged[row], want_post, rtol=1e-5, atol=1e-5)
                span = want_post[e.instr_start : e.instr_end].mean(0)
                np.testing.assert_allclose(post[row, -1], span, rtol=1e-5, atol=1e-5)
    # resid_post of the last block, normed, is what HF reports as the final hidden state
    norm = lm.model.get_submodule(lm.family.final_norm)
    with torch.no_grad():
        normed = norm(torch.from_numpy(store.read("resid_post", lm.n_layers - 1, positions=["last"])))
    for row, (e, hs, _) in enumerate(ref):
        np.testing.assert_allclose(normed[row, 0].numpy(), hs[-1][0, -1].numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma2"])
def test_batch_size_and_padding_side_invariance(family, tiny_dirs, prompts, tmp_path):
    lm = load_model(str(tiny_dirs[family]), device="cpu", dtype="float32")
    results = {}
    for bs, side in [(1, "left"), (7, "left"), (7, "right")]:
        cfg = CaptureConfig(sites=ALL_SITES, positions=("last", "post_instruction", "mean"), batch_size=bs,
                            padding_side=side)
        store = open_store(extract(lm, prompts, tmp_path / f"{bs}{side}.h5", cfg, progress=False))
        results[(bs, side)] = np.stack([store.read(s, l) for s in ALL_SITES for l in store.layers])
    ref = results[(1, "left")]
    for key, value in results.items():
        rel = np.abs(value - ref).max() / np.abs(ref).max()
        assert rel < 1e-5, (key, rel)


def test_storage_dtypes(tiny_llama, prompts, tmp_path):
    lm = load_model(str(tiny_llama), device="cpu", dtype="bfloat16")
    f32 = open_store(extract(lm, prompts, tmp_path / "a.h5", CaptureConfig(layers=(1,)), progress=False))
    bf16 = open_store(extract(lm, prompts, tmp_path / "b.h5", CaptureConfig(layers=(1,), storage_dtype="bfloat16"),
                              progress=False))
    # a bfloat16 model stored as bfloat16 loses nothing
    np.testing.assert_array_equal(f32.read("resid_post", 1), bf16.read("resid_post", 1))
    assert bf16._h5["acts/resid_post/1"].dtype == np.uint16 and bf16.storage_dtype == "bfloat16"
    lm32 = load_model(str(tiny_llama), device="cpu", dtype="float32")
    f16 = open_store(extract(lm32, prompts, tmp_path / "c.h5", CaptureConfig(layers=(1,), storage_dtype="float16"),
                             progress=False))
    exact = open_store(extract(lm32, prompts, tmp_path / "d.h5", CaptureConfig(layers=(1,)), progress=False))
    np.testing.assert_allclose(f16.read("resid_post", 1), exact.read("resid_post", 1), rtol=1e-3, atol=1e-3)


def test_float16_overflow_is_refused(tiny_llama, prompts, tmp_path):
    lm = load_model(str(tiny_llama), device="cpu", dtype="float32")
    with torch.no_grad():
        lm.model.model.layers[0].mlp.down_proj.weight.mul_(1e5)
    out = tmp_path / "x.h5"
    with pytest.raises(DriftError, match="beyond float16's range"):
        extract(lm, prompts, out, CaptureConfig(layers=(0,), storage_dtype="float16"), progress=False)
    assert not out.exists()


def test_bad_config_is_refused(tiny_llama, prompts, tmp_path):
    lm = load_model(str(tiny_llama), device="cpu", dtype="float32")
    with pytest.raises(DriftError, match="unknown site"):
        CaptureConfig(sites=("resid_foo",))
    with pytest.raises(DriftError, match="unknown position"):
        CaptureConfig(positions=("first",))
    with pytest.raises(DriftError, match="layer 7 does not exist"):
        extract(lm, prompts, tmp_path / "x.h5", CaptureConfig(layers=(7,)), progress=False)
    with pytest.raises(DriftError, match="unknown backend"):
        extract(lm, prompts, tmp_path / "x.h5", CaptureConfig(backend="jax"), progress=False)


def test_prompt_longer_than_context(tiny_llama, tmp_path):
    lm = load_model(str(tiny_llama), device="cpu", dtype="float32")
    long = drift.PromptSet([drift.Prompt("long", "long", "en", "harmless", "", "word " * 400, "t")])
    with pytest.raises(DriftError, match="prompt 'long' has .* tokens, more than the model's context of 256"):
        extract(lm, long, tmp_path / "x.h5", progress=False)


def test_early_stop_skips_later_layers(tiny_llama, prompts, tmp_path):
    lm = load_model(str(tiny_llama), device="cpu", dtype="float32")
    calls = []
    handle = lm.model.model.layers[3].register_forward_hook(lambda *a: calls.append(1))
    extract(lm, prompts, tmp_path / "x.h5", CaptureConfig(layers=(0, 1)), progress=False)
    handle.remove()
    assert calls == []
