"""Cosine drift statistics and weight-space drift."""

import numpy as np
import pytest
import torch
from tiny import make_model

from drift import DriftError
from drift.metrics.cosine import (
    CosineDriftFitter,
    projection_shift,
    random_cosine_floor,
    random_projection_shift,
    summarise,
)
from drift.metrics.weights import full_weight_drift, lora_weight_drift


def test_cosine_fitter_streaming_equals_batch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16))
    y = x + 0.3 * rng.normal(size=x.shape)
    whole = CosineDriftFitter().update(x, y).result()
    f = CosineDriftFitter()
    for i in range(0, 300, 7):
        f.update(x[i : i + 7], y[i : i + 7])
    assert f.result() == whole
    cos = (x * y).sum(1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
    assert whole["cosine"].mean == pytest.approx(cos.mean()) and whole["cosine"].ci_low < cos.mean()
    assert CosineDriftFitter().update(x, 2 * x).result()["rel_norm_change"].mean == pytest.approx(1.0)


def test_projection_shift_and_noise_floor():
    rng = np.random.default_rng(1)
    d = 64
    r = np.zeros(d)
    r[3] = 1.0
    x = rng.normal(size=(500, d))
    y = x + 2.0 * r  # a shift along r only
    s = projection_shift(x, y, r)
    assert s.mean == pytest.approx(2.0) and s.n == 500
    floor = np.quantile(random_projection_shift(x, y), 0.95)
    assert floor < 2.0 * 0.5  # a random direction sees only a fraction of the shift
    assert 0.1 < random_cosine_floor(64) < 0.4
    assert np.isnan(summarise(np.array([np.nan])).mean)


def test_full_weight_drift():
    a, b = make_model("llama").state_dict(), make_model("llama").state_dict()
    b["model.layers.2.mlp.down_proj.weight"] = b["model.layers.2.mlp.down_proj.weight"] + 1.0
    recs = full_weight_drift(a, b)
    changed = [r for r in recs if r["value"] > 0 and r["metric"] == "delta_fro"]
    assert [(r["layer"], r["module"]) for r in changed] == [(2, "model.layers.2.mlp.down_proj.weight")]
    assert changed[0]["value"] == pytest.approx(np.sqrt(b["model.layers.2.mlp.down_proj.weight"].numel()))
    with pytest.raises(DriftError, match="share no weight matrices"):
        full_weight_drift(a, {})


def test_lora_weight_drift_matches_merged_change(tmp_path):
    peft = pytest.importorskip("peft")
    model = make_model("llama")
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"], init_lora_weights=False)
    pm = peft.get_peft_model(model, cfg)
    pm.save_pretrained(tmp_path / "ad")
    merged = pm.merge_and_unload().state_dict()
    from_adapter = {r["module"]: r["value"] for r in lora_weight_drift(tmp_path / "ad", base_state)
                    if r["metric"] == "delta_fro"}
    from_merge = {r["module"]: r["value"] for r in full_weight_drift(base_state, merged)
                  if r["metric"] == "delta_fro" and r["value"] > 0}
    assert from_adapter.keys() == from_merge.keys() and len(from_adapter) == 8
    for k in from_adapter:
        assert from_adapter[k] == pytest.approx(from_merge[k], rel=1e-4)
    with pytest.raises(DriftError, match="not a PEFT LoRA adapter"):
        lora_weight_drift(tmp_path)
    assert torch.is_tensor(merged["model.layers.0.self_attn.q_proj.weight"])
