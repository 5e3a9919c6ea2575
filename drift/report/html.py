"""The study report: one self-contained HTML file (plotly.js embedded once, opens offline) plus its tables as CSV.

:func:`build_report` reads whatever a study folder holds (see :func:`drift.report.load_study`), builds each section
whose inputs exist, and writes ``report/index.html`` and ``report/tables/*.csv`` through temporary names. The report
shows aggregate numbers only: it never reads or embeds completion text.
"""

from __future__ import annotations

import html
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from drift.errors import DriftError
from drift.report import figures as F
from drift.report.load import Study, load_study
from drift.report.provenance import provenance_html, table_html

GENERATOR = "polydrift report"
TABLES_MARKER = ".polydrift-report-tables"
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
HARMFUL_NOTE = ("This study folder contains harmful text: <code>completions/</code> and <code>judged/</code> hold "
                "model outputs to harmful prompts. This report shows aggregate numbers only and embeds no completion "
                "text; share the report and its tables, not the folder.")


@dataclass
class _Page:
    """The figures counted and the tables collected while the sections are built."""

    study: Study
    tables_dir: str = "tables"
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    n_figures: int = 0

    def figure(self, parts: list[str], make: Callable, *args, **kwargs) -> None:
        """Append a figure's HTML to ``parts``, or a note saying why it was skipped."""
        try:
            fig = make(*args, **kwargs)
        except DriftError as e:
            parts.append(f"<p class='note'>Figure skipped: {html.escape(str(e))}</p>")
            return
        except (KeyError, ValueError, TypeError) as e:  # records of an unexpected shape: keep the rest of the report
            parts.append(f"<p class='note'>Figure skipped: {make.__name__} could not read these records "
                         f"({type(e).__name__}: {html.escape(str(e))})</p>")
            return
        self.n_figures += 1
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"figure-{self.n_figures}",
                                 config=PLOT_CONFIG, default_width="100%"))

    def table(self, name: str, df: pd.DataFrame | None) -> str:
        """Register ``df`` to be written as ``tables/name``; return a link to it."""
        if df is None:
            return ""
        self.tables[name] = df
        href = html.escape(f"{self.tables_dir}/{name}", quote=True)
        return f"<p class='tables'>Table: <a href='{href}'>{html.escape(name)}</a></p>"


def _drift(p: _Page) -> list[str] | None:
    s = p.study
    if s.drift is None:
        return None
    parts = ["<p>Representation drift of each run against its parent, per layer and language (pooled: "
             "<code>all</code>). CKA and cosine near 1 mean little change; <code>rel_norm_change</code> and the "
             "projection shifts are 0 without change.</p>", p.table("drift.csv", s.drift)]
    for m in [m for m in F.drift_measures(s.drift) if m != "direction_cosine"]:
        parts.append(f"<h3>{html.escape(m)}</h3>")
        p.figure(parts, F.drift_heatmap, s.drift, m, s.run_labels)
        p.figure(parts, F.drift_lines, s.drift, m, s.run_labels)
    return parts


def _directions(p: _Page) -> list[str] | None:
    s = p.study
    has_drift = s.drift is not None and "direction_cosine" in set(s.drift["metric"])
    if s.directions is None and s.base_ft_directions is None and not has_drift:
        return None
    parts = ["<p>Difference-of-means refusal directions (harmful minus harmless). Across languages within a run, "
             "and between the parent's and the run's directions; the slider picks the layer.</p>"]
    if s.directions is not None:
        parts += ["<h3>Across languages, per run</h3>", p.table("direction_cosines.csv", s.directions)]
        p.figure(parts, F.direction_matrix, s.directions, s.run_labels)
    if s.base_ft_directions is not None:
        parts += ["<h3>Parent vs fine-tuned, across languages</h3>",
                  p.table("base_ft_direction_cosines.csv", s.base_ft_directions)]
        p.figure(parts, F.direction_matrix, s.base_ft_directions, s.run_labels,
                 title="Cosine of the parent's direction (rows) with the run's (columns)",
                 x_title="run language", y_title="parent language")
    if has_drift:
        parts.append("<h3>Parent vs fine-tuned, same language, per layer</h3>")
        p.figure(parts, F.drift_heatmap, s.drift, "direction_cosine", s.run_labels)
        p.figure(parts, F.drift_lines, s.drift, "direction_cosine", s.run_labels)
    return parts


