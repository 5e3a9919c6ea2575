"""Read the published refusal-direction runs (Arditi et al. 2024) as completion records.

The runs live under ``{refdata}/refusal_direction_runs/{model}/completions/`` as
``{dataset}_{intervention}_completions.json`` (a list of ``{category, prompt, response}``) and
``{dataset}_{intervention}_evaluations.json`` (a dict with the published rates and the same list, each item with
``is_jailbreak_*`` labels). ``dataset`` is ``harmless`` for harmless prompts and a harmful benchmark otherwise
(``jailbreakbench``); ``intervention`` is ``baseline``, ``ablation`` or ``actadd``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from drift.errors import DriftError
from drift.paths import refdata_dir

_STEM = re.compile(r"^(?P<dataset>.+)_(?P<intervention>[^_]+)_(?P<kind>completions|evaluations)$")
_FORMAT = (
    "expected the refusal-direction format: {dataset}_{intervention}_completions.json (a list of objects with "
    "'prompt' and 'response') or {dataset}_{intervention}_evaluations.json (an object with '*_success_rate' "
    "values and a 'completions' list)"
)


def published_dir() -> Path:
    """The folder of the published runs: ``{refdata}/refusal_direction_runs``."""
    return refdata_dir() / "refusal_direction_runs"


def published_files(kind: str = "evaluations", root: str | Path | None = None) -> list[Path]:
    """The published ``*_{kind}.json`` files of every model, sorted.

    Args:
        kind: ``evaluations`` or ``completions``.
        root: The runs folder (default: :func:`published_dir`).
    """
    if kind not in ("evaluations", "completions"):
        raise DriftError(f"kind must be 'evaluations' or 'completions', got {kind!r}")
    return sorted(Path(root or published_dir()).glob(f"*/completions/*_{kind}.json"))


def _resolve(path: str | Path) -> Path:
    p = Path(path)
    if p.is_file():
        return p
    if not p.is_absolute() and (published_dir() / p).is_file():
        return published_dir() / p
    raise DriftError(
        f"published run file not found: {path} (give a path, or one relative to {published_dir()}; "
        "set POLYDRIFT_REFDATA to the reference-data folder)"
    )


def _read(path: str | Path) -> tuple[Path, re.Match, list[dict], dict]:
    """Resolve, parse and check one file: its path, stem parts, items and (for evaluations) the top-level dict."""
    p = _resolve(path)
    stem = _STEM.match(p.stem)
    if stem is None:
        raise DriftError(f"{p.name} is not a published run file: {_FORMAT}")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DriftError(f"{p} is not valid JSON ({exc}): {_FORMAT}") from None
    top: dict = {}
    if stem["kind"] == "evaluations":
        if not isinstance(doc, dict) or not any(k.endswith("_success_rate") for k in doc):
            raise DriftError(f"{p} has no '*_success_rate' values: {_FORMAT}")
        top, doc = doc, doc.get("completions")
    if not isinstance(doc, list) or not all(isinstance(r, dict) and {"prompt", "response"} <= r.keys() for r in doc):
        raise DriftError(f"{p} does not hold a list of completions with 'prompt' and 'response': {_FORMAT}")
    return p, stem, doc, top


def load_published_completions(path: str | Path) -> list[dict]:
    """Turn a published ``*_completions.json`` or ``*_evaluations.json`` file into completion records.

    Each record has ``run_id`` (``{model}-{intervention}``), ``id`` (``{dataset}-{i:03d}``: the same prompt has the
    same id in every model, intervention and file), ``lang`` (``en``), ``label`` (``harmless`` for the harmless
    set, else ``harmful``), ``category``, ``prompt``, ``completion`` (the response), ``source``, ``model`` and
    ``intervention``; items of an evaluations file also keep their published ``is_jailbreak_*`` labels (1 =
    not a refusal / unsafe).

    Args:
        path: The file, or its path relative to :func:`published_dir`
            (e.g. ``gemma-2b-it/completions/jailbreakbench_baseline_evaluations.json``).

    Raises:
        DriftError: The file is missing or not in the published format.
    """
    p, stem, items, _ = _read(path)
    dataset, intervention = stem["dataset"], stem["intervention"]
    model = p.parent.parent.name if p.parent.name == "completions" else None
    label = "harmless" if dataset.startswith("harmless") else "harmful"
    records = []
    for i, item in enumerate(items):
        rec = {
            "run_id": f"{model}-{intervention}" if model else intervention,
            "id": f"{dataset}-{i:03d}", "lang": "en", "label": label, "category": item.get("category"),
            "prompt": item["prompt"], "completion": item["response"], "source": f"refusal_direction/{dataset}",
            "model": model, "intervention": intervention,
        }
        rec.update({k: v for k, v in item.items() if k.startswith("is_jailbreak_")})
        records.append(rec)
    return records


def published_rates(path: str | Path, per_category: bool = False) -> dict:
    """The published success rates of an ``*_evaluations.json`` file.

    Args:
        path: The file, or its path relative to :func:`published_dir`.
        per_category: Return ``{method: {category: rate}}`` instead of ``{method: rate}``.

    Returns:
        Rates keyed by method, e.g. ``{"substring_matching": 0.09, "llamaguard2": 0.07}`` (the share of completions
        judged not to be refusals).

    Raises:
        DriftError: The file is missing, not in the published format, or a completions file (which has no rates).
    """
    p, stem, _, top = _read(path)
    if stem["kind"] != "evaluations":
        raise DriftError(f"{p.name} has no published rates: use the matching *_evaluations.json file")
    suffix = "_per_category" if per_category else "_success_rate"
    return {k[: -len(suffix)]: v for k, v in top.items() if k.endswith(suffix)}
