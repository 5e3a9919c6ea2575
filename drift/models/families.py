"""Model families as data: where the decoder layers and norms are, keyed by ``config.model_type``.

Only what is architectural lives here. What belongs to the tokenizer (chat template, post-instruction positions,
refusal tokens) is found at runtime from the tokenizer itself (see :mod:`drift.models.chat`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from drift.errors import DriftError


@dataclass(frozen=True)
class FamilySpec:
    """Architecture facts of one model family.

    Attributes:
        model_type: The ``config.model_type`` this spec covers.
        layers: Dotted path from the causal-LM module to the list of decoder blocks.
        final_norm: Dotted path to the norm applied after the last block.
        mid_norm: Name, inside a block, of the module whose *input* is the residual stream between the attention and
            the MLP sublayers (``resid_mid``).
        absolute_positions: The model adds learned position embeddings (GPT-2), so left padding needs explicit
            position ids.
        fp16_safe: Activations stay within float16 range (Gemma's do not).
        embeddings: Dotted paths of the embedding tables that write into the residual stream.
        writers: Names, inside a block, of the linear maps whose outputs are added to the residual stream. Empty
            when a norm sits between them and the residual (Gemma 2/3), where weight orthogonalisation is inexact.
    """

    model_type: str
    layers: str
    final_norm: str
    mid_norm: str
    absolute_positions: bool = False
    fp16_safe: bool = True
    embeddings: tuple[str, ...] = ("model.embed_tokens",)
    writers: tuple[str, ...] = ("self_attn.o_proj", "mlp.down_proj")


_LLAMA_LIKE = dict(layers="model.layers", final_norm="model.norm", mid_norm="post_attention_layernorm")
_GEMMA_LIKE = dict(layers="model.layers", final_norm="model.norm", mid_norm="pre_feedforward_layernorm", writers=())

FAMILIES: dict[str, FamilySpec] = {
    spec.model_type: spec
    for spec in (
        FamilySpec("llama", **_LLAMA_LIKE),
        FamilySpec("mistral", **_LLAMA_LIKE),
        FamilySpec("qwen2", **_LLAMA_LIKE),
        FamilySpec("qwen3", **_LLAMA_LIKE),
        # OLMo 2 normalises sublayer outputs and feeds the raw residual to the MLP.
        FamilySpec("olmo2", layers="model.layers", final_norm="model.norm", mid_norm="mlp", writers=()),
        FamilySpec("gemma", **_LLAMA_LIKE, fp16_safe=False),
        FamilySpec("gemma2", **_GEMMA_LIKE, fp16_safe=False),
        FamilySpec("gemma3_text", **_GEMMA_LIKE, fp16_safe=False),
        FamilySpec(
            "gemma3",
            layers="model.language_model.layers",
            final_norm="model.language_model.norm",
            mid_norm="pre_feedforward_layernorm",
            fp16_safe=False,
            embeddings=("model.language_model.embed_tokens",),
            writers=(),
        ),
        FamilySpec(
            "gpt2",
            layers="transformer.h",
            final_norm="transformer.ln_f",
            mid_norm="ln_2",
            absolute_positions=True,
            embeddings=("transformer.wte", "transformer.wpe"),
            writers=("attn.c_proj", "mlp.c_proj"),
        ),
    )
}


def family_for(config) -> FamilySpec:
    """Return the FamilySpec for a transformers config, or raise listing the supported families."""
    model_type = getattr(config, "model_type", None)
    if model_type not in FAMILIES:
        raise DriftError(
            f"unsupported model family {model_type!r}: supported are {', '.join(sorted(FAMILIES))} "
            "(add a FamilySpec to drift.models.families.FAMILIES for a new one)"
        )
    return FAMILIES[model_type]


def get_submodule(model: torch.nn.Module, path: str) -> torch.nn.Module:
    """Return the submodule at a dotted path, looking through PEFT wrappers."""
    base = model
    for _ in range(3):  # PeftModel -> LoraModel -> the transformers model
        try:
            return base.get_submodule(path)
        except AttributeError:
            inner = getattr(base, "base_model", None) or getattr(base, "model", None)
            if inner is None or inner is base:
                break
            base = inner
    raise DriftError(f"module {path!r} not found in {type(model).__name__}: the FamilySpec does not fit this model")


def decoder_layers(model: torch.nn.Module, family: FamilySpec) -> torch.nn.ModuleList:
    """Return the list of decoder blocks of ``model``."""
    layers = get_submodule(model, family.layers)
    if not isinstance(layers, torch.nn.ModuleList):
        raise DriftError(f"{family.layers!r} in {type(model).__name__} is not a list of blocks")
    return layers
