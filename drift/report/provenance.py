"""The provenance section of the report: runs, versions, data and model hashes, configurations.

Text fields that could carry prompts or model outputs are dropped from the documents before they are shown.
"""

from __future__ import annotations

import html
import json
from importlib import metadata

import pandas as pd

from drift.report.load import Study

HASH_KEYS = ("hash", "sha256", "weights", "revision", "gen_key", "fingerprint")
TEXT_KEYS = {"prompt", "prompts_text", "completion", "text", "response", "instruction", "chosen", "rejected"}
RUN_COLUMNS = ["run_id", "role", "model", "checkpoint", "method", "ft_lang", "seed", "epochs", "parent_run_id"]
MAX_DOC_CHARS = 20_000


def scrub(obj):
    """A copy of a JSON document without the fields that could hold prompt or completion text."""
    if isinstance(obj, dict):
        return {k: scrub(v) for k, v in obj.items() if k not in TEXT_KEYS}
    if isinstance(obj, list):
        return [scrub(v) for v in obj]
    return obj


def _walk(obj, path: str = ""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, obj


def hashes(docs: dict[str, dict]) -> pd.DataFrame:
    """Every hash-like field (data, tokenizer, chat template, weights, revisions) of the provenance documents."""
    rows = [{"document": name, "field": path, "value": str(value)}
            for name, doc in docs.items() for path, value in _walk(doc or {})
            if value not in (None, "") and any(k in path.rsplit(".", 1)[-1].lower() for k in HASH_KEYS)]
    return pd.DataFrame(rows, columns=["document", "field", "value"])


def versions(study: Study) -> pd.DataFrame:
    """Package versions recorded by each stage, and those of the environment that built the report."""
    rows = []
    docs = {"study.json": study.manifest, **study.provenance}
    for name, doc in docs.items():
        for path, value in _walk(doc or {}):
            leaf = path.rsplit(".", 1)[-1]
            if leaf == "polydrift_version" or path.startswith("software."):
                rows.append({"source": name, "package": "polydrift" if leaf == "polydrift_version" else leaf,
                             "version": str(value)})
    for pkg in ("polydrift", "plotly", "pandas", "numpy"):
        try:
            rows.append({"source": "report build", "package": pkg, "version": metadata.version(pkg)})
        except metadata.PackageNotFoundError:
            continue
    df = pd.DataFrame(rows, columns=["source", "package", "version"]).drop_duplicates()
    return (df.groupby(["package", "version"], sort=False)["source"].agg(_sources).reset_index()
            [["package", "version", "source"]])


def _sources(names: pd.Series) -> str:
    names = list(names)
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def runs_table(study: Study) -> pd.DataFrame:
    """The study's runs with the fields of their manifests."""
    df = study.runs
    return df[[c for c in RUN_COLUMNS if c in df.columns]]


def table_html(df: pd.DataFrame, max_rows: int = 200) -> str:
    """An escaped HTML table (first ``max_rows`` rows)."""
    more = f"<p class='note'>{len(df) - max_rows} more rows in the CSV.</p>" if len(df) > max_rows else ""
    return df.head(max_rows).to_html(index=False, na_rep="", classes="data", float_format=lambda x: f"{x:.4g}",
                                     border=0) + more


def doc_html(name: str, doc) -> str:
    """A collapsible, escaped JSON view of one provenance document."""
    text = json.dumps(scrub(doc), indent=2, sort_keys=True, default=str)
    if len(text) > MAX_DOC_CHARS:
        text = text[:MAX_DOC_CHARS] + "\n... (truncated)"
    return f"<details><summary>{html.escape(name)}</summary><pre>{html.escape(text)}</pre></details>"


def provenance_html(study: Study) -> tuple[str, dict[str, pd.DataFrame]]:
    """The provenance section's HTML and the tables behind it (runs, versions, hashes)."""
    runs, vers = runs_table(study), versions(study)
    docs = {k: scrub(v) for k, v in study.provenance.items() if v is not None}
    hs = hashes({"study.json": scrub(study.manifest), **docs})
    m = study.manifest
    name, created = html.escape(str(m.get("name", study.root.name))), html.escape(str(m.get("created", "unknown")))
    parts = [f"<p>Study <b>{name}</b>, created {created}, folder <code>{html.escape(str(study.root))}</code>.</p>",
             "<h3>Runs (models and checkpoints)</h3>", table_html(runs),
             "<h3>Package versions</h3>", table_html(vers),
             "<h3>Data, tokenizer, template and weight hashes</h3>",
             table_html(hs) if len(hs) else "<p class='note'>No hashes recorded.</p>",
             "<h3>Configurations and stage metadata</h3>"]
    parts.append(doc_html("study.json", study.manifest) if study.manifest else "<p class='note'>No study.json.</p>")
    parts += [doc_html(name, doc) for name, doc in docs.items()]
    return "\n".join(parts), {"runs.csv": runs, "versions.csv": vers, "hashes.csv": hs}
