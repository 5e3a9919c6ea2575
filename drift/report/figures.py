"""Figures of a study: pure functions, long-form records (pandas DataFrames) in, a plotly ``Figure`` out.

Every function reads the columns written by one stage, documents them, and raises :class:`~drift.DriftError`
naming any that are missing. ``labels`` (run id -> display label, in study order) is optional everywhere; see
:attr:`drift.report.Study.run_labels`. Notebooks call these functions directly::

    from drift.report import figures, load_study
    study = load_study("cache/study")
    figures.drift_heatmap(study.drift, "linear_cka", labels=study.run_labels).show()
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from drift.errors import DriftError
from drift.report._plot import (
    DRIFT_MEASURES,
    POOLED,
    RECORD_COLUMNS,
    add_bars,
    add_lines,
    colours_for,
    drift_measures,
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
    run_order,
)
from drift.report.figures_relate import (
    drift_asr_points,
    drift_asr_scatter,
    normalise_relate,
    pick_judge,
    relate_lines,
    relate_points,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

Labels = Mapping[str, str] | None
__all__ = [
    "DRIFT_MEASURES", "agreement_heatmap", "asr_bars", "asr_change_bars", "base_to_ft_lines", "capability_bars",
    "direction_matrix", "drift_asr_points", "drift_asr_scatter", "drift_heatmap", "drift_lines", "drift_measures",
    "incoherence_bars", "main_drift_rows", "normalise_relate", "pick_judge", "probe_lines", "relate_lines",
    "relate_points", "transfer_matrix",
]


def _where(site, position) -> str:
    parts = [p for p in (site, f"position {position}" if position is not None else None) if p]
    return f" ({', '.join(parts)})" if parts else ""


def drift_heatmap(drift: pd.DataFrame, metric: str, labels: Labels = None, site: str | None = None,
                  position: str | None = None) -> go.Figure:
    """Layer x language heatmap of one drift measure, one panel per fine-tuned run.

    Needs columns ``run_id``, ``layer``, ``lang``, ``metric``, ``value`` (``drift compare`` records; ``site``,
    ``position`` and ``comparison`` are used when present).
    """
    import plotly.graph_objects as go

    df, site, position = main_drift_rows(drift, site, position)
    df = nonempty(df[df["metric"] == metric], f"drift heatmap of {metric}")
    runs = run_order(df["run_id"], labels)
    fig, cells = grid([label_of(r, labels) for r in runs], cols=2, row_height=260)
    langs = lang_order(df["lang"])
    for run, cell in zip(runs, cells):
        t = df[df["run_id"] == run].pivot_table(index="lang", columns="layer", values="value", aggfunc="mean")
        t = t.reindex(index=[x for x in langs if x in t.index])
        fig.add_trace(go.Heatmap(z=t.to_numpy(), x=[int(c) for c in t.columns], y=list(t.index),
                                 coloraxis="coloraxis", name=label_of(run, labels),
                                 hovertemplate="layer %{x}<br>%{y}: %{z:.3f}<extra></extra>"), row=cell[0], col=cell[1])
    fig.update_layout(title=f"{metric} by layer and language{_where(site, position)}",
                      coloraxis=dict(colorscale="Viridis", colorbar=dict(title=metric)))
    layer_axis(fig, df["layer"])
    fig.update_yaxes(title_text="language", autorange="reversed")
    return fig


def drift_lines(drift: pd.DataFrame, metric: str, labels: Labels = None, site: str | None = None,
                position: str | None = None) -> go.Figure:
    """Per-layer lines of one drift measure per language, with ci_low/ci_high bands, one panel per run.

    Needs ``run_id``, ``layer``, ``lang``, ``metric``, ``value`` (plus ``ci_low``/``ci_high`` for bands). Dotted grey:
    the pooled ``{metric}_random_p95`` floor when present; dashed grey: the pooled noise floor (rows with
    ``comparison = noise_floor`` whose ``base_run_id`` is the run).
    """
    import plotly.graph_objects as go

    df, site, position = main_drift_rows(drift, site, position)
    rows = nonempty(df[df["metric"] == metric], f"drift lines of {metric}")
    runs = run_order(rows["run_id"], labels)
    fig, cells = grid([label_of(r, labels) for r in runs], cols=2)
    colours = colours_for(lang_order(rows["lang"]))
    floors, shown = _floors(drift, df, metric, site, position), set()
    for i, (run, cell) in enumerate(zip(runs, cells)):
        add_lines(fig, rows[rows["run_id"] == run], cell, "lang", colours, first=i == 0)
        for name, dash, f in floors:
            g = f[f["run_id"] == run].sort_values("layer")
            if len(g):
                fig.add_trace(go.Scatter(x=g["layer"], y=g["value"], mode="lines", name=name, legendgroup=name,
                                         showlegend=name not in shown, line=dict(color="#777777", dash=dash,
                                                                                 width=1.5)), row=cell[0], col=cell[1])
                shown.add(name)
    fig.update_layout(title=f"{metric} per layer{_where(site, position)}, 95% intervals where available")
    layer_axis(fig, rows["layer"])
    fig.update_yaxes(title_text=metric)
    return fig


def _floors(drift, main, metric, site, position) -> list[tuple[str, str, pd.DataFrame]]:
    out = []
    rnd = main[(main["metric"] == f"{metric}_random_p95") & (main["lang"] == POOLED)]
    if len(rnd):
        out.append(("random 95th percentile", "dot", rnd))
    nf = drift[drift["comparison"].astype(str) == "noise_floor"] if "comparison" in drift.columns else drift[:0]
    if len(nf) and "base_run_id" in nf.columns:
        for col, want in (("site", site), ("position", position)):
            if want is not None and col in nf.columns:
                nf = nf[nf[col].astype(str) == str(want)]
        nf = nf[(nf["metric"] == metric) & (nf["lang"] == POOLED)].assign(run_id=lambda d: d["base_run_id"])
        if len(nf):
            out.append(("noise floor", "dash", nf))
    return out


def _matrix(df: pd.DataFrame, labels: Labels, layer: int | None, title: str, x_title: str, y_title: str,
            zrange: tuple[float, float], colorscale: str) -> go.Figure:
    """Heatmaps of lang_a (rows) x lang_b (columns), one panel per run, one layer at a time on a slider."""
    import plotly.graph_objects as go

    runs = run_order(df["run_id"], labels)
    layers = sorted(int(x) for x in df["layer"].unique())
    active = layer if layer is not None else middle(layers)
    if active not in layers:
        raise DriftError(f"no matrix at layer {active}: the records have layers {layers}")
    fig, cells = grid([label_of(r, labels) for r in runs], cols=2, row_height=340)
    rows_l, cols_l = lang_order(df["lang_a"]), lang_order(df["lang_b"])
    trace_layers = []
    for lay in layers:
        for run, cell in zip(runs, cells):
            g = df[(df["run_id"] == run) & (df["layer"] == lay)]
            t = g.pivot_table(index="lang_a", columns="lang_b", values="value", aggfunc="mean")
            t = t.reindex(index=[x for x in rows_l if x in t.index], columns=[x for x in cols_l if x in t.columns])
            fig.add_trace(go.Heatmap(z=t.to_numpy(), x=list(t.columns), y=list(t.index), coloraxis="coloraxis",
                                     texttemplate="%{z:.2f}", name=f"{label_of(run, labels)} layer {lay}",
                                     hovertemplate=f"layer {lay}<br>%{{y}} / %{{x}}: %{{z:.3f}}<extra></extra>"),
                          row=cell[0], col=cell[1])
            trace_layers.append(lay)
    fig.update_layout(title=title, coloraxis=dict(colorscale=colorscale, cmin=zrange[0], cmax=zrange[1]))
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title, autorange="reversed")
    layer_slider(fig, trace_layers, layers, active)
    return fig


def direction_matrix(cosines: pd.DataFrame, labels: Labels = None, site: str | None = None,
                     position: str | None = None, layer: int | None = None,
                     title: str = "Refusal-direction cosine across languages", x_title: str = "language",
                     y_title: str = "language") -> go.Figure:
    """Cosine matrix of refusal directions, language x language, per run, with a layer slider.

    Needs ``run_id``, ``layer``, ``lang_a``, ``lang_b``, ``value`` (``directions/*/cosine_matrix.csv`` with its run id,
    or base-vs-fine-tuned cosines where ``lang_a`` is the base model's language and ``lang_b`` the fine-tuned one's).
    """
    require(cosines, ["run_id", "layer", "lang_a", "lang_b", "value"], "direction cosine matrix")
    df, site, position = pick_slice(cosines, site, position)
    nonempty(df, "direction cosine matrix")
    return _matrix(df, labels, layer, f"{title}{_where(site, position)}", x_title, y_title, (-1, 1), "RdBu")


def probe_lines(probes: pd.DataFrame, metric: str = "accuracy", labels: Labels = None, site: str | None = None,
                position: str | None = None) -> go.Figure:
    """Probe score per layer and language with its interval, one panel per run (and target when several).

    Needs ``run_id``, ``layer``, ``lang``, ``metric``, ``value`` (``drift probe`` records; ``target``, ``ci_low``,
    ``ci_high`` used when present).
    """
    require(probes, RECORD_COLUMNS, "probe records")
    df, site, position = pick_slice(probes, site, position)
    df = nonempty(df[df["metric"] == metric], f"probe {metric}").copy()
    df["panel"] = df["run_id"].astype(str).map(lambda r: label_of(r, labels))
    if "target" in df.columns and df["target"].nunique() > 1:
        df["panel"] = df["panel"] + " · " + df["target"].astype(str)
    panels = list(dict.fromkeys(df.set_index("run_id").loc[run_order(df["run_id"], labels), "panel"]))
    fig, cells = grid(panels, cols=2)
    colours = colours_for(lang_order(df["lang"]))
    for i, (panel, cell) in enumerate(zip(panels, cells)):
        add_lines(fig, df[df["panel"] == panel], cell, "lang", colours, first=i == 0)
    fig.update_layout(title=f"Probe {metric} per layer{_where(site, position)}")
    layer_axis(fig, df["layer"])
    fig.update_yaxes(title_text=metric)
    return fig


def transfer_matrix(probes: pd.DataFrame, labels: Labels = None, site: str | None = None,
                    position: str | None = None, layer: int | None = None) -> go.Figure:
    """Cross-lingual probe transfer (train language x test language accuracy) per run, with a layer slider.

    Needs ``run_id``, ``layer``, ``metric``, ``value``, ``train_lang``, ``test_lang`` (rows with
    ``metric = transfer_accuracy``).
    """
    require(probes, ["run_id", "layer", "metric", "value", "train_lang", "test_lang"], "probe transfer matrix")
    df, site, position = pick_slice(probes, site, position)
    df = nonempty(df[df["metric"] == "transfer_accuracy"], "probe transfer matrix (metric transfer_accuracy)")
    df = df.rename(columns={"train_lang": "lang_a", "test_lang": "lang_b"})
    return _matrix(df, labels, layer, f"Probe transfer accuracy{_where(site, position)}", "test language",
                   "train language", (0, 1), "Viridis")


def base_to_ft_lines(probes: pd.DataFrame, labels: Labels = None, site: str | None = None,
                     position: str | None = None, lang: str = POOLED) -> go.Figure:
    """Accuracy of probes trained on the base model, tested on base vs fine-tuned activations, per layer.

    Needs ``run_id``, ``layer``, ``lang``, ``metric``, ``value`` (metrics ``base_to_base_accuracy`` and
    ``base_to_ft_accuracy``).
    """
    require(probes, RECORD_COLUMNS, "base-to-fine-tuned probe records")
    df, site, position = pick_slice(probes, site, position)
    df = df[df["metric"].isin(["base_to_base_accuracy", "base_to_ft_accuracy"]) & (df["lang"] == lang)]
    nonempty(df, "base-to-fine-tuned probe transfer")
    runs = run_order(df["run_id"], labels)
    fig, cells = grid([label_of(r, labels) for r in runs], cols=2)
    colours = colours_for(["base_to_base_accuracy", "base_to_ft_accuracy"])
    for i, (run, cell) in enumerate(zip(runs, cells)):
        add_lines(fig, df[df["run_id"] == run], cell, "metric", colours, first=i == 0)
    fig.update_layout(title=f"Probes trained on the parent model, tested on parent vs fine-tuned ({lang})")
    layer_axis(fig, df["layer"])
    fig.update_yaxes(title_text="accuracy")
    return fig


def _judge_rows(asr: pd.DataFrame, judge: str | None) -> tuple[pd.DataFrame, list[str]]:
    judges = sorted(asr["judge"].astype(str).unique())
    if judge is not None and judge not in judges:
        raise DriftError(f"no verdicts of judge {judge!r}: the table has {', '.join(judges)}")
    return (asr, judges) if judge is None else (asr[asr["judge"] == judge], [judge])


def asr_bars(asr: pd.DataFrame, labels: Labels = None, metric: str = "asr", label: str = "harmful",
             judge: str | None = None) -> go.Figure:
    """ASR per language with 95% Wilson intervals, grouped bars for each run, one panel per judge.

    Needs ``run_id``, ``judge``, ``label``, ``lang``, ``category``, ``metric``, ``value``, ``ci_low``, ``ci_high``
    (``judged/asr.csv``); rows pooled over categories (``category = all``).
    """
    cols = ["run_id", "judge", "label", "lang", "category", "metric", "value", "ci_low", "ci_high"]
    df = require(asr, cols, "ASR table")
    df = df[(df["metric"] == metric) & (df["label"] == label) & (df["category"].astype(str) == POOLED)]
    df, judges = _judge_rows(nonempty(df, f"ASR bars ({metric}, {label})"), judge)
    return _bars_by(df, judges, "judge", labels, f"{metric} on {label} prompts (95% Wilson intervals)", metric)


def incoherence_bars(asr: pd.DataFrame, labels: Labels = None, judge: str | None = None) -> go.Figure:
    """Share of incoherent completions per language and run, one panel per prompt label (one judge's table).

    Needs the ``judged/asr.csv`` columns (see :func:`asr_bars`); uses ``metric = incoherent_rate``. The coherence
    pass overrides every judge, so the first judge (sorted) is shown unless ``judge`` is given.
    """
    cols = ["run_id", "judge", "label", "lang", "category", "metric", "value"]
    df = require(asr, cols, "incoherence table")
    df = nonempty(df[(df["metric"] == "incoherent_rate") & (df["category"].astype(str) == POOLED)],
                  "incoherence rates")
    judge = judge or sorted(df["judge"].astype(str).unique())[0]
    df, _ = _judge_rows(df, judge)
    panels = [x for x in ("harmful", "harmless") if x in set(df["label"])] or sorted(df["label"].unique())
    return _bars_by(df, panels, "label", labels, f"Incoherent completions (judge table {judge})", "share incoherent")


def _bars_by(df: pd.DataFrame, panels: list[str], panel_col: str, labels: Labels, title: str, y_title: str,
             bar_col: str = "run_id", names: dict | None = None) -> go.Figure:
    keys = run_order(df[bar_col], labels) if names is None else list(names)
    names = names or {r: label_of(r, labels) for r in keys}
    colours = colours_for(keys)
    fig, cells = grid([f"{panel_col} {p}" for p in panels], cols=1, row_height=320)
    for i, (p, cell) in enumerate(zip(panels, cells)):
        g = df[df[panel_col].astype(str) == p]
        add_bars(fig, g, cell, "lang", bar_col, names, colours, i == 0, lang_order(g["lang"]))
    fig.update_layout(title=title, barmode="group")
    fig.update_xaxes(title_text="language")
    fig.update_yaxes(title_text=y_title)
    return fig


def asr_change_bars(asr_change: pd.DataFrame, labels: Labels = None) -> go.Figure:
    """Paired ASR change per language (``run_b`` minus ``run_a``) with bootstrap intervals, one panel per judge.

    Needs ``run_a``, ``run_b``, ``judge``, ``lang``, ``diff``, ``ci_low``, ``ci_high`` (``judged/asr_change.csv``).
    """
    df = require(asr_change, ["run_a", "run_b", "judge", "lang", "diff", "ci_low", "ci_high"], "ASR change table")
    df = nonempty(df, "ASR change").assign(pair=lambda d: d["run_a"].astype(str) + "→" + d["run_b"].astype(str))
    df = df.rename(columns={"diff": "value"})
    pairs = list(dict.fromkeys(df["pair"]))
    names = {}
    for p in pairs:
        a, b = p.split("→", 1)
        names[p] = f"{label_of(a, labels)} → {label_of(b, labels)}"
    judges = sorted(df["judge"].astype(str).unique())
    return _bars_by(df, judges, "judge", labels, "ASR change on the same harmful prompts (paired bootstrap 95%)",
                    "ASR change", bar_col="pair", names=names)


def agreement_heatmap(agreement: pd.DataFrame, labels: Labels = None, lang: str = POOLED) -> go.Figure:
    """Judge x judge Cohen's kappa for one language, one panel per run.

    Needs ``run_id``, ``lang``, ``judge_a``, ``judge_b``, ``kappa`` (``judged/agreement.csv``).
    """
    import plotly.graph_objects as go

    df = require(agreement, ["run_id", "lang", "judge_a", "judge_b", "kappa"], "judge agreement table")
    df = nonempty(df[df["lang"].astype(str) == lang], f"judge agreement ({lang})")
    judges = sorted(set(df["judge_a"].astype(str)) | set(df["judge_b"].astype(str)))
    runs = run_order(df["run_id"], labels)
    fig, cells = grid([label_of(r, labels) for r in runs], cols=4, row_height=90 + 50 * len(judges))
    for run, cell in zip(runs, cells):
        mat = pd.DataFrame(np.eye(len(judges)), index=judges, columns=judges)
        for _, r in df[df["run_id"] == run].iterrows():
            mat.loc[str(r["judge_a"]), str(r["judge_b"])] = mat.loc[str(r["judge_b"]), str(r["judge_a"])] = r["kappa"]
        fig.add_trace(go.Heatmap(z=mat.to_numpy(), x=judges, y=judges, coloraxis="coloraxis", texttemplate="%{z:.2f}",
                                 hovertemplate="%{y} vs %{x}: kappa %{z:.3f}<extra></extra>"), row=cell[0], col=cell[1])
    fig.update_layout(title=f"Judge agreement (Cohen's kappa, {lang})",
                      coloraxis=dict(colorscale="RdBu", cmin=-1, cmax=1, colorbar=dict(title="kappa")))
    fig.update_yaxes(autorange="reversed")
    return fig


def capability_bars(capability: pd.DataFrame, labels: Labels = None, subject: str = POOLED) -> go.Figure:
    """Capability per language and run, one panel per (suite, metric), with intervals where recorded.

    Needs ``run_id``, ``suite``, ``lang``, ``metric``, ``value`` (``capability.csv``; ``subject``, ``ci_low``,
    ``ci_high``, ``n`` used when present).
    """
    df = require(capability, ["run_id", "suite", "lang", "metric", "value"], "capability records")
    if "subject" in df.columns:
        df = df[df["subject"].astype(str) == subject]
    df = nonempty(df, "capability").assign(panel=lambda d: d["suite"].astype(str) + ": " + d["metric"].astype(str))
    panels = list(dict.fromkeys(df.sort_values(["suite", "metric"])["panel"]))
    fig = _bars_by(df, panels, "panel", labels, "Capability per run (95% intervals where recorded)", "")
    for ann in fig.layout.annotations:  # subplot titles: drop the "panel " prefix
        ann.text = ann.text.removeprefix("panel ")
    return fig