def _probes(p: _Page) -> list[str] | None:
    s = p.study
    if s.probes is None:
        return None
    metrics = set(s.probes["metric"])
    parts = ["<p>Linear probes per layer, cross-validated over prompt groups (95% Wilson intervals).</p>",
             p.table("probes.csv", s.probes)]
    p.figure(parts, F.probe_lines, s.probes, "accuracy", s.run_labels)
    if "selectivity" in metrics:
        p.figure(parts, F.probe_lines, s.probes, "selectivity", s.run_labels)
    if "transfer_accuracy" in metrics:
        parts.append("<h3>Transfer across languages</h3>")
        p.figure(parts, F.transfer_matrix, s.probes, s.run_labels)
    if "base_to_ft_accuracy" in metrics:
        parts.append("<h3>From the parent model to the fine-tuned one</h3>")
        p.figure(parts, F.base_to_ft_lines, s.probes, s.run_labels)
    return parts


def _behaviour(p: _Page) -> list[str] | None:
    s = p.study
    if s.asr is None and s.asr_change is None and s.agreement is None:
        return None
    parts = ["<p>Attack success rate (ASR = compliance / (compliance + refusal) on harmful prompts); incoherent "
             "completions are counted apart, never as refusal or compliance.</p>"]
    if s.asr is not None:
        parts.append(p.table("asr.csv", s.asr))
        p.figure(parts, F.asr_bars, s.asr, s.run_labels)
        if "over_refusal" in set(s.asr.get("metric", [])):
            p.figure(parts, F.asr_bars, s.asr, s.run_labels, metric="over_refusal", label="harmless")
    if s.asr_change is not None:
        parts += ["<h3>ASR change</h3>", p.table("asr_change.csv", s.asr_change)]
        p.figure(parts, F.asr_change_bars, s.asr_change, s.run_labels)
    if s.agreement is not None:
        parts += ["<h3>Judge agreement</h3>", p.table("agreement.csv", s.agreement)]
        p.figure(parts, F.agreement_heatmap, s.agreement, s.run_labels)
    if s.asr is not None:
        parts.append("<h3>Incoherence</h3>")
        p.figure(parts, F.incoherence_bars, s.asr, s.run_labels)
    return parts


def _capability(p: _Page) -> list[str] | None:
    s = p.study
    if s.capability is None:
        return None
    parts = ["<p>Capability of each run, to tell safety drift apart from general damage.</p>",
             p.table("capability.csv", s.capability)]
    p.figure(parts, F.capability_bars, s.capability, s.run_labels)
    return parts


SUMMARY_COLUMNS = ["judge", "measure", "eval_lang", "lang", "metric", "best_layer", "layer", "value", "spearman",
                   "ci_low", "ci_high", "p_adj", "significant", "n_runs", "drift_coef", "drift_coef_p_adj", "flags"]


def _relate_points(p: _Page, judge: str | None, parts: list[str]) -> pd.DataFrame | None:
    """Scatter points: the relate stage's joined table, else drift records joined with the ASR tables here."""
    s = p.study
    try:
        if s.relate_joined is not None:
            return F.relate_points(s.relate_joined, judge)
        if s.drift is not None and s.asr is not None:
            return F.drift_asr_points(s.drift, s.asr, s.asr_change, judge=F.pick_judge(s.asr["judge"], judge))
    except DriftError as e:
        parts.append(f"<p class='note'>Drift vs ASR points skipped: {html.escape(str(e))}</p>")
    return None


