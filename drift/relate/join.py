"""The joined table: one row per (fine-tuned run, judge, evaluation language, site, position, layer, drift measure).

Every join goes through ``run_id``: a run's parent comes from the run table (``parent_run_id``) or, where that is
missing, from the ``base_run_id`` of its drift records; ASR and capability changes are the run's value minus its
parent's value on the same judge and language.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from drift.errors import DriftError
from drift.relate.options import DEFAULT_MEASURES, RelateOptions

RUN_COLUMNS = ["run_id", "parent_run_id", "role", "model", "checkpoint", "method", "ft_lang", "seed", "epochs"]
UNIT_KEYS = ["site", "position", "layer", "measure"]
JOINED_COLUMNS = ["run_id", "parent_run_id", "model", "checkpoint", "method", "ft_lang", "seed", "epochs", "judge",
                  "asr_metric", "eval_lang", *UNIT_KEYS, "drift_lang", "drift", "asr_run", "asr_parent",
                  "asr_change", "n_asr", "capability_change"]


def as_frame(records: Any, name: str, required: Iterable[str]) -> pd.DataFrame:
    """Records (a DataFrame or a list of dicts) as a DataFrame with the ``required`` columns, or a DriftError."""
    df = records.copy() if isinstance(records, pd.DataFrame) else pd.DataFrame.from_records(list(records or []))
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DriftError(f"{name} records lack the column(s) {missing}: pass long-form records as written by the "
                         f"stage that makes them (see docs/relate.md)")
    return df


def load_runs(source: Any) -> pd.DataFrame:
    """Run metadata as a table with the columns ``RUN_COLUMNS``.

    Args:
        source: A DataFrame, a list of dicts or ``RunManifest`` objects (parent in ``extra['parent_run_id']``), a
            study manifest dict (its ``runs``) or the path of ``study.json``.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise DriftError(f"study manifest {path} not found: pass the study.json of a run folder")
        source = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(source, Mapping):
        if "runs" not in source:
            raise DriftError("the study manifest has no 'runs' list: pass study.json or a list of run records")
        source = source["runs"]
    if not isinstance(source, pd.DataFrame):
        source = [_run_dict(r) for r in source]
    df = as_frame(source, "run", ["run_id"])
    for col in RUN_COLUMNS:
        if col not in df.columns:
            df[col] = None
    df["run_id"] = df["run_id"].astype(str)
    dup = df["run_id"][df["run_id"].duplicated()].unique()
    if len(dup):
        raise DriftError(f"run table lists run_id(s) {list(dup)[:5]} more than once: keep one row per run")
    return df[RUN_COLUMNS + [c for c in df.columns if c not in RUN_COLUMNS]].reset_index(drop=True)


def _run_dict(run: Any) -> dict:
    if hasattr(run, "to_dict") and hasattr(run, "extra"):
        d = run.to_dict()
        d.setdefault("parent_run_id", (d.get("extra") or {}).get("parent_run_id"))
        return d
    return dict(run)


def select_runs(runs: pd.DataFrame, drift: pd.DataFrame, options: RelateOptions) -> pd.DataFrame:
    """Runs to relate, with ``parent_run_id`` filled from the drift records' ``base_run_id`` where missing."""
    runs = runs.copy()
    if "base_run_id" in drift.columns:
        bases = drift.dropna(subset=["base_run_id"]).groupby("run_id")["base_run_id"].unique()
        for i in runs.index[runs["parent_run_id"].isna()]:
            found = bases.get(runs.at[i, "run_id"], [])
            if len(found) > 1:
                raise DriftError(f"run {runs.at[i, 'run_id']} has drift against several bases {list(found)} and no "
                                 "parent_run_id in the run table: name its parent in study.json")
            if len(found) == 1:
                runs.at[i, "parent_run_id"] = found[0]
    runs = runs[runs["parent_run_id"].notna()]
    if runs["role"].notna().any():
        kept = runs[runs["role"].isin(options.roles)]
        if kept.empty:
            raise DriftError(f"no run with role in {list(options.roles)} (roles present: "
                             f"{sorted(runs['role'].dropna().unique())}): set the relate option roles")
        runs = kept
    if runs.empty:
        raise DriftError("no run has a parent (parent_run_id in the run table or base_run_id in the drift records): "
                         "relate needs fine-tuned runs and the runs they were fine-tuned from")
    runs = runs.copy()
    runs["parent_run_id"] = runs["parent_run_id"].astype(str)
    return runs


