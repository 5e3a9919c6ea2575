"""Prompt records, bundled prompt sets and loaders."""

from drift.data.loaders import PRESETS, load_hf_dataset, load_table, read_rows, rows_to_prompts
from drift.data.polyrefuse import load_polyrefuse
from drift.data.records import FIELDS, LABELS, Prompt, PromptSet, make_prompt
from drift.data.spec import builtin_names, load_builtin, load_prompts

__all__ = [
    "FIELDS",
    "LABELS",
    "PRESETS",
    "Prompt",
    "PromptSet",
    "builtin_names",
    "load_builtin",
    "load_hf_dataset",
    "load_polyrefuse",
    "load_prompts",
    "load_table",
    "make_prompt",
    "read_rows",
    "rows_to_prompts",
]
