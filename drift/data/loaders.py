"""Loaders for the prompt formats researchers have: JSONL/JSON/CSV tables, benchmark tables, PolyRefuse folders."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from drift.data.records import Prompt, PromptSet, make_prompt
from drift.errors import DriftError

# Column names tried, in order, when a table does not say which column holds what.
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "id": ("id", "prompt_id", "question_id", "BehaviorID", "behavior_id", "idx", "index"),
    "text": ("text", "prompt", "instruction", "goal", "Behavior", "behavior", "question", "query", "input"),
    "lang": ("lang", "language", "locale"),
    "label": ("label",),
    "category": ("category", "SemanticCategory", "semantic_category", "tags", "harm_category"),
    "group": ("group", "group_id"),
    "source": ("source",),
}

# Presets: column mapping and constants for published benchmark tables.
PRESETS: dict[str, dict] = {
    "advbench": {"columns": {"text": "goal"}, "label": "harmful", "lang": "en", "source": "advbench"},
    "harmbench": {
        "columns": {"id": "BehaviorID", "text": "Behavior", "category": "SemanticCategory"},
        "label": "harmful",
        "lang": "en",
        "source": "harmbench",
    },
    "sorrybench": {
        "columns": {"id": "question_id", "text": "turns", "category": "category"},
        "label": "harmful",
        "lang": "en",
        "source": "sorry-bench",
    },
    "multijail": {"wide": True, "columns": {"id": "id", "category": "tags"}, "label": "harmful", "source": "multijail"},
    "refuseu": {"label": "harmful", "source": "refuseu"},
}


def read_rows(path: str | Path) -> list[dict]:
    """Read a JSONL, JSON (list of objects) or CSV/TSV file into a list of dicts.

    Raises:
        DriftError: The file is missing, or a line is malformed (the message gives its line number).
    """
    path = Path(path)
    if not path.is_file():
        raise DriftError(f"prompt file not found: {path} (check the path, or use builtin:prompts)")
    suffix = "".join(path.suffixes[-1:]).lower()
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DriftError(f"malformed JSON in {path} line {n}: {e.msg}; fix or remove that line") from None
                if not isinstance(obj, dict):
                    raise DriftError(f"line {n} of {path} is not a JSON object: each line must be one record")
                obj["_line"] = n
                rows.append(obj)
        return rows
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DriftError(f"malformed JSON in {path} line {e.lineno}: {e.msg}") from None
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), None)
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise DriftError(f"{path} must hold a JSON list of objects (or an object with one such list)")
        return data
    if suffix in (".csv", ".tsv"):
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ","))
    raise DriftError(f"unsupported prompt file type {suffix!r} for {path}: use .jsonl, .json, .csv or .tsv")


def _resolve_columns(keys: Iterable[str], columns: Mapping[str, str]) -> dict[str, str]:
    keys = list(keys)
    out: dict[str, str] = {}
    for field, synonyms in _SYNONYMS.items():
        if field in columns:
            if columns[field] not in keys:
                raise DriftError(f"column {columns[field]!r} (for {field}) not found; the table has {keys}")
            out[field] = columns[field]
            continue
        hit = next((s for s in synonyms if s in keys), None)
        if hit is not None:
            out[field] = hit
    return out


def _cell(value: object) -> object:
    if isinstance(value, list):  # SORRY-Bench keeps the prompt in a one-element list of turns
        return value[0] if value else ""
    return value


def rows_to_prompts(
    rows: list[dict],
    name: str,
    columns: Mapping[str, str] | None = None,
    lang: str | None = None,
    label: str | None = None,
    source: str | None = None,
    wide: bool = False,
) -> PromptSet:
    """Turn table rows into a PromptSet through a column mapping.

    Args:
        rows: Dicts, one per table row.
        name: Name of the source, used in error messages and as the default ``source``.
        columns: Field -> column mapping (fields: id, group, lang, label, category, text, source); unmapped fields
            are looked up under common names.
        lang: Language for every row when the table has no language column.
        label: Label for every row when the table has no label column.
        source: ``source`` for every row.
        wide: The table has one text column per language (named by ISO 639-1 code), as in MultiJail.
    """
    if not rows:
        raise DriftError(f"{name} has no rows: check the file or the filters")
    cols = _resolve_columns(rows[0].keys(), columns or {})
    prompts: list[Prompt] = []
    for i, row in enumerate(rows):
        where = f"{name} line {row['_line']}" if "_line" in row else f"{name} row {i + 1}"
        base_id = str(row[cols["id"]]) if "id" in cols else str(i)
        common = {
            "label": row.get(cols["label"]) if "label" in cols else label,
            "category": _cell(row.get(cols["category"])) if "category" in cols else "",
            "source": source or (row.get(cols["source"]) if "source" in cols else None) or name,
        }
        if wide:
            from drift.data.languages import ISO_639_1

            group = str(row[cols["group"]]) if "group" in cols else base_id
            mapped = set(cols.values())  # an 'id' column is not Indonesian
            for key, value in row.items():
                if key in ISO_639_1 and key not in mapped and value not in (None, ""):
                    raw = {**common, "id": f"{group}-{key}", "group": group, "lang": key, "text": value}
                    prompts.append(make_prompt(raw, where))
            continue
        if "text" not in cols:
            raise DriftError(f"{name} has no text column (looked for {_SYNONYMS['text']}): pass a column mapping")
        raw = {
            **common,
            "id": base_id,
            "group": row.get(cols["group"]) if "group" in cols else None,
            "lang": row.get(cols["lang"]) if "lang" in cols else lang,
            "text": _cell(row.get(cols["text"])),
        }
        if raw["lang"] in (None, ""):
            raise DriftError(f"{where} has no language: add a 'lang' column or pass lang=... (--lang on the CLI)")
        if raw["label"] in (None, ""):
            raise DriftError(f"{where} has no label: add a 'label' column or pass label='harmful' or 'harmless'")
        prompts.append(make_prompt(raw, where))
    return PromptSet(prompts, name)


def load_table(
    path: str | Path,
    preset: str | None = None,
    columns: Mapping[str, str] | None = None,
    lang: str | None = None,
    label: str | None = None,
) -> PromptSet:
    """Load a JSONL/JSON/CSV prompt table, optionally through a benchmark preset.

    Args:
        path: The file.
        preset: One of ``PRESETS`` (advbench, harmbench, sorrybench, multijail, refuseu) or None.
        columns: Column mapping that overrides the preset's.
        lang: Language for every row when the table has none (overrides the preset's).
        label: Label for every row when the table has none.

    Example:
        >>> ps = load_table("harmful_behaviors.csv", preset="advbench")  # doctest: +SKIP
    """
    spec: dict = {}
    if preset is not None:
        if preset not in PRESETS:
            raise DriftError(f"unknown preset {preset!r}: choose one of {sorted(PRESETS)}")
        spec = PRESETS[preset]
    rows = read_rows(path)
    if preset == "sorrybench":
        rows = _sorrybench_langs(rows)
    return rows_to_prompts(
        rows,
        Path(path).name,
        columns={**spec.get("columns", {}), **(columns or {})},
        lang=lang or spec.get("lang"),
        label=label or spec.get("label"),
        source=spec.get("source"),
        wide=spec.get("wide", False),
    )


def _sorrybench_langs(rows: list[dict]) -> list[dict]:
    """SORRY-Bench marks translations in ``prompt_style`` (``translate-fr``); give them a language and group."""
    out = []
    for r in rows:
        style = str(r.get("prompt_style") or "base")
        lang = style.split("-", 1)[1] if style.startswith("translate-") else "en"
        qid = str(r.get("question_id"))
        out.append({**r, "lang": lang, "group": qid, "question_id": f"{qid}-{style}"})
    return out


def load_hf_dataset(name_or_path: str, split: str | None = None, **kwargs) -> PromptSet:
    """Load a Hugging Face dataset saved on disk (``save_to_disk``) or, when online, from the hub by name.

    Keyword arguments are passed to :func:`rows_to_prompts` (columns, lang, label, wide).
    """
    try:
        import datasets
    except ImportError:
        raise DriftError("loading Hugging Face datasets needs the 'datasets' package: pip install datasets") from None
    path = Path(name_or_path)
    try:
        if path.exists():
            ds = datasets.load_from_disk(str(path))
        else:
            ds = datasets.load_dataset(name_or_path, split=split)
    except Exception as e:  # the hub client raises many types when offline or the name is wrong
        raise DriftError(f"could not load dataset {name_or_path!r}: {e.__class__.__name__}: {e}") from None
    if isinstance(ds, datasets.DatasetDict):
        if split is None:
            if len(ds) != 1:
                raise DriftError(f"{name_or_path} has splits {list(ds)}: choose one with split=... (?split= in a spec)")
            split = next(iter(ds))
        ds = ds[split]
    return rows_to_prompts(list(ds), Path(name_or_path).name, **kwargs)
