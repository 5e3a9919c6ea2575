"""Prompt spec strings: ``PATH``, ``builtin:NAME``, ``hf:NAME`` or ``polyrefuse:FOLDER``, with ``?filters``.

Examples: ``builtin:prompts?lang=en,de&label=harmful``, ``data/advbench.csv?preset=advbench``,
``polyrefuse:../shared/data/polyrefuse?split=harmful_test,harmless_test&lang=en,de``,
``hf:walledai/AdvBench?split=train&lang=en&label=harmful``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs

from drift.data.loaders import load_hf_dataset, load_table, rows_to_prompts
from drift.data.polyrefuse import load_polyrefuse, polyrefuse_files
from drift.data.records import PromptSet
from drift.errors import DriftError

BUILTIN = {"prompts": "prompts"}
_KEYS = {"lang", "label", "category", "split", "preset"}


def builtin_names() -> list[str]:
    """Names accepted by ``builtin:NAME``."""
    return sorted(BUILTIN)


def load_builtin(name: str = "prompts") -> PromptSet:
    """Load a bundled prompt set: ``prompts`` holds 100 harmful and 100 harmless items in every bundled language."""
    if name not in BUILTIN:
        raise DriftError(f"unknown builtin prompt set {name!r}: choose one of {builtin_names()}")
    folder = resources.files("drift.data.bundled").joinpath(BUILTIN[name])
    rows: list[dict] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".jsonl"):
            rows.extend(json.loads(line) for line in entry.read_text(encoding="utf-8").splitlines() if line)
    return rows_to_prompts(rows, f"builtin:{name}")


def _split_query(spec: str) -> tuple[str, dict[str, list[str]]]:
    base, _, query = spec.partition("?")
    params = {k: [x for v in vs for x in v.split(",") if x] for k, vs in parse_qs(query).items()}
    unknown = set(params) - _KEYS
    if unknown:
        raise DriftError(f"unknown filter(s) {sorted(unknown)} in prompt spec {spec!r}: use {sorted(_KEYS)}")
    return base, params


def load_prompts(
    spec: str,
    langs: list[str] | None = None,
    labels: list[str] | None = None,
    categories: list[str] | None = None,
) -> PromptSet:
    """Load prompts from a spec string and apply language/label/category filters.

    Args:
        spec: ``PATH`` (JSONL/JSON/CSV/TSV, a PolyRefuse folder or a saved HF dataset), ``builtin:NAME``,
            ``hf:NAME`` or ``polyrefuse:FOLDER``, optionally followed by ``?lang=..&label=..&category=..&split=..``
            (``&preset=advbench`` and the like for benchmark tables).
        langs: Languages to keep, combined with the spec's own filter.
        labels: Labels to keep.
        categories: Categories to keep.

    Raises:
        DriftError: The spec cannot be read, or nothing is left after filtering.
    """
    base, q = _split_query(spec)
    first = lambda key: q[key][0] if key in q else None  # noqa: E731
    if base.startswith("builtin:"):
        ps = load_builtin(base.split(":", 1)[1] or "prompts")
    elif base.startswith("hf:"):
        ps = load_hf_dataset(base[3:], split=first("split"), lang=(q.get("lang") or [None])[0])
    elif base.startswith("polyrefuse:"):
        ps = load_polyrefuse(base.split(":", 1)[1], splits=q.get("split"), langs=q.get("lang"))
    else:
        path = Path(base)
        if path.is_dir():
            if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
                ps = load_hf_dataset(str(path), split=first("split"))
            else:
                polyrefuse_files(path)
                ps = load_polyrefuse(path, splits=q.get("split"), langs=q.get("lang"))
        else:
            single_lang = q["lang"][0] if len(q.get("lang", [])) == 1 else None
            single_label = q["label"][0] if len(q.get("label", [])) == 1 else None
            ps = load_table(path, preset=first("preset"), lang=single_lang, label=single_label)
    ps = ps.filter(langs=q.get("lang"), labels=q.get("label"), categories=q.get("category"))
    ps = ps.filter(langs=langs, labels=labels, categories=categories)
    if len(ps) == 0:
        raise DriftError(f"no prompts left in {spec!r} after filtering: check the language, label and category filters")
    return ps