def _relate(p: _Page) -> list[str] | None:
    s = p.study
    if s.relate is None and s.relate_joined is None and (s.drift is None or s.asr is None):
        return None
    relate = None
    judge = s.primary_judge
    parts = ["<p>Does a run's drift at a layer predict its ASR change against its parent? Correlations across "
             "fine-tuned runs come from the relate stage (adjusted for multiple comparisons); scatter plots show "
             "one point per fine-tuned run and evaluation language.</p>"]
    if s.relate is not None:
        try:
            relate = F.normalise_relate(s.relate, judge)
        except DriftError as e:
            parts.append(f"<p class='note'>relate/relate.csv skipped: {html.escape(str(e))}</p>")
    if relate is not None:
        parts.append(p.table("relate.csv", s.relate))
        p.figure(parts, F.relate_lines, s.relate, judge=judge)
    if s.relate_summary is not None:
        summary = s.relate_summary
        if "judge" in summary.columns:
            summary = summary[summary["judge"].astype(str) == F.pick_judge(summary["judge"], judge)]
        parts += ["<h3>Strongest layer per measure</h3>",
                  table_html(summary[[c for c in SUMMARY_COLUMNS if c in summary.columns]]),
                  p.table("relate_summary.csv", s.relate_summary)]
    elif relate is None:
        parts.append("<p class='note'>No usable relate output (relate/relate.csv): correlations are not shown.</p>")
    points = _relate_points(p, judge, parts)
    if points is not None and len(points):
        parts.append(p.table("drift_vs_asr.csv", points))
        present = set(points["measure"])
        measures = [m for m in F.DRIFT_MEASURES if m in present] + sorted(present - set(F.DRIFT_MEASURES))
        for m in measures:
            p.figure(parts, F.drift_asr_scatter, points, m, s.relate, s.run_labels)
    return parts


SECTIONS = (("drift", "Representation drift", _drift), ("directions", "Refusal directions", _directions),
            ("probes", "Probes", _probes), ("behaviour", "Refusal behaviour (ASR)", _behaviour),
            ("capability", "Capability", _capability), ("relate", "Drift vs ASR change", _relate))

STYLE = """body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1400px;padding:0 24px;color:#222}
h1{margin-top:24px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:40px}
.warning{background:#fff4e5;border-left:5px solid #e69f00;padding:10px 14px}
.synthetic{background:#fde8e8;border-left:5px solid #d55e00;padding:10px 14px}
.note{color:#666;font-size:90%}#report-status{font-size:90%;color:#555;margin:8px 0}
table.data{border-collapse:collapse;font-size:85%;margin:8px 0}table.data td,table.data th{border:1px solid #ddd;
padding:3px 8px;text-align:left}pre{background:#f6f6f6;padding:8px;overflow:auto;max-height:400px;font-size:80%}
nav ul{columns:2}"""

ERROR_HOOK = ("window.__reportErrors=[];window.addEventListener('error',function(e){"
              "window.__reportErrors.push(String(e.message||e));});")

STATUS_SCRIPT = """(function(){
var el=document.getElementById('report-status'),tries=0;
function check(){var divs=document.querySelectorAll('.plotly-graph-div'),n=0;
for(var i=0;i<divs.length;i++){if(divs[i]._fullLayout&&divs[i].querySelector('.main-svg')){n++;}}
el.setAttribute('data-figures',divs.length);el.setAttribute('data-rendered',n);
el.setAttribute('data-errors',window.__reportErrors.length);
if(n===divs.length){el.setAttribute('data-status','complete');
el.textContent='All '+n+' figures drew.';return;}
if(++tries>100){el.setAttribute('data-status','incomplete');
el.textContent='Only '+n+' of '+divs.length+' figures drew.';
console.error('Error: polydrift report: only '+n+' of '+divs.length+' figures rendered');return;}
setTimeout(check,100);}
window.addEventListener('load',function(){setTimeout(check,0);});})();"""


