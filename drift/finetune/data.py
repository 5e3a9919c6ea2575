"""Fine-tuning data: instruction-response examples and preference pairs, bundled or loaded, and their builders.

Formats read by :func:`load_instructions`: the bundled set (``builtin:instructions``), our JSONL schema
(``text``/``response``), Alpaca (``instruction``/``input``/``output``), Dolly (``instruction``/``context``/
``response``) as JSON or JSONL, and saved Hugging Face datasets (a folder from ``save_to_disk``) with those columns.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from drift.data.languages import check_lang
from drift.data.limits import first_per
from drift.errors import DriftError


@dataclass(frozen=True)
class SFTExample:
    """One instruction with its target response."""

    id: str
    group: str
    lang: str
    instruction: str
    response: str
    category: str = ""
    source: str = ""


@dataclass(frozen=True)
class PreferencePair:
    """One DPO pair: a prompt, the preferred (chosen) and the dispreferred (rejected) response."""

    id: str
    group: str
    lang: str
    label: str
    prompt: str
    chosen: str
    rejected: str
    source: str = ""


def data_hash(records: Iterable) -> str:
    """SHA-256 of the records' content (order-sensitive), for run manifests."""
    h = hashlib.sha256()
    for r in records:
        h.update(json.dumps(asdict(r), sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()


def _bundled_rows(folder: str) -> list[dict]:
    root = resources.files("drift.data.bundled").joinpath(folder)
    rows = []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".jsonl"):
            rows += [json.loads(x) for x in entry.read_text(encoding="utf-8").splitlines() if x.strip()]
    return rows


def _read_any(spec: str) -> tuple[list[dict], str]:
    from drift.data.loaders import read_rows

    path = Path(spec)
    if path.is_dir():
        try:
            from datasets import load_from_disk
        except ImportError:
            raise DriftError("reading a saved dataset folder needs `datasets`: pip install 'polydrift[hf]'") from None
        ds = load_from_disk(str(path))
        if hasattr(ds, "keys"):  # a DatasetDict: take the train split
            ds = ds["train"] if "train" in ds else ds[next(iter(ds.keys()))]
        return [dict(r) for r in ds], str(path)
    if not path.exists():
        raise DriftError(f"training data not found: {spec} (a JSON/JSONL file, a saved dataset folder, or "
                         "builtin:instructions)")
    return read_rows(path), str(path)


def _example(row: dict, n: int, where: str, default_lang: str | None) -> SFTExample:
    if "text" in row and "response" in row:
        instr, resp = row["text"], row["response"]
    elif "instruction" in row and ("output" in row or "response" in row):  # Alpaca or Dolly
        extra = row.get("input") or row.get("context") or ""
        instr = row["instruction"] + (f"\n\n{extra}" if extra else "")
        resp = row.get("output", row.get("response"))
    else:
        raise DriftError(f"{where} record {n} lacks an instruction/response pair: give text+response, "
                         "instruction+output (Alpaca) or instruction+response (Dolly)")
    lang = row.get("lang") or default_lang
    if lang is None:
        raise DriftError(f"{where} record {n} has no lang field: add one or pass a default language")
    if not str(instr).strip() or not str(resp).strip():
        raise DriftError(f"{where} record {n} has an empty instruction or response")
    rid = str(row.get("id", f"{Path(where).stem}-{n:05d}"))
    return SFTExample(rid, str(row.get("group", rid)), check_lang(lang, f"{where} record {n}"), str(instr),
                      str(resp), str(row.get("category") or ""), str(row.get("source") or Path(where).name))


def load_instructions(spec: str = "builtin:instructions", langs: Sequence[str] | None = None,
                      default_lang: str | None = None, limit: int | None = None) -> list[SFTExample]:
    """Load instruction-response examples, optionally keeping some languages and the first ``limit`` per language.

    Raises:
        DriftError: A missing file or field, or no example left after the language filter.
    """
    if spec == "builtin:instructions":
        rows, where = _bundled_rows("instructions"), "builtin:instructions"
    else:
        rows, where = _read_any(spec)
    examples = [_example(r, r.get("_line", i + 1), where, default_lang) for i, r in enumerate(rows)]
    if langs:
        examples = [e for e in examples if e.lang in set(langs)]
        empty = sorted(set(langs) - {e.lang for e in examples})
        if empty:
            raise DriftError(f"no training examples in language(s) {empty} in {where}: check --langs or the data")
    examples = first_per(examples, limit)
    if not examples:
        raise DriftError(f"no training examples in {where}")
    return examples


def load_preferences(path: str, langs: Sequence[str] | None = None) -> list[PreferencePair]:
    """Load preference pairs from JSON/JSONL with ``prompt``, ``chosen``, ``rejected`` (and ``lang``, ``label``)."""
    rows, where = _read_any(path)
    pairs = []
    for i, r in enumerate(rows):
        n = r.get("_line", i + 1)
        missing = [k for k in ("prompt", "chosen", "rejected") if not str(r.get(k) or "").strip()]
        if missing:
            raise DriftError(f"{where} record {n} lacks {missing}: preference pairs need prompt, chosen, rejected")
        rid = str(r.get("id", f"pair-{n:05d}"))
        lang = check_lang(r.get("lang", "en"), f"{where} record {n}")
        pairs.append(PreferencePair(rid, str(r.get("group", rid)), lang, str(r.get("label", "harmful")),
                                    r["prompt"], r["chosen"], r["rejected"], str(r.get("source") or where)))
    if langs:
        pairs = [p for p in pairs if p.lang in set(langs)]
    if not pairs:
        raise DriftError(f"no preference pairs in {where}" + (f" for languages {list(langs)}" if langs else ""))
    return pairs


def bundled_refusals(lang: str) -> list[str]:
    """The bundled refusal responses of a language (the chosen side of refusal pairs)."""
    path = resources.files("drift.data.bundled").joinpath("refusals", f"{lang}.json")
    if not path.is_file():
        raise DriftError(f"no bundled refusals for language {lang!r}: pass your own with --refusals")
    return list(json.loads(path.read_text(encoding="utf-8"))["refusals"])
