"""Batched generation of completions (transformers; vLLM optional) into resumable ``completions.jsonl`` files."""

from drift.generate.config import GenerationConfig
from drift.generate.core import export_completions, generate_completions, read_completions
from drift.generate.merge import merge_completions

__all__ = ["GenerationConfig", "export_completions", "generate_completions", "merge_completions", "read_completions"]
