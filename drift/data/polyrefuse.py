"""Loader for PolyRefuse-style folders of ``{split}_translated_{lang}.json`` files (Wang et al. 2025).

Two layouts live side by side in such a folder:

* train/val splits: ``instruction`` is the translation; the ``_en`` file holds the English source rows in the same
  order, so row ``i`` is the same item in every language.
* test splits (``harmful_test``, ``harmless_test``, ``jailbreakbench_test``): ``instruction`` is the English source
  and ``instruction_translated`` the translation. Some languages are not row-aligned (jailbreakbench nl and pl drop
  rows), so items are matched to the English file by their English source text, never by row number.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

from drift.data.records import Prompt, PromptSet, make_prompt
from drift.errors import DriftError

_FILE = re.compile(r"^(?P<split>[a-z]+_[a-z]+)_translated_(?P<lang>[a-z]{2})\.json$")
_TEST_SPLITS = ("harmful_test", "harmless_test", "jailbreakbench_test")


def _label(split: str) -> str:
    return "harmless" if split.startswith("harmless") else "harmful"


def polyrefuse_files(folder: str | Path) -> dict[str, dict[str, Path]]:
    """Return ``{split: {lang: path}}`` for the PolyRefuse files found in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DriftError(f"PolyRefuse folder not found: {folder} (point to the folder holding *_translated_*.json)")
    found: dict[str, dict[str, Path]] = defaultdict(dict)
    for p in sorted(folder.iterdir()):
        m = _FILE.match(p.name)
        if m:
            found[m["split"]][m["lang"]] = p
    if not found:
        raise DriftError(f"no {{split}}_translated_{{lang}}.json files in {folder}: is this a PolyRefuse folder?")
    return dict(found)


def _read(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DriftError(f"malformed JSON in {path} line {e.lineno}: {e.msg}") from None
    if not isinstance(data, list):
        raise DriftError(f"{path} must hold a JSON list of objects")
    return data


def _english_index(rows: list[dict]) -> dict[str, list[int]]:
    index: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        index[r["instruction"].strip()].append(i)
    return index


def _load_split(split: str, files: dict[str, Path], langs: set[str] | None) -> list[Prompt]:
    if "en" not in files:
        raise DriftError(f"split {split} has no _en file: the English rows are needed to align the translations")
    english = _read(files["en"])
    index = _english_index(english)
    prompts: list[Prompt] = []
    for lang, path in sorted(files.items()):
        if langs is not None and lang not in langs:
            continue
        rows = english if lang == "en" else _read(path)
        used: set[int] = set()
        for i, row in enumerate(rows):
            where = f"{path.name} row {i + 1}"
            if split in _TEST_SPLITS:
                text = row.get("instruction") if lang == "en" else row.get("instruction_translated")
                # Match by English source text; the first unused occurrence handles repeated items.
                candidates = [j for j in index.get(str(row.get("instruction", "")).strip(), []) if j not in used]
                if not candidates:
                    raise DriftError(f"{where}: its English source is not in the _en file; the folder is inconsistent")
                item = candidates[0]
            else:
                if len(rows) != len(english):
                    raise DriftError(f"{path.name} has {len(rows)} rows but the _en file {len(english)}: not aligned")
                text, item = row.get("instruction"), i
            used.add(item)
            group = f"polyrefuse-{split}-{item:04d}"
            raw = {
                "id": f"{group}-{lang}",
                "group": group,
                "lang": lang,
                "label": _label(split),
                "category": english[item].get("category") or "",
                "text": text,
                "source": f"polyrefuse:{split}",
            }
            prompts.append(make_prompt(raw, where))
    return prompts


def load_polyrefuse(
    folder: str | Path, splits: list[str] | None = None, langs: list[str] | None = None
) -> PromptSet:
    """Load a PolyRefuse folder into one PromptSet with groups aligned across languages.

    Args:
        folder: The folder of ``{split}_translated_{lang}.json`` files.
        splits: Splits to load (default: all found), such as ``["harmful_train", "harmless_train"]``.
        langs: Languages to keep (default: all found).

    Example:
        >>> ps = load_polyrefuse("../shared/data/polyrefuse", splits=["jailbreakbench_test"])  # doctest: +SKIP
    """
    files = polyrefuse_files(folder)
    chosen = splits or sorted(files)
    unknown = [s for s in chosen if s not in files]
    if unknown:
        raise DriftError(f"unknown PolyRefuse split(s) {unknown}: this folder has {sorted(files)}")
    lang_set = set(langs) if langs is not None else None
    prompts: list[Prompt] = []
    for split in chosen:
        prompts.extend(_load_split(split, files[split], lang_set))
    return PromptSet(prompts, f"polyrefuse:{Path(folder).name}")