def _page(p: _Page, sections: list[tuple[str, str, str]]) -> str:
    from plotly.offline import get_plotlyjs

    s = p.study
    name = html.escape(str(s.manifest.get("name", s.root.name)))
    toc = "".join(f"<li><a href='#{sid}'>{html.escape(title)}</a></li>" for sid, title, _ in sections)
    body = "\n".join(f"<section id='{sid}'><h2>{html.escape(title)}</h2>\n{content}</section>"
                     for sid, title, content in sections)
    synthetic = ("<p class='synthetic'><b>Synthetic data.</b> This study was generated by "
                 "<code>drift.report.demo_study</code>: its numbers were not measured on any model.</p>"
                 if s.synthetic else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="{GENERATOR}">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>polydrift report: {name}</title>
<style>{STYLE}</style><script>{ERROR_HOOK}</script>
<script type="text/javascript">{get_plotlyjs()}</script></head>
<body><h1>polydrift report: {name}</h1>{synthetic}
<p class="warning"><b>Harmful text.</b> {HARMFUL_NOTE}</p>
<div id="report-status" data-expected="{p.n_figures}" data-figures="0" data-rendered="0" data-errors="0"
data-status="pending">Drawing {p.n_figures} figures (needs JavaScript).</div>
<nav><h2>Contents</h2><ul>{toc}</ul></nav>
{body}
<script>{STATUS_SCRIPT}</script></body></html>
"""


def _notes_html(notes: list[str]) -> str:
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"<ul>{items}</ul>" if notes else "<p>Every input the report knows was found.</p>"


def _check_target(out: Path) -> None:
    if out.suffix.lower() not in (".html", ".htm"):
        raise DriftError(f"report file {out} must end in .html: give --out a path such as report/index.html")
    if out.exists():
        with open(out, encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
        if GENERATOR not in head:
            raise DriftError(f"{out} exists and is not a polydrift report: choose another --out")


def _write_tables(tables: dict[str, pd.DataFrame], folder: Path) -> None:
    """Write the tables to a fresh folder, then swap it in place of the previous report's tables."""
    if folder.exists() and not (folder / TABLES_MARKER).exists():
        raise DriftError(f"{folder} exists and was not written by the report: move it or choose another --out")
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / TABLES_MARKER).write_text("tables of a polydrift report; rebuilt by `drift report`\n", encoding="utf-8")
    for name, df in tables.items():
        df.to_csv(tmp / name, index=False)
    old = folder.with_name(f"{folder.name}.old-{os.getpid()}")
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def build_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Build the self-contained HTML report of a study folder and write the tables behind its figures as CSV.

    Each section appears when its inputs exist; a figure whose records lack columns is replaced by a note. A previous
    report at ``out`` is replaced (the report is derived from the folder), any other file is refused.

    Args:
        run_dir: The study folder written by ``drift run`` (or :func:`drift.report.demo_study`).
        out: The HTML file (default ``RUN_DIR/report/index.html``). Tables go to ``tables/`` beside an
            ``index.html``, else to ``<stem>-tables/``.

    Returns:
        The path of the HTML file.
    """
    study = load_study(run_dir)
    out = Path(out) if out is not None else study.root / "report" / "index.html"
    _check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tables_dir = "tables" if out.name == "index.html" else f"{out.stem}-tables"
    page = _Page(study, tables_dir)
    sections = []
    for sid, title, build in SECTIONS:
        parts = build(page)
        if parts is not None:
            sections.append((sid, title, "\n".join(parts)))
    prov, prov_tables = provenance_html(study)
    page.tables.update(prov_tables)
    sections += [("provenance", "Provenance", prov), ("notes", "Notes on missing inputs", _notes_html(study.notes))]
    _write_tables(page.tables, out.parent / tables_dir)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(_page(page, sections), encoding="utf-8")
    os.replace(tmp, out)
    return out
