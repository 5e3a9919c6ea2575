"""Interventions on tiny models: a planted refusal direction, weight orthogonalisation, patching, restoration."""

import numpy as np
import pytest
import torch

import drift
from drift import DriftError
from drift.causal import cross_lingual_ablation, evaluate_candidates, patch_scan, restore_with_direction
from drift.interventions import ablate_direction, add_direction, orthogonalize_weights
from drift.metrics.directions import fit_directions
from drift.models.refusal import refusal_token_ids
from drift.scoring import score_prompts


def _planted(path, seed=0):
    """A tiny model whose refusal-token logit reads a direction r that every token embedding carries."""
    lm = drift.load_model(str(path), device="cpu", dtype="float32")
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(lm.d_model, generator=g)
    r -= r.mean()  # orthogonal to the all-ones vector, so LayerNorm's centring keeps it
    r /= r.norm()
    orthogonalize_weights(lm, r)  # nothing writes r any more (also unties the head) ...
    with torch.no_grad():
        head = lm.model.get_output_embeddings()
        if head.weight.data_ptr() == lm.model.get_input_embeddings().weight.data_ptr():
            head.weight = torch.nn.Parameter(head.weight.detach().clone())
        for t in refusal_token_ids(lm.formatter, "en"):
            head.weight[t] = 8.0 * r * lm.model.get_submodule(lm.family.final_norm).weight.detach().reciprocal()
        lm.model.get_input_embeddings().weight += 5.0 * r  # ... except the embeddings, by exactly 5 r
    return lm, r.numpy()


@pytest.fixture(scope="module")
def prompts():
    return drift.load_prompts("builtin:prompts?lang=en")[90:110]


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen3"])
def test_ablation_lowers_and_addition_raises_refusal(family, tiny_dirs, prompts):
    lm, r = _planted(tiny_dirs[family])
    base = score_prompts(lm, prompts).refusal.mean()
    with ablate_direction(lm, r):
        ablated = score_prompts(lm, prompts).refusal.mean()
    with add_direction(lm, r, layer=1, coeff=4.0):
        added = score_prompts(lm, prompts).refusal.mean()
    assert ablated < base - 0.5 and added > base + 0.5
    assert score_prompts(lm, prompts).refusal.mean() == pytest.approx(base)  # hooks are removed


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen2"])
def test_orthogonalisation_equals_runtime_ablation(family, tiny_dirs, prompts):
    lm, r = _planted(tiny_dirs[family])
    batch = lm.tokenizer([lm.formatter.render(p.text) for p in prompts[:4]], add_special_tokens=False,
                         return_tensors="pt", padding=True)
    with torch.no_grad(), ablate_direction(lm, r):
        want = lm.model(**batch).logits
    orthogonalize_weights(lm, r)
    with torch.no_grad():
        got = lm.model(**batch).logits
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_orthogonalisation_refused_for_gemma2(tiny_dirs):
    lm = drift.load_model(str(tiny_dirs["gemma2"]), device="cpu", dtype="float32")
    with pytest.raises(DriftError, match="not exact for gemma2"):
        orthogonalize_weights(lm, np.ones(lm.d_model))


def test_candidates_and_cross_lingual(tiny_dirs, tmp_path):
    lm, r = _planted(tiny_dirs["llama"])
    prompts = drift.load_prompts("builtin:prompts?lang=en,de")[::10]
    cfg = drift.CaptureConfig(sites=("resid_pre",), positions=("last", "post_instruction"))
    store = drift.open_store(drift.extract(lm, prompts, tmp_path / "a.h5", cfg, progress=False))
    dirs = fit_directions(store)
    harmful, harmless = prompts.filter(labels=["harmful"]), prompts.filter(labels=["harmless"])
    cands = evaluate_candidates(lm, dirs, harmful, harmless, positions=[-2, -1], layers=[0, 2], progress=False)
    assert [(c.position, c.layer) for c in cands] == [(-2, 0), (-2, 2), (-1, 0), (-1, 2)]
    assert all(np.isfinite([c.refusal_score, c.steering_score, c.kl_div_score]).all() for c in cands)
    assert all(c.kl_div_score >= 0 for c in cands)
    # at layer 0 the template tokens' embeddings are identical for every prompt: a zero direction, a no-op ablation
    assert cands[0].kl_div_score == 0.0
    recs = cross_lingual_ablation(lm, dirs, harmful, "resid_pre", 2, -1)
    assert {(x["direction_lang"], x["eval_lang"]) for x in recs} >= {("none", "en"), ("de", "en"), ("en", "de")}


