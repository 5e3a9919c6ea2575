"""Helpers shared by the figure functions: column checks, ordering, subplot grids, bands, bars and layer sliders.

Plotly is imported inside the functions that build figures, so importing this module stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from drift.errors import DriftError

if TYPE_CHECKING:
    import plotly.graph_objects as go

POOLED = "all"
DRIFT_MEASURES = ("linear_cka", "debiased_cka", "cosine", "rel_norm_change", "direction_cosine",
                  "proj_shift_harmful", "proj_shift_harmless")
RECORD_COLUMNS = ["run_id", "layer", "lang", "metric", "value"]
# A colour-blind-safe qualitative palette (Okabe and Ito), then a few extra tones.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000", "#999999",
           "#882255", "#44AA99", "#117733")


def require(df: pd.DataFrame | None, columns: Sequence[str], what: str) -> pd.DataFrame:
    """Return ``df`` if it has every column in ``columns``; else raise a DriftError naming the missing ones."""
    if df is None:
        raise DriftError(f"{what}: no records given")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DriftError(f"{what} needs column(s) {', '.join(missing)} but the records have "
                         f"{', '.join(map(str, df.columns))}: pass the records written by that stage")
    return df


def nonempty(df: pd.DataFrame, what: str) -> pd.DataFrame:
    """Return ``df`` unless it has no rows, in which case raise a DriftError saying what was looked for."""
    if df.empty:
        raise DriftError(f"{what}: no matching rows in the records given")
    return df


def lang_order(langs) -> list[str]:
    """Languages sorted, with the pooled ``all`` last."""
    langs = {str(x) for x in langs}
    return sorted(langs - {POOLED}) + ([POOLED] if POOLED in langs else [])


def run_order(run_ids, labels: Mapping[str, str] | None) -> list[str]:
    """Run ids in the order of ``labels`` (a study's run order), then the rest sorted."""
    present = list(dict.fromkeys(str(r) for r in run_ids))
    first = [r for r in (labels or {}) if r in present]
    return first + sorted(set(present) - set(first))


def label_of(run_id: str, labels: Mapping[str, str] | None) -> str:
    """Display label of a run (its id when no label is known)."""
    return (labels or {}).get(run_id, run_id)


def pick_slice(df: pd.DataFrame, site: str | None = None, position: str | None = None):
    """Keep one site and one position: the ones given, else ``resid_post``/``last`` when present, else the first.

    Returns:
        (rows, site, position); site or position is None when the records have no such column.
    """
    for col, want, default in (("site", site, "resid_post"), ("position", position, "last")):
        if col not in df.columns:
            continue
        values = sorted(df[col].dropna().astype(str).unique())
        choice = str(want) if want is not None else (default if default in values else (values[0] if values else None))
        if want is not None and choice not in values:
            raise DriftError(f"no records at {col} {want!r}: the records have {', '.join(values)}")
        df = df[df[col].astype(str) == choice]
        if col == "site":
            site = choice
        else:
            position = choice
    return df, site, position


def main_drift_rows(drift: pd.DataFrame, site: str | None = None, position: str | None = None):
    """Drift rows of the treatment comparison (not noise floors) at one site and position; see ``pick_slice``."""
    require(drift, RECORD_COLUMNS, "drift records")
    df = drift
    if "comparison" in df.columns:
        df = df[df["comparison"].fillna("drift").astype(str) == "drift"]
    return pick_slice(df, site, position)


def drift_measures(drift: pd.DataFrame) -> list[str]:
    """The drift measures present in ``drift``, in the canonical order."""
    present = set(require(drift, ["metric"], "drift records")["metric"].astype(str))
    return [m for m in DRIFT_MEASURES if m in present]


def rgba(hex_colour: str, alpha: float) -> str:
    """``#RRGGBB`` as an ``rgba(...)`` string."""
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def grid(titles: Sequence[str], cols: int = 3, row_height: int = 300, **kwargs) -> tuple[go.Figure, list]:
    """A subplot grid with one cell per title; returns the figure and the (row, col) of each cell."""
    from plotly.subplots import make_subplots

    n = max(len(titles), 1)
    c = min(n, cols)
    r = math.ceil(n / c)
    fig = make_subplots(rows=r, cols=c, subplot_titles=list(titles) or None, **kwargs)
    fig.update_layout(template="plotly_white", height=row_height * r + 140, margin=dict(l=60, r=30, t=90, b=50))
    return fig, [(i // c + 1, i % c + 1) for i in range(n)]


def band(x, lo, hi, colour: str, group: str):
    """A filled confidence band between ``lo`` and ``hi`` (points with NaN bounds left out), or None."""
    import plotly.graph_objects as go

    x, lo, hi = np.asarray(x), np.asarray(lo, float), np.asarray(hi, float)
    ok = np.isfinite(lo) & np.isfinite(hi)
    if ok.sum() < 2:
        return None
    x, lo, hi = x[ok], lo[ok], hi[ok]
    return go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([hi, lo[::-1]]), fill="toself",
                      fillcolor=rgba(colour, 0.18), line=dict(width=0), hoverinfo="skip", showlegend=False,
                      legendgroup=group)


def add_lines(fig: go.Figure, df: pd.DataFrame, cell: tuple[int, int], line_col: str, colours: dict, first: bool,
              x_col: str = "layer") -> None:
    """One line per value of ``line_col`` (``value`` against ``x_col``) with ci_low/ci_high in the hover text.

    Bands are drawn for every line when there are at most three, else for the pooled line (``all``) only, so that
    overlapping bands do not hide the lines.
    """
    import plotly.graph_objects as go

    keys = [k for k in colours if k in set(df[line_col].astype(str))]
    banded = set(keys) if len(keys) <= 3 or POOLED not in keys else {POOLED}
    has_ci = {"ci_low", "ci_high"} <= set(df.columns)
    traces = []
    for key in keys:
        g = df[df[line_col].astype(str) == key].groupby(x_col, as_index=False).mean(numeric_only=True)
        g = g.sort_values(x_col)
        if has_ci and key in banded:
            b = band(g[x_col], g["ci_low"], g["ci_high"], colours[key], key)
            traces += [b] if b is not None else []
        ci = " [%{customdata[0]:.3f}, %{customdata[1]:.3f}]" if has_ci else ""
        traces.append(go.Scatter(x=g[x_col], y=g["value"], mode="lines+markers", name=key, legendgroup=key,
                                 showlegend=first, line=dict(color=colours[key], width=2), marker=dict(size=5),
                                 customdata=g[["ci_low", "ci_high"]].to_numpy() if has_ci else None,
                                 hovertemplate=f"{key}<br>{x_col} %{{x}}<br>%{{y:.3f}}{ci}<extra></extra>"))
    fig.add_traces(traces, rows=[cell[0]] * len(traces), cols=[cell[1]] * len(traces))


def add_bars(fig: go.Figure, df: pd.DataFrame, cell: tuple[int, int], x_col: str, bar_col: str, names: dict,
             colours: dict, first: bool, x_order: Sequence[str]) -> None:
    """Grouped bars: x = ``x_col``, one bar series per ``bar_col`` value, error bars from ci_low/ci_high if present."""
    import plotly.graph_objects as go

    traces = []
    for key, name in names.items():
        g = df[df[bar_col].astype(str) == key].set_index(x_col).reindex(x_order)
        if g["value"].isna().all():
            continue
        err = None
        if {"ci_low", "ci_high"} <= set(g.columns):
            err = dict(type="data", array=(g["ci_high"] - g["value"]).clip(lower=0).to_numpy(),
                       arrayminus=(g["value"] - g["ci_low"]).clip(lower=0).to_numpy(), thickness=1.2, width=3)
        hover = f"{name}<br>%{{x}}: %{{y:.3f}}" + ("<br>n=%{customdata}" if "n" in g.columns else "")
        traces.append(go.Bar(x=list(x_order), y=g["value"], name=name, legendgroup=key, showlegend=first,
                             marker_color=colours[key], error_y=err,
                             customdata=g["n"].to_numpy() if "n" in g.columns else None,
                             hovertemplate=hover + "<extra></extra>"))
    fig.add_traces(traces, rows=[cell[0]] * len(traces), cols=[cell[1]] * len(traces))


def colours_for(keys: Sequence[str]) -> dict[str, str]:
    """A stable colour per key, in order."""
    return {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(keys)}


def layer_slider(fig: go.Figure, trace_layers: Sequence[int], layers: Sequence[int], active: int,
                 titles: Mapping[int, str] | None = None) -> None:
    """Show the traces of one layer at a time, chosen with a slider (traces tagged by ``trace_layers``).

    ``titles`` (layer -> figure title) changes the title with the layer.
    """
    for trace, layer in zip(fig.data, trace_layers):
        trace.visible = layer == active
    steps = [dict(method="update" if titles else "restyle", label=str(layer),
                  args=[{"visible": [t == layer for t in trace_layers]}] + ([{"title.text": titles[layer]}]
                                                                            if titles else []))
             for layer in layers]
    fig.update_layout(sliders=[dict(active=list(layers).index(active), currentvalue=dict(prefix="layer "),
                                    pad=dict(t=50), steps=steps)])
    fig.update_layout(height=fig.layout.height + 80)


def layer_axis(fig: go.Figure, layers) -> None:
    """Integer ticks on the x (layer) axes: every layer up to 12 layers, else about 12 ticks."""
    layers = [int(x) for x in layers]
    span = max(layers) - min(layers) if layers else 0
    fig.update_xaxes(title_text="layer", tick0=0, dtick=max(1, math.ceil(span / 12)))


def middle(values: Sequence[int]) -> int:
    """The middle element of a sorted sequence."""
    values = sorted(values)
    return values[len(values) // 2]
