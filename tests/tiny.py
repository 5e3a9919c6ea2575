"""Tiny random models of several families, with a tokenizer trained locally: no network, no GPU."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import torch

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
GEMMA_STYLE = (
    "{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + message['role'] + '\n' + message['content'] "
    "+ '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>", "<|im_start|>", "<|im_end|>", "<start_of_turn>", "<end_of_turn>"]

FAMILY_CONFIGS = {
    "llama": ("LlamaConfig", {}),
    "qwen2": ("Qwen2Config", {}),
    "qwen3": ("Qwen3Config", {"head_dim": 8}),
    "mistral": ("MistralConfig", {}),
    "gemma2": ("Gemma2Config", {"head_dim": 8, "query_pre_attn_scalar": 8, "sliding_window": 16}),
    "gemma3_text": ("Gemma3TextConfig", {"head_dim": 8, "query_pre_attn_scalar": 8, "sliding_window": 16}),
    "olmo2": ("Olmo2Config", {}),
    "gpt2": ("GPT2Config", {}),
}


def _corpus() -> list[str]:
    root = Path(__file__).resolve().parents[1] / "drift" / "data" / "bundled" / "prompts"
    texts = []
    for f in sorted(root.glob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in f.read_text(encoding="utf-8").splitlines() if line]
    return texts + ["User: Assistant: hello world", "I cannot help with that. Sure, here is how."]


@lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_corpus(), trainer)
    return tok.to_str()


def make_tokenizer(template: str | None = CHATML):
    """A byte-level BPE tokenizer (vocab ~600) with ChatML-style specials and an optional chat template."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=SPECIALS[4:],
    )
    tok.chat_template = template
    return tok


def make_model(family: str, n_layers: int = 4, d_model: int = 32, seed: int = 0) -> torch.nn.Module:
    """A random causal LM of ``family`` with a tiny config."""
    import transformers

    cls_name, extra = FAMILY_CONFIGS[family]
    tok = make_tokenizer()
    common = dict(vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                  eos_token_id=tok.eos_token_id)
    if family == "gpt2":
        cfg = transformers.GPT2Config(n_layer=n_layers, n_embd=d_model, n_head=4, n_positions=256, **common)
    else:
        cfg = getattr(transformers, cls_name)(
            hidden_size=d_model, intermediate_size=2 * d_model, num_hidden_layers=n_layers, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, **common, **extra,
        )
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():  # larger weights than the default init, so layers differ visibly
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.15)
    return model.eval()


def save_tiny(family: str, folder: Path, template: str | None = CHATML, **kwargs) -> Path:
    """Write a tiny model and its tokenizer to ``folder`` (a local HF model directory) and return it."""
    model = make_model(family, **kwargs)
    tok = make_tokenizer(GEMMA_STYLE if family.startswith("gemma") and template == CHATML else template)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def logistic_problems(P: int, n: int, d: int, seed: int = 0, offset: float = 1.0):
    """P uncentred, unscaled logistic-regression problems (X (P, n, d), y (P, n)) with a signal in the first two
    features that grows with the problem index; ``offset`` scales the features' common offsets."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(P, n, d)) * rng.uniform(0.2, 3.0, size=d) + rng.normal(size=d) * offset
    y = rng.integers(0, 2, size=(P, n))
    X[:, :, :2] += (2 * y - 1)[..., None] * np.linspace(0.3, 1.5, P)[:, None, None]
    return X, y
