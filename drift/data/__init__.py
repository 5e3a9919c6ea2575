"""Prompt records, bundled prompt sets and loaders."""

from drift.data.loaders import PRESETS, load_hf_dataset, load_table, read_rows, rows_to_prompts
from drift.data.polyrefuse import load_polyrefuse
from drift.data.records import FIELDS, LABELS, Prompt, PromptSet, make_prompt
from drift.data.shard import ShardInfo, parse_shard, shard_prompts
from drift.data.spec import builtin_names, load_builtin, load_prompts

__all__ = [
    "FIELDS",
    "LABELS",
    "PRESETS",
    "Prompt",
    "PromptSet",
    "ShardInfo",
    "builtin_names",
    "load_builtin",
    "load_hf_dataset",
    "load_polyrefuse",
    "load_prompts",
    "load_table",
    "make_prompt",
    "parse_shard",
    "read_rows",
    "rows_to_prompts",
    "shard_prompts",
]