def asr_changes(asr: pd.DataFrame, runs: pd.DataFrame, options: RelateOptions) -> pd.DataFrame:
    """ASR of each run minus its parent's, per judge and evaluation language (columns run_id, judge, eval_lang, ...)."""
    a = as_frame(asr, "ASR", ["run_id", "judge", "lang", "metric", "value"])
    filters = {"label": "harmful", "category": options.category, "metric": options.asr_metric}
    for col, want in filters.items():
        if col in a.columns:
            a = a[a[col].astype(str) == want]
    a = a[a["lang"] != "all"]
    if options.judges:
        a = a[a["judge"].isin(options.judges)]
    if options.eval_langs:
        a = a[a["lang"].isin(options.eval_langs)]
    a = a.assign(run_id=a["run_id"].astype(str), n=a["n"] if "n" in a.columns else np.nan)
    keys = ["run_id", "judge", "lang"]
    if a.duplicated(keys).any():
        raise DriftError(f"the ASR table has several {options.asr_metric} rows per (run_id, judge, lang): pass one "
                         "asr.csv, or set the relate options category/judges")
    cell = a[keys + ["value", "n"]]
    mine = runs[["run_id", "parent_run_id"]].merge(cell.rename(columns={"value": "asr_run", "n": "n_asr"}),
                                                   on="run_id")
    theirs = cell.rename(columns={"run_id": "parent_run_id", "value": "asr_parent"}).drop(columns="n")
    ch = mine.merge(theirs, on=["parent_run_id", "judge", "lang"]).rename(columns={"lang": "eval_lang"})
    ch["asr_change"] = ch["asr_run"] - ch["asr_parent"]
    ch = ch.dropna(subset=["asr_change"])
    if ch.empty:
        raise DriftError(f"no {options.asr_metric} of a fine-tuned run and of its parent on the same judge and "
                         "language in the ASR table: judge the completions of the runs and their parents together "
                         "(drift judge), and check the judges/eval_langs options")
    return ch.assign(asr_metric=options.asr_metric)


def drift_values(drift: pd.DataFrame, runs: pd.DataFrame, options: RelateOptions) -> pd.DataFrame:
    """Drift rows of the selected runs against their parents (columns run_id, UNIT_KEYS, lang, value)."""
    d = drift.copy()
    d["run_id"] = d["run_id"].astype(str)
    for col, default in (("site", "none"), ("position", "none")):
        d[col] = d[col].astype(str) if col in d.columns else default
    measures = options.measures or tuple(m for m in DEFAULT_MEASURES if m in set(d["metric"]))
    if not measures:
        raise DriftError(f"the drift records hold none of the default measures {list(DEFAULT_MEASURES)}: name the "
                         f"measures to relate (found {sorted(d['metric'].unique())[:12]})")
    d = d[d["metric"].isin(measures)].merge(runs[["run_id", "parent_run_id"]], on="run_id")
    if "base_run_id" in d.columns:
        d = d[d["base_run_id"].isna() | (d["base_run_id"].astype(str) == d["parent_run_id"])]
    d = d.rename(columns={"metric": "measure"})
    d["layer"] = d["layer"].astype(int)
    d = d[["run_id", *UNIT_KEYS, "lang", "value"]]
    if d.empty:
        raise DriftError(f"no drift records of measures {list(measures)} for the related runs against their "
                         "parents: compare each fine-tuned run with its parent (drift compare)")
    if d.duplicated(["run_id", *UNIT_KEYS, "lang"]).any():
        raise DriftError("the drift records hold several values per (run_id, site, position, layer, lang, metric): "
                         "pass each run's drift file once")
    return d


def _pick_lang(base: pd.DataFrame, values: pd.DataFrame, keys: list[str], mode: str, name: str) -> pd.DataFrame:
    """Add ``name`` (and ``name_lang``) from ``values``: the eval language's value, else the pooled one (by mode)."""
    exact = values.rename(columns={"lang": "eval_lang", "value": "_exact"})
    pooled = values[values["lang"] == "all"].drop(columns="lang").rename(columns={"value": "_pooled"})
    base = base.merge(exact, on=keys + ["eval_lang"], how="left").merge(pooled, on=keys, how="left")
    use_exact = base["_exact"].notna() if mode in ("match", "strict") else pd.Series(False, index=base.index)
    base[name] = np.where(use_exact, base["_exact"], np.nan if mode == "strict" else base["_pooled"])
    base[f"{name}_lang"] = np.where(use_exact, base["eval_lang"], np.where(base[name].notna(), "all", None))
    return base.drop(columns=["_exact", "_pooled"])


