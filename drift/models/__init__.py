"""Model loading, family specs and chat formatting."""

from drift.models.chat import ChatFormatter, ChatOptions, Encoded, collate
from drift.models.families import FAMILIES, FamilySpec, decoder_layers, family_for
from drift.models.loading import DEFAULT_MODEL, LoadedModel, default_model_dir, load_model

__all__ = [
    "DEFAULT_MODEL",
    "FAMILIES",
    "ChatFormatter",
    "ChatOptions",
    "Encoded",
    "FamilySpec",
    "LoadedModel",
    "collate",
    "decoder_layers",
    "default_model_dir",
    "family_for",
    "load_model",
]
