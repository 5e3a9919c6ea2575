"""``relate``: the joined table in, long-form relation records and a per-measure summary out."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from drift.relate.correlate import correlate
from drift.relate.join import UNIT_KEYS, join_records
from drift.relate.options import RelateOptions
from drift.relate.regress import regress
from drift.relate.tables import RELATE_COLUMNS, finish, summarise

MAX_PERM = 200_000


@dataclass(frozen=True)
class RelateTables:
    """What ``relate`` returns.

    Attributes:
        joined: One row per (run, judge, eval language, site, position, layer, measure) (the scatter points).
        relations: ``relate.csv``: one row per (judge, site, position, measure, layer, eval language, statistic).
        summary: ``summary.csv``: the strongest layer per (judge, site, position, measure, eval language).
        options: The options used.
    """

    joined: pd.DataFrame
    relations: pd.DataFrame
    summary: pd.DataFrame
    options: RelateOptions = field(default_factory=RelateOptions)


@dataclass(frozen=True)
class _Batch:
    """Units (site, position, measure, layer) over the same complete runs of one judge and scope."""

    key: dict
    langs: tuple[str, ...]
    run_ids: tuple[str, ...]
    units: pd.DataFrame
    drift: np.ndarray  # (run, lang, unit)
    asr: np.ndarray  # (run, lang)
    rows: pd.DataFrame  # joined rows of these runs and units (for the regressions)
    n_dropped: int


def _batches(joined: pd.DataFrame, options: RelateOptions) -> list[_Batch]:
    """Split the joined table into batches: per judge and scope (each eval language, then all of them pooled)."""
    out = []
    for (judge, metric), g in joined.groupby(["judge", "asr_metric"], sort=True):
        langs = sorted(g["eval_lang"].unique())
        scopes = [(lang, (lang,)) for lang in langs]
        if options.pooled and len(langs) > 1:
            scopes.append(("all", tuple(langs)))
        for label, scope in scopes:
            sub = g[g["eval_lang"].isin(scope)]
            out += _scope_batches(sub, {"judge": judge, "asr_metric": metric, "eval_lang": label}, scope)
    return out


def _scope_batches(sub: pd.DataFrame, key: dict, langs: tuple[str, ...]) -> list[_Batch]:
    asr = sub.drop_duplicates(["run_id", "eval_lang"]).pivot(index="run_id", columns="eval_lang",
                                                             values="asr_change").reindex(columns=list(langs))
    asr = asr.iloc[np.lexsort(asr.to_numpy().T[::-1])]  # runs in data order: results do not depend on run names
    wide = sub.pivot_table(index="run_id", columns=[*UNIT_KEYS, "eval_lang"], values="drift", aggfunc="first")
    units = wide.columns.droplevel("eval_lang").unique()
    cube = wide.reindex(index=asr.index, columns=pd.MultiIndex.from_tuples(
        [(*u, lang) for u in units for lang in langs], names=wide.columns.names)).to_numpy()
    cube = cube.reshape(len(asr), len(units), len(langs)).transpose(0, 2, 1)  # (run, lang, unit)
    complete = np.isfinite(cube).all(1) & np.isfinite(asr.to_numpy()).all(1)[:, None]  # (run, unit)
    patterns = pd.Series([complete[:, j].tobytes() for j in range(len(units))])
    batches = []
    for cols in patterns.groupby(patterns).groups.values():
        cols = np.asarray(cols)
        runs = complete[:, cols[0]]
        unit_df = pd.DataFrame(list(units[cols]), columns=UNIT_KEYS)
        run_ids = tuple(asr.index[runs])
        rows = sub[sub["run_id"].isin(run_ids)].merge(unit_df, on=UNIT_KEYS)
        batches.append(_Batch(key, langs, run_ids, unit_df, cube[runs][:, :, cols],
                              asr.to_numpy()[runs], rows, int(len(asr) - runs.sum())))
    return batches


def n_permutations(options: RelateOptions, n_tests: int) -> int:
    """The permutation count: ``options.n_perm``, or enough for ``n_tests`` corrected tests to reach ``alpha``."""
    if options.n_perm is not None:
        return options.n_perm
    return int(min(MAX_PERM, max(2000, math.ceil(4 * n_tests / options.alpha))))


def _batch_records(b: _Batch, options: RelateOptions, n_perm: int) -> list[dict]:
    """Long-form rows of one batch: Spearman, Pearson and the drift coefficient per unit."""
    stats = {name: correlate(b.drift, b.asr, name == "spearman", options.n_boot, n_perm, options.seed,
                             options.level) for name in ("spearman", "pearson")}
    groups = dict(iter(b.rows.groupby(UNIT_KEYS, sort=False)))
    pooled = len(b.langs) > 1
    records = []
    for j, unit in enumerate(b.units.itertuples(index=False)):
        rows = groups.get(tuple(unit), b.rows.iloc[:0])
        base = {**b.key, **unit._asdict(), "drift_lang": _drift_lang(rows, b.key["eval_lang"]),
                "n_runs": len(b.run_ids), "n_dropped": b.n_dropped}
        for name, res in stats.items():
            records.append({**base, "metric": name, "value": res.value[j], "ci_low": res.ci_low[j],
                            "ci_high": res.ci_high[j], "p_value": res.p_value[j], "n": len(b.run_ids) * len(b.langs),
                            "method": res.method, "p_min": res.p_min, "reg_flags": ()})
        if options.regression != "none":
            reg = regress(rows, pooled, options.regression, options.min_clusters, options.level)
            records.append({**base, "metric": "drift_coef", "value": reg.coef, "ci_low": reg.ci_low,
                            "ci_high": reg.ci_high, "p_value": reg.p_value, "n": reg.n, "method": reg.method,
                            "p_min": np.nan, "reg_flags": reg.flags})
    return records


def _drift_lang(rows: pd.DataFrame, scope: str) -> str:
    """Which prompts the drift was measured on: the eval language (``match`` when pooled), ``all``, or ``mixed``."""
    used = set(rows["drift_lang"].dropna())
    if used == {"all"}:
        return "all"
    if "all" in used:
        return "mixed"
    return "match" if scope == "all" else scope


def relate(drift: Any, asr: Any, runs: Any, capability: Any = None,
           options: RelateOptions | None = None) -> RelateTables:
    """Relate drift to ASR change across fine-tuned runs, per layer, measure and evaluation language.

    For every (judge, site, position, measure, layer) and every evaluation language (and all of them pooled), the
    Spearman and Pearson correlation between drift and ASR change across runs, with a bootstrap interval over runs
    and a permutation p-value, and the drift coefficient of a regression that controls for capability change (and
    fine-tuning language, evaluation language and seed where the data allow). P-values are adjusted across all
    layers x languages x measures x judges, one family per statistic.

    Args:
        drift: Drift records (long-form, ``drift compare``).
        asr: ASR records (``asr.csv``).
        runs: Run metadata: study.json (path or dict), run records or manifests, or a DataFrame.
        capability: Optional capability records (``capability.csv``).
        options: See ``RelateOptions``.

    Returns:
        The joined table, ``relate.csv`` and ``summary.csv`` as DataFrames.
    """
    options = options or RelateOptions()
    joined = join_records(drift, asr, runs, capability, options)
    batches = _batches(joined, options)
    n_tests = sum(len(b.units) for b in batches)
    n_perm = n_permutations(options, n_tests)
    records = [r for b in batches for r in _batch_records(b, options, n_perm)]
    relations = finish(pd.DataFrame.from_records(records), options) if records else \
        pd.DataFrame(columns=RELATE_COLUMNS)
    return RelateTables(joined, relations, summarise(relations, options), options)