def test_patch_scan_restores_base_behaviour(tiny_dirs, prompts):
    base = drift.load_model(str(tiny_dirs["llama"]), device="cpu", dtype="float32")
    ft = drift.load_model(str(tiny_dirs["llama"]), device="cpu", dtype="float32")
    with torch.no_grad():  # "fine-tune": change block 2 only
        ft.model.model.layers[2].mlp.down_proj.weight.mul_(-3.0)
    recs = patch_scan(base, ft, prompts, site="resid_post", positions="all")
    pooled = {x["layer"]: x["value"] for x in recs if x["lang"] == "all"}
    assert pooled[-2] != pytest.approx(pooled[-1])
    assert pooled[2] == pytest.approx(pooled[-2], abs=1e-4)  # after the changed block: fully restored
    assert pooled[3] == pytest.approx(pooled[-2], abs=1e-4)
    assert pooled[1] == pytest.approx(pooled[-1], abs=1e-4)  # before it: patching changes nothing


def test_restore_with_direction(tiny_dirs, prompts):
    lm, r = _planted(tiny_dirs["llama"])
    recs = restore_with_direction(lm, r, layer=1, harmful=prompts, coeffs=(0, 1, 4))
    pooled = [x["value"] for x in recs if x["lang"] == "all"]
    assert pooled[0] < pooled[1] < pooled[2]
    assert pooled[0] == pytest.approx(score_prompts(lm, prompts).refusal.mean())


def test_save_orthogonalized_checkpoint(tiny_dirs, prompts, tmp_path):
    from drift.interventions import save_orthogonalized

    lm, r = _planted(tiny_dirs["llama"])
    before = lm.weights_fingerprint()
    with ablate_direction(lm, r):
        want = score_prompts(lm, prompts).refusal
    path = save_orthogonalized(lm, r, tmp_path / "ortho")
    assert lm.weights_fingerprint() == before  # the loaded model is untouched
    edited = drift.load_model(str(path), device="cpu", dtype="float32")
    np.testing.assert_allclose(score_prompts(edited, prompts).refusal, want, rtol=1e-4, atol=1e-4)
    store = drift.open_store(drift.extract(edited, prompts[:3], tmp_path / "o.h5", progress=False))
    assert store.run.method == "orthogonalized" and store.run.weights == edited.weights_fingerprint()
    with pytest.raises(DriftError, match="not empty"):
        save_orthogonalized(lm, r, path)


def test_interventions_are_recorded_in_provenance(tiny_dirs, prompts, tmp_path):
    lm, r = _planted(tiny_dirs["llama"])
    plain = drift.open_store(drift.extract(lm, prompts[:4], tmp_path / "p.h5", progress=False))
    with ablate_direction(lm, r, layers=[1, 2]):
        assert lm.interventions[-1]["kind"] == "ablate" and lm.interventions[-1]["layers"] == [1, 2]
        ablated = drift.open_store(drift.extract(lm, prompts[:4], tmp_path / "a.h5", progress=False))
    assert lm.interventions == []
    assert ablated.run.run_id != plain.run.run_id and ablated.run.run_id.startswith(plain.run.run_id)
    assert ablated.run.extra["interventions"][0]["vector_sha256"]
    assert not np.allclose(ablated.read("resid_post", 3), plain.read("resid_post", 3))


def test_hooks_apply_through_nnsight(tiny_dirs, prompts):
    nnsight = pytest.importorskip("nnsight")
    lm, r = _planted(tiny_dirs["llama"])
    batch = lm.tokenizer([lm.formatter.render(p.text) for p in prompts[:2]], add_special_tokens=False,
                         return_tensors="pt", padding=True)
    with torch.no_grad(), ablate_direction(lm, r):
        want = lm.model(**batch).logits
        envoy = nnsight.NNsight(lm.model)
        with envoy.trace(**batch):
            got = nnsight.save(envoy.output.logits)
    torch.testing.assert_close(got, want)