def capability_changes(capability: Any, runs: pd.DataFrame, options: RelateOptions) -> pd.DataFrame | None:
    """Capability of each run minus its parent's, per language (columns run_id, lang, value), or None."""
    if capability is None or (isinstance(capability, pd.DataFrame) and capability.empty):
        return None
    c = as_frame(capability, "capability", ["run_id", "metric", "value"])
    c = c.assign(run_id=c["run_id"].astype(str), suite=c.get("suite", "none"), lang=c.get("lang", "all"))
    if "subject" in c.columns:
        c = c[c["subject"].astype(str) == "all"]
    pairs = sorted({f"{s}:{m}" for s, m in zip(c["suite"], c["metric"])})
    spec = options.capability_metric
    if spec is None:
        if len(pairs) != 1:
            raise DriftError(f"capability records hold several measures {pairs[:10]}: choose one with the relate "
                             "option capability_metric='suite:metric'")
        spec = pairs[0]
    suite, _, metric = spec.rpartition(":")
    c = c[(c["metric"] == metric) & ((c["suite"] == suite) if suite else True)]
    if suite == "" and c["suite"].nunique() > 1:
        raise DriftError(f"capability metric {metric!r} is in several suites: name one as 'suite:{metric}'")
    if c.empty:
        raise DriftError(f"no capability records of {spec!r} (found {pairs[:10]}): set capability_metric")
    cell = c.groupby(["run_id", "lang"], as_index=False)["value"].mean()
    mine = runs[["run_id", "parent_run_id"]].merge(cell, on="run_id")
    theirs = cell.rename(columns={"run_id": "parent_run_id", "value": "_parent"})
    ch = mine.merge(theirs, on=["parent_run_id", "lang"])
    return ch.assign(value=ch["value"] - ch["_parent"])[["run_id", "lang", "value"]]


def join_records(drift: Any, asr: Any, runs: Any, capability: Any = None,
                 options: RelateOptions | None = None) -> pd.DataFrame:
    """One row per (run, judge, eval language, site, position, layer, measure): drift, ASR change, capability change.

    Args:
        drift: Drift records (``drift compare``): run_id, base_run_id, site, layer, position, lang, metric, value.
        asr: ASR records (``asr.csv``): run_id, judge, label, lang, category, metric, value, n.
        runs: Run metadata (see ``load_runs``): run_id, parent_run_id, role, model, ft_lang, seed, epochs.
        capability: Optional capability records: run_id, suite, lang, subject, metric, value.
        options: Join options (drift_lang, capability_metric, judges, ...).

    Returns:
        The joined table with the columns ``JOINED_COLUMNS`` (``drift_lang`` says which prompts the drift was
        measured on; rows whose drift is missing are dropped).
    """
    options = options or RelateOptions()
    d = as_frame(drift, "drift", ["run_id", "layer", "lang", "metric", "value"])
    selected = select_runs(load_runs(runs), d, options)
    ch = asr_changes(asr, selected, options)
    dv = drift_values(d, selected, options)
    units = dv[["run_id", *UNIT_KEYS]].drop_duplicates()
    out = _pick_lang(ch.merge(units, on="run_id"), dv, ["run_id", *UNIT_KEYS], options.drift_lang, "drift")
    out = out.dropna(subset=["drift"])
    if out.empty:
        raise DriftError("no run has drift on the prompts of its evaluation languages: compare with per-language "
                         "groups (drift compare keeps them by default) or use drift_lang='match' or 'pooled'")
    cap = capability_changes(capability, selected, options)
    if cap is None:
        out["capability_change"] = np.nan
    else:
        out = _pick_lang(out, cap, ["run_id"], options.capability_lang, "capability_change")
        out = out.drop(columns="capability_change_lang")
    meta = selected.drop(columns="parent_run_id")
    out = out.merge(meta[[c for c in meta.columns if c in JOINED_COLUMNS]], on="run_id", how="left")
    return out[JOINED_COLUMNS].sort_values(["judge", "site", "position", "measure", "layer", "eval_lang", "run_id"]
                                           ).reset_index(drop=True)
