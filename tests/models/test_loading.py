"""Model loading from local directories, family specs, adapters, errors."""

import pytest
from tiny import make_model, make_tokenizer

from drift import DriftError
from drift.models import FAMILIES, load_model
from drift.models.families import family_for


def test_loads_each_family(tiny_dirs):
    for fam, path in tiny_dirs.items():
        lm = load_model(str(path), device="cpu", dtype="float32")
        assert lm.family.model_type == fam and lm.n_layers == 4 and lm.d_model == 32
        assert len(lm.weights_fingerprint()) == 64


def test_fingerprint_is_dtype_stable_and_weight_sensitive(tiny_llama):
    a = load_model(str(tiny_llama), device="cpu", dtype="float32")
    b = load_model(str(tiny_llama), device="cpu", dtype="bfloat16")
    assert a.weights_fingerprint() == b.weights_fingerprint()
    with __import__("torch").no_grad():
        a.model.model.layers[0].mlp.up_proj.weight.mul_(1.5)
    assert a.weights_fingerprint() != b.weights_fingerprint()


def test_unknown_family_lists_supported(tmp_path):
    import transformers

    cfg = transformers.OPTConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, ffn_dim=32,
                                 num_attention_heads=2, word_embed_proj_dim=16)
    with pytest.raises(DriftError, match=r"unsupported model family 'opt': supported are .*llama"):
        family_for(cfg)


def test_missing_directory_and_bad_dtype(tmp_path):
    with pytest.raises(DriftError, match="model directory not found"):
        load_model(str(tmp_path / "nothing"))
    with pytest.raises(DriftError, match="unknown dtype"):
        load_model("default", dtype="float8")
    with pytest.raises(DriftError, match="unknown device|CUDA is not available"):
        load_model("default", device="tpu")


def test_adapter_is_merged(tmp_path, tiny_llama):
    peft = pytest.importorskip("peft")
    import torch

    model = make_model("llama")
    cfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft.get_peft_model(model, cfg).save_pretrained(tmp_path / "adapter")
    base = load_model(str(tiny_llama), device="cpu", dtype="float32")
    tuned = load_model(str(tiny_llama), adapter=str(tmp_path / "adapter"), device="cpu", dtype="float32")
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert not torch.allclose(base.model(ids).logits, tuned.model(ids).logits)
    assert base.weights_fingerprint() != tuned.weights_fingerprint()
    with pytest.raises(DriftError, match="adapter directory not found"):
        load_model(str(tiny_llama), adapter=str(tmp_path / "none"))


def test_registry_covers_required_families():
    assert {"llama", "qwen2", "qwen3", "gemma2", "gemma3_text", "gemma3", "mistral", "gpt2"} <= set(FAMILIES)
    assert make_tokenizer().pad_token == "<pad>"
