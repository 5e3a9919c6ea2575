"""Capability-matched comparison of fine-tuning runs (language x seed x epochs).

Safety drift is only comparable between checkpoints that gained the same capability. For each fine-tuning language
and seed, the checkpoints along the training axis (epochs) trace a curve of outcome (ASR, a drift measure) against
capability gain; the outcome is read off each curve at a common capability level by linear interpolation (never
extrapolated), and compared with the unmatched comparison (every run at its last checkpoint). A conclusion "flips"
when the sign of the difference between two fine-tuning languages differs between the two comparisons.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from drift.errors import DriftError


def _interp(cap: np.ndarray, out: np.ndarray, level: float) -> float:
    order = np.argsort(cap)
    cap, out = cap[order], out[order]
    if len(cap) == 0 or not cap[0] <= level <= cap[-1]:
        return math.nan
    return float(np.interp(level, cap, out))


def match_capability(runs: pd.DataFrame, capability: str = "capability", outcome: str = "outcome",
                     group: str = "ft_lang", along: str = "epochs", level: float | None = None,
                     keys: tuple[str, ...] = ("seed",)) -> tuple[pd.DataFrame, float]:
    """Read every (group, seed) curve at one capability level and at its last checkpoint.

    Args:
        runs: One row per checkpoint with ``group``, ``along``, ``capability``, ``outcome`` and ``keys`` columns
            (add an evaluation-language column to ``keys`` to match per evaluation language).
        level: The capability level to compare at; default: the highest level every curve reaches (the minimum
            over curves of their maximum capability), so no curve is extrapolated.

    Returns:
        (table with group, keys, ``matched`` and ``unmatched`` outcome, ``unmatched_capability``, the level used).
    """
    missing = {capability, outcome, group, along, *keys} - set(runs.columns)
    if missing:
        raise DriftError(f"capability matching needs columns {sorted(missing)}")
    curves = runs.groupby([group, *keys])
    if level is None:
        level = float(curves[capability].max().min())
    rows = []
    for key, g in curves:
        key = key if isinstance(key, tuple) else (key,)
        last = g.sort_values(along).iloc[-1]
        rows.append({**dict(zip([group, *keys], key)),
                     "matched": _interp(g[capability].to_numpy(float), g[outcome].to_numpy(float), level),
                     "unmatched": float(last[outcome]), "unmatched_capability": float(last[capability]),
                     "n_checkpoints": len(g)})
    return pd.DataFrame(rows), level


def compare_matched(table: pd.DataFrame, group: str = "ft_lang", by: tuple[str, ...] = ()) -> pd.DataFrame:
    """Differences of mean outcome between every pair of groups, matched and unmatched, and whether they flip.

    Columns: ``a``, ``b``, ``by`` keys, ``diff_unmatched`` (mean(b) - mean(a) at the last checkpoints),
    ``diff_matched`` (at the common capability level), ``n_a``, ``n_b`` (seeds), ``flip`` (opposite signs).
    """
    out = []
    parts = table.groupby(list(by)) if by else [((), table)]
    for key, part in parts:
        key = key if isinstance(key, tuple) else (key,)
        means = part.groupby(group)[["matched", "unmatched"]].mean()
        counts = part.groupby(group)["matched"].count()
        for a, b in itertools.combinations(sorted(means.index), 2):
            du = means.loc[b, "unmatched"] - means.loc[a, "unmatched"]
            dm = means.loc[b, "matched"] - means.loc[a, "matched"]
            out.append({**dict(zip(by, key)), "a": a, "b": b, "diff_unmatched": du, "diff_matched": dm,
                        "n_a": int(counts[a]), "n_b": int(counts[b]),
                        "flip": bool(np.sign(du) != np.sign(dm)) if not (np.isnan(du) or np.isnan(dm)) else False})
    return pd.DataFrame(out)


def study_checkpoints(runs: list[dict], asr: pd.DataFrame, capability: pd.DataFrame, judge: str,
                      capability_metric: str = "task_accuracy") -> pd.DataFrame:
    """One row per (fine-tuned run, evaluation language): ASR change against the parent model state (harmful
    prompts, ``judge``) and the run's task capability, ready for :func:`match_capability` with
    ``keys=("seed", "eval_lang")``. Every run of a sweep is measured on the same held-out task data, so the
    capability level is comparable across runs."""
    a = asr[(asr["metric"] == "asr") & (asr["judge"] == judge) & (asr["label"] == "harmful")
            & (asr["category"] == "all") & (asr["lang"] != "all")].set_index(["run_id", "lang"])["value"]
    cap = capability[(capability["metric"] == capability_metric) & (capability["lang"] == "all")]
    cap = cap.drop_duplicates("run_id").set_index("run_id")["value"]
    rows = []
    for r in runs:
        parent = r.get("parent_run_id")
        if r.get("role") != "finetuned" or parent is None or r["run_id"] not in cap.index:
            continue
        for lang in sorted({lang for rid, lang in a.index if rid == r["run_id"]}):
            if (parent, lang) in a.index:
                rows.append({"run_id": r["run_id"], "ft_lang": r["ft_lang"], "seed": r["seed"],
                             "epochs": r["epochs"], "eval_lang": lang, "capability": float(cap[r["run_id"]]),
                             "outcome": float(a[(r["run_id"], lang)] - a[(parent, lang)])})
    return pd.DataFrame(rows, columns=["run_id", "ft_lang", "seed", "epochs", "eval_lang", "capability", "outcome"])
