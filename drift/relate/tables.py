"""Multiple-comparison correction, flags and the per-measure summary of the relation records."""

from __future__ import annotations

import numpy as np
import pandas as pd

from drift.relate.options import RelateOptions
from drift.stats import adjust_pvalues

GROUP_KEYS = ["judge", "asr_metric", "site", "position", "measure", "eval_lang"]
RELATE_COLUMNS = [*GROUP_KEYS[:5], "layer", "eval_lang", "drift_lang", "metric", "value", "ci_low", "ci_high",
                  "p_value", "p_adj", "significant", "n", "n_runs", "correction", "family_size", "method", "flags"]
SUMMARY_COLUMNS = [*GROUP_KEYS, "metric", "best_layer", "value", "ci_low", "ci_high", "p_value", "p_adj",
                   "significant", "n_runs", "n_layers", "n_significant_layers", "significant_layers", "drift_coef",
                   "drift_coef_p_adj", "drift_coef_significant", "reg_method", "flags"]


def _flags(row: pd.Series, options: RelateOptions, resolution_ok: bool) -> str:
    flags = []
    if row["n_runs"] < options.min_runs:
        flags.append("few_runs")
    if row["n_dropped"]:
        flags.append("dropped_runs")
    if row["drift_lang"] in ("all", "mixed") and options.drift_lang == "match":
        flags.append("pooled_drift")
    if row["metric"] == "drift_coef" and not np.isfinite(row["value"]):
        flags.append("not_fit")
    elif row["n_runs"] >= 3 and not np.isfinite(row["value"]):
        flags.append("degenerate")
    if row["metric"] != "drift_coef" and not resolution_ok:
        flags.append("perm_resolution")
    flags += list(row["reg_flags"])
    return ";".join(flags)


def finish(records: pd.DataFrame, options: RelateOptions) -> pd.DataFrame:
    """Adjust p-values (one family per statistic, across layers x languages x measures x judges) and add flags."""
    df = records.copy()
    df["p_adj"] = np.nan
    df["family_size"] = 0
    for idx in df.groupby("metric").groups.values():
        p = df.loc[idx, "p_value"].to_numpy(float)
        df.loc[idx, "p_adj"] = adjust_pvalues(p, options.correction)
        df.loc[idx, "family_size"] = int(np.isfinite(p).sum())
    df["significant"] = df["p_adj"] < options.alpha
    df["correction"] = options.correction
    resolution_ok = ~(df["p_min"] * df["family_size"] >= options.alpha)
    df["flags"] = [_flags(r, options, ok) for (_, r), ok in zip(df.iterrows(), resolution_ok)]
    order = {"spearman": 0, "pearson": 1, "drift_coef": 2}
    df = df.assign(_o=df["metric"].map(order)).sort_values([*GROUP_KEYS, "layer", "_o"]).drop(columns="_o")
    return df[RELATE_COLUMNS].reset_index(drop=True)


def _no_estimate(n_runs: int, options: RelateOptions) -> str:
    return "no_estimate;few_runs" if n_runs < options.min_runs else "no_estimate"


def summarise(relations: pd.DataFrame, options: RelateOptions) -> pd.DataFrame:
    """The strongest layer per (judge, site, position, measure, eval language).

    The strongest layer has the smallest adjusted p-value of the primary statistic, ties broken by the larger absolute
    correlation; its drift coefficient (from the regression with controls) is reported beside it.
    """
    prim = relations[relations["metric"] == options.primary]
    coef = relations[relations["metric"] == "drift_coef"].set_index([*GROUP_KEYS, "layer"])
    rows = []
    for key, g in prim.groupby(GROUP_KEYS, sort=True):
        ranked = g.assign(_p=g["p_adj"].fillna(np.inf), _a=-g["value"].abs().fillna(-np.inf))
        best = ranked.sort_values(["_p", "_a", "layer"]).iloc[0]
        found = np.isfinite(best["value"])
        sig = g.loc[g["significant"], "layer"].astype(int).tolist()
        reg = coef.loc[(*key, best["layer"])] if found and (*key, best["layer"]) in coef.index else None
        rows.append({**dict(zip(GROUP_KEYS, key)), "metric": options.primary,
                     "best_layer": int(best["layer"]) if found else None,
                     **{c: best[c] if found else np.nan for c in ("value", "ci_low", "ci_high", "p_value", "p_adj")},
                     "significant": bool(best["significant"]) if found else False,
                     "n_runs": int(g["n_runs"].max()), "n_layers": len(g), "n_significant_layers": len(sig),
                     "significant_layers": ";".join(map(str, sorted(sig))),
                     "drift_coef": reg["value"] if reg is not None else np.nan,
                     "drift_coef_p_adj": reg["p_adj"] if reg is not None else np.nan,
                     "drift_coef_significant": bool(reg["significant"]) if reg is not None else False,
                     "reg_method": reg["method"] if reg is not None else "",
                     "flags": best["flags"] if found else _no_estimate(int(g["n_runs"].max()), options)})
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    out["best_layer"] = out["best_layer"].astype("Int64")
    return out
