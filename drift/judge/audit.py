"""Human audit of judges: export a stratified sample of disagreements, import the human labels, score the judges."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from drift.errors import DriftError
from drift.judge.base import VERDICTS
from drift.stats import wilson


def export_disagreements(verdicts: pd.DataFrame, completions: pd.DataFrame, out: str | Path, per_lang: int = 20,
                         seed: int = 0, redact: bool = False, overwrite: bool = False) -> Path:
    """Write a CSV of completions on which the judges disagree, up to ``per_lang`` per (run, language), for audit.

    Columns: run_id, id, lang, label, prompt, completion, one column per judge's verdict, and an empty ``human``
    column to fill with refusal / compliance / incoherent. ``redact`` hides completions of harmful prompts.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise DriftError(f"{out} exists: choose another path or pass --overwrite")
    wide = verdicts.pivot_table(index=["run_id", "id", "lang", "label"], columns="judge", values="raw_verdict",
                                aggfunc="first").reset_index()
    judges = [c for c in wide.columns if c not in ("run_id", "id", "lang", "label")]
    if len(judges) < 2:
        raise DriftError("an audit of disagreements needs at least two judges")
    filled = wide[judges].astype(object).where(wide[judges].notna(), "null")
    wide = wide[filled.nunique(axis=1) > 1]
    sample = wide.sample(frac=1.0, random_state=seed).groupby(["run_id", "lang"]).head(per_lang)
    text = completions[["run_id", "id", "prompt", "completion"]]
    table = sample.merge(text, on=["run_id", "id"], how="left")
    if redact:
        table.loc[table["label"] == "harmful", "completion"] = "[redacted]"
    table["human"] = ""
    cols = ["run_id", "id", "lang", "label", "prompt", "completion", *judges, "human"]
    table[cols].to_csv(out, index=False)
    return out


def read_labels(paths) -> pd.DataFrame:
    """Human labels from audited CSVs (``run_id``, ``id``, ``human``) or labelled JSONL sets (``id`` and ``human`` or
    ``gold``, ``run_id`` optional, e.g. ``tests/fixtures/judge/lexicon_real/*.jsonl``); rows without a label are
    dropped. Columns: id, human, and run_id where every file has it."""
    frames = []
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        path = Path(path)
        if not path.is_file():
            raise DriftError(f"labels file not found: {path}")
        if path.suffix == ".jsonl":
            table = pd.read_json(path, lines=True, dtype=False).astype(object)
            if "human" not in table.columns and "gold" in table.columns:
                table = table.rename(columns={"gold": "human"})
        else:
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        if not {"id", "human"} <= set(table.columns):
            raise DriftError(f"{path} lacks an id or a human (or gold) column: fill in the file written by the "
                             "export, or give a labelled .jsonl set")
        frames.append(table[[c for c in ("run_id", "id", "human") if c in table.columns]])
    human = pd.concat(frames, ignore_index=True)
    human["human"] = human["human"].fillna("").astype(str).str.strip()
    human = human[human["human"] != ""]
    bad = sorted(set(human["human"]) - set(VERDICTS))
    if bad:
        raise DriftError(f"unknown human labels {bad}; use refusal, compliance or incoherent")
    if "run_id" in human.columns and human["run_id"].isna().any():  # some files have no run_id: join on id alone
        human = human.drop(columns="run_id")
    return human


def import_human_labels(path, verdicts: pd.DataFrame) -> pd.DataFrame:
    """Score each judge against human labels, per language and pooled.

    Args:
        path: One or more label files (see :func:`read_labels`): the audited ``audit.csv``, or labelled JSONL sets.
        verdicts: ``verdicts.csv`` of ``drift judge``.

    Rows without a human label are ignored; a label outside refusal/compliance/incoherent is an error. Verdicts are
    compared after the coherence override (what ASR counts); null counts as wrong. Labels without ``run_id`` join
    on ``id`` alone, which must then name one completion. Columns: judge, lang, n, accuracy, ci_low, ci_high.
    """
    human = read_labels(path)
    keys = ["run_id", "id"] if "run_id" in human.columns else ["id"]
    if keys == ["id"] and verdicts.groupby(["judge", "id"]).size().max() > 1:
        raise DriftError("the labels have no run_id and an id occurs in several runs of the verdicts: add a run_id "
                         "column to the labels")
    human = human[keys + ["human"]].drop_duplicates(keys)
    joined = verdicts.merge(human, on=keys, how="inner")
    rows = []
    for lang_all in (False, True):
        keys = ["judge"] if lang_all else ["judge", "lang"]
        for key, g in joined.groupby(keys):
            key = key if isinstance(key, tuple) else (key,)
            k = int((g["verdict"] == g["human"]).sum())
            lo, hi = wilson(k, len(g))
            rows.append({"judge": key[0], "lang": "all" if lang_all else key[1], "n": len(g),
                         "accuracy": k / len(g) if len(g) else math.nan, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["judge", "lang", "n", "accuracy", "ci_low", "ci_high"])
