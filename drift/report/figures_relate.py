"""Figures relating drift to ASR change: the relate stage's correlations per layer and drift-vs-ASR scatter plots.

Pure functions like those of :mod:`drift.report.figures` (which re-exports them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

from drift.report._plot import (
    DRIFT_MEASURES,
    POOLED,
    RECORD_COLUMNS,
    add_lines,
    colours_for,
    grid,
    label_of,
    lang_order,
    layer_axis,
    layer_slider,
    main_drift_rows,
    middle,
    nonempty,
    pick_slice,
    require,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

Labels = Mapping[str, str] | None


def pick_judge(judges, preferred: str | None = None) -> str | None:
    """``preferred`` when among ``judges``, else ``majority`` when present, else the first sorted (None if empty)."""
    judges = sorted({str(j) for j in judges})
    for choice in (preferred, "majority"):
        if choice in judges:
            return choice
    return judges[0] if judges else None


def _one_slice(df: pd.DataFrame, judge: str | None) -> pd.DataFrame:
    """Keep one judge, one ASR metric (``asr`` when present) and one site/position."""
    if "judge" in df.columns:
        df = df[df["judge"].astype(str) == pick_judge(df["judge"], judge)]
    if "asr_metric" in df.columns:
        df = df[df["asr_metric"].astype(str) == ("asr" if "asr" in set(df["asr_metric"]) else df["asr_metric"].iloc[0])]
    return pick_slice(df)[0]


def normalise_relate(relate: pd.DataFrame, judge: str | None = None) -> pd.DataFrame:
    """Relate rows as one row per (measure, layer, lang) with ``spearman`` (and its ci_low, ci_high, p_adj).

    Reads both the long form of :mod:`drift.relate` (``metric`` in spearman/pearson/drift_coef with ``value``, and
    ``eval_lang``) and a wide form with ``spearman`` and ``pearson`` columns (``metric`` may name the measure,
    ``eval_lang`` the language). Keeps one judge (``judge``, else ``majority``, else the first), ASR metric and site.

    Raises:
        DriftError: ``measure``, ``layer``, ``lang`` or the Spearman values are missing.
    """
    df = relate.copy()
    if "lang" not in df.columns and "eval_lang" in df.columns:
        df = df.rename(columns={"eval_lang": "lang"})
    if "spearman" not in df.columns and {"measure", "metric", "value"} <= set(df.columns):
        df = _one_slice(df, judge)
        keys = ["measure", "layer", "lang"]
        wide = df[df["metric"] == "spearman"].rename(columns={"value": "spearman"}).drop(columns="metric")
        if "pearson" in set(df["metric"]):
            pear = df[df["metric"] == "pearson"][keys + ["value"]].rename(columns={"value": "pearson"})
            wide = wide.merge(pear.drop_duplicates(keys), on=keys, how="left")
        df = wide
    elif "measure" not in df.columns and "metric" in df.columns:
        df = _one_slice(df.rename(columns={"metric": "measure"}), judge)
    else:
        df = _one_slice(df, judge)
    return require(df, ["measure", "layer", "lang", "spearman"], "relate table").reset_index(drop=True)


def relate_points(joined: pd.DataFrame, judge: str | None = None) -> pd.DataFrame:
    """The relate stage's ``joined.csv`` as scatter points (see :func:`drift_asr_points` for the columns).

    Needs ``run_id``, ``eval_lang`` (or ``lang``), ``layer``, ``measure``, ``drift``, ``asr_change``; keeps one judge,
    ASR metric and site/position.
    """
    df = joined.rename(columns={"eval_lang": "lang"}) if "lang" not in joined.columns else joined
    df = _one_slice(require(df, ["run_id", "lang", "layer", "measure", "drift", "asr_change"], "joined table"), judge)
    if "parent_run_id" in df.columns and "base_run_id" not in df.columns:
        df = df.rename(columns={"parent_run_id": "base_run_id"})
    return df.assign(source="relate/joined.csv").reset_index(drop=True)


def relate_lines(relate: pd.DataFrame, alpha: float = 0.05, judge: str | None = None) -> go.Figure:
    """Spearman correlation of drift with ASR change per layer, one line per evaluation language, one panel per
    measure; bands from ``ci_low``/``ci_high``, stars where ``p_adj`` < ``alpha``.

    Needs the relate table's ``measure``, ``layer``, ``eval_lang`` (or ``lang``) and Spearman values (see
    :func:`normalise_relate`).
    """
    import plotly.graph_objects as go

    df = nonempty(normalise_relate(relate, judge), "relate table").assign(value=lambda d: d["spearman"])
    judges = sorted(set(df["judge"].astype(str))) if "judge" in df.columns else []
    measures = list(dict.fromkeys(df["measure"].astype(str)))
    fig, cells = grid(measures, cols=2)
    colours = colours_for(lang_order(df["lang"]))
    for i, (m, cell) in enumerate(zip(measures, cells)):
        g = df[df["measure"].astype(str) == m]
        add_lines(fig, g, cell, "lang", colours, first=i == 0)
        if "p_adj" in g.columns:
            sig = g[g["p_adj"] < alpha]
            fig.add_trace(go.Scatter(x=sig["layer"], y=sig["spearman"], mode="markers", name=f"p_adj < {alpha}",
                                     legendgroup="sig", showlegend=i == 0,
                                     marker=dict(symbol="star", size=12, color="#000000")), row=cell[0], col=cell[1])
    by = f", judge {judges[0]}" if len(judges) == 1 else ""
    fig.update_layout(title=f"Correlation of drift with ASR change across runs, per layer (Spearman, 95% CI{by})")
    layer_axis(fig, df["layer"])
    fig.update_yaxes(title_text="Spearman ρ", range=[-1.05, 1.05])
    return fig


def _asr_changes(df: pd.DataFrame, a: pd.Series, asr_change: pd.DataFrame | None, judge: str) -> pd.DataFrame:
    """ASR change of each (run, parent) pair of ``df`` per language: paired when available, else a difference."""
    changes = []
    have = set(a.index.get_level_values(0))
    for run, base in df[["run_id", "base_run_id"]].drop_duplicates().itertuples(index=False):
        paired = None
        if asr_change is not None and {"run_a", "run_b", "judge", "lang", "diff"} <= set(asr_change.columns):
            c = asr_change
            paired = c[(c["run_a"] == base) & (c["run_b"] == run) & (c["judge"] == judge)]
        if paired is not None and len(paired):
            changes += [(run, lang, d, "asr_change.csv") for lang, d in zip(paired["lang"], paired["diff"])]
        elif run in have and base in have:
            diff = (a.loc[run] - a.loc[base]).dropna()
            changes += [(run, lang, d, "asr.csv difference") for lang, d in diff.items()]
    return pd.DataFrame(changes, columns=["run_id", "lang", "asr_change", "source"])


def drift_asr_points(drift: pd.DataFrame, asr: pd.DataFrame, asr_change: pd.DataFrame | None = None,
                     judge: str | None = None, site: str | None = None, position: str | None = None,
                     measures: tuple[str, ...] = DRIFT_MEASURES) -> pd.DataFrame:
    """Join drift records with the ASR change of the same run against the same parent, per language and layer.

    The ASR change of run R against its parent P (``base_run_id`` of R's drift records) is the paired ``diff`` from
    ``asr_change`` where ``run_a = P`` and ``run_b = R``, else ASR(R) - ASR(P) from ``asr`` (harmful prompts, all
    categories). ``judge`` defaults to ``majority`` when present, else the first judge. Only ``measures`` are kept.
    Needs drift columns ``run_id``, ``base_run_id``, ``layer``, ``lang``, ``metric``, ``value`` and the
    ``judged/asr.csv`` columns. Returns columns run_id, base_run_id, judge, lang, layer, measure, drift, asr_change,
    source.
    """
    df, _, _ = main_drift_rows(require(drift, [*RECORD_COLUMNS, "base_run_id"], "drift records"), site, position)
    df = df[df["metric"].isin(measures)]
    a = require(asr, ["run_id", "judge", "label", "lang", "category", "metric", "value"], "ASR table")
    a = a[(a["metric"] == "asr") & (a["label"] == "harmful") & (a["category"].astype(str) == POOLED)]
    judge = judge or ("majority" if "majority" in set(a["judge"]) else min(a["judge"].astype(str), default=None))
    a = a[a["judge"] == judge].set_index(["run_id", "lang"])["value"]
    ch = _asr_changes(df, a, asr_change, judge)
    out = df.merge(ch, on=["run_id", "lang"], how="inner").rename(columns={"metric": "measure", "value": "drift"})
    cols = ["run_id", "base_run_id", "judge", "lang", "layer", "measure", "drift", "asr_change", "source"]
    return out.assign(judge=judge)[cols].reset_index(drop=True)


def _legend_name(lang: str, rel: pd.DataFrame | None, layer: int) -> str:
    if rel is None or (layer, lang) not in rel.index:
        return lang
    r = rel.loc[(layer, lang)]
    r = r.iloc[0] if isinstance(r, pd.DataFrame) else r
    return f"{lang} ρ={r['spearman']:.2f}" + (f", p_adj={r['p_adj']:.2g}" if "p_adj" in r.index else "")


def drift_asr_scatter(points: pd.DataFrame, measure: str, relate: pd.DataFrame | None = None, labels: Labels = None,
                      layer: int | None = None) -> go.Figure:
    """Drift of each run against ASR change, one point per (run, language), one layer at a time on a slider.

    Needs ``run_id``, ``lang``, ``layer``, ``measure``, ``drift``, ``asr_change`` (see :func:`drift_asr_points`).
    With ``relate`` (see :func:`relate_lines`), legend entries carry that layer's Spearman ρ and adjusted p-value per
    language, and the slider starts at the layer with the largest |ρ|.
    """
    import plotly.graph_objects as go

    cols = ["run_id", "lang", "layer", "measure", "drift", "asr_change"]
    df = require(points, cols, "drift vs ASR points")
    df = nonempty(df[df["measure"] == measure], f"drift vs ASR points of {measure}")
    if (df["lang"] != POOLED).any():
        df = df[df["lang"] != POOLED]
    judge = str(df["judge"].iloc[0]) if "judge" in df.columns and df["judge"].nunique() == 1 else None
    rel = None
    if relate is not None:
        rel = normalise_relate(relate, judge)
        rel = rel[rel["measure"].astype(str) == measure].set_index(["layer", "lang"])
    layers = sorted(int(x) for x in df["layer"].unique())
    if layer is None and rel is not None and len(rel):
        best = int(rel["spearman"].abs().groupby(level=0).max().idxmax())
        layer = best if best in layers else None
    active = layer if layer is not None else middle(layers)
    fig, _ = grid([measure], cols=1, row_height=420)
    colours = colours_for(lang_order(df["lang"]))
    traces, trace_layers = [], []
    for lay in layers:
        for lang, colour in colours.items():
            g = df[(df["layer"] == lay) & (df["lang"] == lang)]
            traces.append(go.Scatter(x=g["drift"], y=g["asr_change"], mode="markers",
                                     name=_legend_name(lang, rel, lay), text=[label_of(r, labels) for r in g["run_id"]],
                                     marker=dict(color=colour, size=10, line=dict(width=1, color="#333333")),
                                     hovertemplate="%{text}<br>drift %{x:.3f}<br>ASR change %{y:.3f}<extra></extra>"))
            trace_layers.append(lay)
    fig.add_traces(traces)
    head = f"{measure} drift vs ASR change, one point per fine-tuned run and language" + (
        f" (judge {judge})" if judge else "")
    titles = {lay: head + _pooled(rel, lay) for lay in layers}
    fig.update_layout(title=titles[active])
    fig.update_xaxes(title_text=f"{measure} (run vs its parent)")
    fig.update_yaxes(title_text="ASR change (run − parent)")
    layer_slider(fig, trace_layers, layers, active, titles)
    return fig


def _pooled(rel: pd.DataFrame | None, layer: int) -> str:
    """The pooled (all languages) correlation at ``layer``, for a title."""
    if rel is None or (layer, POOLED) not in rel.index:
        return ""
    return f"<br>layer {layer}, all languages pooled: {_legend_name(POOLED, rel, layer).removeprefix(POOLED + ' ')}"
