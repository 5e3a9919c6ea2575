"""The study report: figure functions on synthetic records, the self-contained HTML, its tables, the CLI, and a
render in headless Chromium (skipped when Debian's ``chromium`` is not installed)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from drift import DriftError
from drift.report import build_report, demo_study, figures, load_study
from drift.report.demo import PLACEHOLDER

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = ("drift", "directions", "probes", "behaviour", "capability", "relate", "provenance", "notes")
TABLES = ("drift.csv", "probes.csv", "direction_cosines.csv", "base_ft_direction_cosines.csv", "asr.csv",
          "asr_change.csv", "agreement.csv", "capability.csv", "relate.csv", "relate_summary.csv", "drift_vs_asr.csv",
          "runs.csv", "versions.csv", "hashes.csv")


def make_study(path: Path, store: bool = True) -> Path:
    """A small synthetic study folder with every stage's tables (and, with ``store``, one real activation store)."""
    demo_study(path, seeds=(0, 1), n_layers=4, n_items=24)
    if store:
        (path / "stores").mkdir()
        shutil.copy(ROOT / "tests" / "fixtures" / "store-v1.0-float32.h5", path / "stores" / "fixture.h5")
    return path


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    return make_study(tmp_path_factory.mktemp("report") / "study")


@pytest.fixture(scope="module")
def study(study_dir):
    return load_study(study_dir)


@pytest.fixture(scope="module")
def report(study_dir) -> Path:
    return build_report(study_dir)


def _ft_runs(study) -> list[str]:
    return [r for r, p in zip(study.runs["run_id"], study.runs["parent_run_id"]) if isinstance(p, str)]


# ----------------------------------------------------------------------------------------------- synthetic schemas

def test_synthetic_records_have_the_producers_columns(study):
    """The generator writes the columns the real stages write (checked against the producing functions)."""
    from drift.capability.measures import _rec
    from drift.compare import _record
    from probes.sweep import score_records

    store = SimpleNamespace(run=SimpleNamespace(run_id="r"))
    drift_cols = set(_record(store, store, "resid_post", 0, "last", "en", "cosine", 1.0, 2)) | {"comparison"}
    assert set(study.drift.columns) == drift_cols
    probe_cols = set(score_records(np.array([0, 1]), np.array([0.2, 0.8]), np.array(["en", "en"]),
                                   {"run_id": "r", "site": "s", "layer": 0, "position": "last", "probe": "logistic",
                                    "target": "prompt"}, n_boot=0)[0])
    assert probe_cols <= set(study.probes.columns)
    assert {"train_lang", "test_lang", "base_run_id"} <= set(study.probes.columns)
    assert set(study.capability.columns) == set(_rec("r", "s", "en", "m", 1.0, 1))
    assert list(study.directions.columns[:6]) == ["site", "layer", "position", "lang_a", "lang_b", "value"]
    assert {"run_a", "run_b", "judge", "lang", "diff", "ci_low", "ci_high", "p_mcnemar"} <= set(study.asr_change)
    assert {"measure", "layer", "eval_lang", "metric", "value", "p_adj"} <= set(study.relate.columns)


def test_load_study_reads_every_input(study, study_dir):
    for name in ("drift", "probes", "directions", "base_ft_directions", "asr", "asr_change", "agreement",
                 "capability", "relate", "relate_summary", "relate_joined"):
        assert getattr(study, name) is not None and len(getattr(study, name)), name
    assert study.synthetic and study.primary_judge == "refusal-lexicon"
    assert list(study.runs["role"][:2]) == ["base", "aligned"]
    assert len(set(study.run_labels.values())) == len(study.runs)
    assert "stores/fixture.h5" in study.provenance and "judged/judge.meta.json" in study.provenance
    # directions are tied to runs through the .npz provenance, not the folder name
    assert set(study.directions["run_id"]) == set(study.runs["run_id"])


def test_base_ft_direction_cosines_match_the_drift_records(study):
    """The parent-vs-run cosine of the same language equals the direction_cosine the drift records hold."""
    d = study.drift
    d = d[(d["metric"] == "direction_cosine") & (d["comparison"] == "drift")].set_index(["run_id", "layer", "lang"])
    x = study.base_ft_directions
    same = x[x["lang_a"] == x["lang_b"]].rename(columns={"lang_a": "lang"})
    same = same.set_index(["run_id", "layer", "lang"])["value"]
    joined = d["value"].to_frame("drift").join(same.rename("matrix"), how="inner")
    assert len(joined) > 10
    np.testing.assert_allclose(joined["drift"].xs("en", level="lang"), joined["matrix"].xs("en", level="lang"),
                               atol=1e-9)


# ------------------------------------------------------------------------------------------------------- figures

def _titles(fig, axis: str) -> set[str]:
    return {getattr(fig.layout, k).title.text for k in fig.layout if k.startswith(axis)}


def test_drift_heatmap_and_lines(study):
    runs = _ft_runs(study)
    fig = figures.drift_heatmap(study.drift, "linear_cka", labels=study.run_labels)
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == len(runs)
    assert _titles(fig, "xaxis") == {"layer"} and _titles(fig, "yaxis") == {"language"}
    assert list(heat[0].x) == [0, 1, 2, 3] and heat[0].y[-1] == "all"
    assert study.run_labels[runs[0]] in [a.text for a in fig.layout.annotations]
    fig = figures.drift_lines(study.drift, "cosine", labels=study.run_labels)
    names = {t.name for t in fig.data}
    assert {"en", "all", "noise floor"} <= names  # the second seed is the first seed's noise floor
    assert any(t.fill == "toself" for t in fig.data)  # CI band
    fig = figures.drift_lines(study.drift, "direction_cosine")
    assert "random 95th percentile" in {t.name for t in fig.data}


def test_direction_matrices_have_a_layer_slider(study):
    runs = study.runs["run_id"].tolist()
    fig = figures.direction_matrix(study.directions, labels=study.run_labels)
    assert len(fig.data) == len(runs) * 4 and len(fig.layout.sliders[0].steps) == 4
    assert sum(bool(t.visible) for t in fig.data) == len(runs)
    assert fig.layout.coloraxis.cmin == -1 and fig.layout.coloraxis.cmax == 1
    step = fig.layout.sliders[0].steps[0]
    assert sum(step.args[0]["visible"]) == len(runs)
    fig = figures.direction_matrix(study.base_ft_directions, layer=3, x_title="run language",
                                   y_title="parent language")
    assert len(fig.data) == len(_ft_runs(study)) * 4 and fig.layout.sliders[0].active == 3
    assert _titles(fig, "xaxis") == {"run language"}


def test_probe_figures(study):
    fig = figures.probe_lines(study.probes, "accuracy", labels=study.run_labels)
    assert {"de", "en", "fr", "zh", "all"} <= {t.name for t in fig.data if t.mode == "lines+markers"}
    assert _titles(fig, "yaxis") == {"accuracy"}
    fig = figures.transfer_matrix(study.probes)
    assert _titles(fig, "xaxis") == {"test language"} and _titles(fig, "yaxis") == {"train language"}
    visible = [t for t in fig.data if t.visible]
    assert np.asarray(visible[0].z).shape == (4, 4)
    fig = figures.base_to_ft_lines(study.probes)
    assert {"base_to_base_accuracy", "base_to_ft_accuracy"} <= {t.name for t in fig.data}


def test_behaviour_figures(study):
    runs = study.runs["run_id"].tolist()
    fig = figures.asr_bars(study.asr, labels=study.run_labels)
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 2 * len(runs)  # two judges
    assert list(bars[0].x) == ["de", "en", "fr", "zh", "all"]
    assert bars[0].error_y.array is not None and bars[0].error_y.arrayminus is not None
    fig = figures.asr_change_bars(study.asr_change, labels=study.run_labels)
    assert "→" in fig.data[0].name and _titles(fig, "yaxis") == {"ASR change"}
    fig = figures.agreement_heatmap(study.agreement, labels=study.run_labels)
    z = np.asarray(fig.data[0].z, float)
    assert z.shape == (2, 2) and np.allclose(np.diag(z), 1) and -1 <= z[0, 1] <= 1
    fig = figures.incoherence_bars(study.asr)
    assert {a.text for a in fig.layout.annotations} == {"label harmful", "label harmless"}
    fig = figures.capability_bars(study.capability, labels=study.run_labels)
    assert "mcq: mcq_accuracy" in {a.text for a in fig.layout.annotations}


def test_relate_figures_read_long_and_wide_tables(study):
    fig = figures.relate_lines(study.relate)
    assert len(fig.layout.annotations) == len(set(study.relate["measure"]))
    assert "judge refusal-lexicon" in fig.layout.title.text
    wide = figures.normalise_relate(study.relate)
    assert {"spearman", "pearson", "lang"} <= set(wide.columns) and wide["judge"].nunique() == 1
    brief = wide.rename(columns={"measure": "metric"})[["metric", "layer", "lang", "spearman", "pearson", "ci_low",
                                                          "ci_high", "p_adj", "n_runs", "flags"]]
    fig2 = figures.relate_lines(brief)
    assert len(fig2.data) == len(fig.data)
    with pytest.raises(DriftError, match="spearman"):
        figures.relate_lines(brief.drop(columns="spearman"))


def test_drift_asr_points_join_runs_to_their_parents(study):
    pts = figures.drift_asr_points(study.drift, study.asr, study.asr_change, judge="refusal-lexicon")
    assert set(pts["source"]) == {"asr_change.csv"}
    ch = study.asr_change.set_index(["run_a", "run_b", "judge", "lang"])["diff"]
    row = pts.iloc[0]
    assert row["asr_change"] == pytest.approx(ch[(row["base_run_id"], row["run_id"], "refusal-lexicon", row["lang"])])
    diff = figures.drift_asr_points(study.drift, study.asr, None, judge="refusal-lexicon")
    a = study.asr.query("metric == 'asr' and label == 'harmful' and category == 'all' and judge == 'refusal-lexicon'")
    a = a.set_index(["run_id", "lang"])["value"]
    r = diff.iloc[5]
    assert set(diff["source"]) == {"asr.csv difference"}
    assert r["asr_change"] == pytest.approx(a[(r["run_id"], r["lang"])] - a[(r["base_run_id"], r["lang"])])
    assert set(diff["measure"]) == set(figures.DRIFT_MEASURES)


def test_drift_asr_scatter(study):
    pts = figures.relate_points(study.relate_joined, "refusal-lexicon")
    fig = figures.drift_asr_scatter(pts, "direction_cosine", relate=study.relate, labels=study.run_labels)
    steps = fig.layout.sliders[0].steps
    assert len(steps) == 4 and steps[0].method == "update" and "all languages pooled" in steps[0].args[1]["title.text"]
    shown = [t for t in fig.data if t.visible]
    assert len(shown) == 4 and all("ρ=" in t.name for t in shown)
    assert len(shown[0].x) == len(_ft_runs(study)) - 1  # the fine-tuned runs (the aligned run is not related)
    assert _titles(fig, "yaxis") == {"ASR change (run − parent)"}


@pytest.mark.parametrize("make, table, column", [
    (lambda s, d: figures.drift_heatmap(d, "cosine"), "drift", "layer"),
    (lambda s, d: figures.drift_lines(d, "cosine"), "drift", "value"),
    (lambda s, d: figures.direction_matrix(d), "directions", "lang_b"),
    (lambda s, d: figures.probe_lines(d), "probes", "metric"),
    (lambda s, d: figures.transfer_matrix(d), "probes", "train_lang"),
    (lambda s, d: figures.asr_bars(d), "asr", "ci_low"),
    (lambda s, d: figures.asr_change_bars(d), "asr_change", "diff"),
    (lambda s, d: figures.agreement_heatmap(d), "agreement", "kappa"),
    (lambda s, d: figures.incoherence_bars(d), "asr", "category"),
    (lambda s, d: figures.capability_bars(d), "capability", "suite"),
    (lambda s, d: figures.drift_asr_points(d, s.asr), "drift", "base_run_id"),
    (lambda s, d: figures.drift_asr_scatter(d, "cosine"), "relate_joined", "drift"),
])
def test_missing_columns_are_named(study, make, table, column):
    df = getattr(study, table).drop(columns=column)
    if table == "relate_joined":
        df = figures.relate_points(study.relate_joined).drop(columns=column)
    with pytest.raises(DriftError, match=column):
        make(study, df)


def test_unknown_metric_and_site_raise(study):
    with pytest.raises(DriftError, match="no matching rows"):
        figures.drift_heatmap(study.drift, "no_such_metric")
    with pytest.raises(DriftError, match="resid_pre"):
        figures.drift_heatmap(study.drift, "cosine", site="resid_pre")


# --------------------------------------------------------------------------------------------------- the report

def test_report_is_self_contained_and_complete(report, study):
    from plotly.offline import get_plotlyjs

    text = report.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\ssrc=", text, flags=re.I)
    assert not re.search(r"<(link|img|iframe)[^>]*(href|src)=[\"']?https?:", text, flags=re.I)
    assert text.count(get_plotlyjs()[:2000]) == 1  # plotly.js embedded once
    for sid in SECTIONS:
        assert f"<section id='{sid}'>" in text
    n_divs = len(re.findall(r'class="plotly-graph-div"', text))
    expected = int(re.search(r'data-expected="(\d+)"', text).group(1))
    assert n_divs == expected > 25
    assert "contains harmful text" in text and "Synthetic data." in text
    assert "Figure skipped" not in text
    assert study.runs["run_id"].iloc[-1] in text  # provenance names the runs


def test_report_embeds_no_completion_text(report, study_dir):
    assert PLACEHOLDER in (next((study_dir / "completions").glob("*.jsonl"))).read_text(encoding="utf-8")
    assert PLACEHOLDER not in report.read_text(encoding="utf-8")
    for table in (report.parent / "tables").glob("*.csv"):
        assert PLACEHOLDER not in table.read_text(encoding="utf-8"), table.name


def test_tables_are_written(report, study):
    tables = report.parent / "tables"
    assert {p.name for p in tables.glob("*.csv")} == set(TABLES)
    assert len(pd.read_csv(tables / "drift.csv")) == len(study.drift)
    assert {"prompts.hash", "model.tokenizer_hash"} <= set(pd.read_csv(tables / "hashes.csv")["field"])
    assert "plotly" in set(pd.read_csv(tables / "versions.csv")["package"])


def test_rebuild_replaces_the_report_and_refuses_other_files(tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    report = build_report(study)
    (report.parent / "tables" / "stale.csv").write_text("x\n1\n")
    assert build_report(study) == report and not (report.parent / "tables" / "stale.csv").exists()
    text = report.read_text(encoding="utf-8")
    assert "no study.json" in text and 'data-expected="0"' in text and "<section id='provenance'>" in text
    foreign = tmp_path / "notes.html"
    foreign.write_text("<html>my notes</html>")
    with pytest.raises(DriftError, match="not a polydrift report"):
        build_report(study, foreign)
    (tmp_path / "tables").mkdir()
    with pytest.raises(DriftError, match="not written by the report"):
        build_report(study, tmp_path / "index.html")
    with pytest.raises(DriftError, match=".html"):
        build_report(study, tmp_path / "report.txt")
    with pytest.raises(DriftError, match="not found"):
        build_report(tmp_path / "missing")


def test_sections_are_optional(study_dir, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(study_dir, partial, ignore=shutil.ignore_patterns("report", "drift", "probes", "capability",
                                                                       "stores", "joined.csv", "summary.csv"))
    (partial / "relate" / "relate.csv").write_text("what,ever\n1,2\n")
    text = build_report(partial).read_text(encoding="utf-8")
    for sid in ("drift", "probes", "capability"):
        assert f"<section id='{sid}'>" not in text
    for sid in ("directions", "behaviour", "relate", "provenance"):
        assert f"<section id='{sid}'>" in text
    assert "relate/relate.csv skipped" in text and "spearman" in text
    assert "Figure skipped" not in text


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_report_reads_the_real_stages_records(tmp_path):
    """Drift records and directions written by the pipeline itself (a store compared with itself) draw."""
    from drift.pipeline import run_compare, run_directions

    store = ROOT / "tests" / "fixtures" / "store-v1.0-float32.h5"
    (tmp_path / "drift").mkdir()
    run_compare(store, store, tmp_path / "drift" / "run.csv", by_lang=True)
    run_directions(store, tmp_path / "directions" / "run")
    text = build_report(tmp_path).read_text(encoding="utf-8")
    assert "<section id='drift'>" in text and "<section id='directions'>" in text
    assert "Figure skipped" not in text and int(re.search(r'data-expected="(\d+)"', text).group(1)) >= 10


def test_cli_report(tmp_path, capsys):
    from drift.cli import main

    study = tmp_path / "study"
    study.mkdir()
    (study / "study.json").write_text('{"name": "cli", "runs": []}', encoding="utf-8")
    out = tmp_path / "study.html"
    assert main(["report", str(study), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.exists() and (tmp_path / "study-tables" / "runs.csv").exists()
    assert main(["report", str(study)]) == 0 and (study / "report" / "index.html").exists()
    capsys.readouterr()
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "study folder" in capsys.readouterr().err


@pytest.mark.slow
def test_docs_example_runs(tmp_path):
    """The Python example of docs/report.md runs as written (with /tmp/ moved under the test's folder)."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "report.md").read_text(encoding="utf-8"), re.S)
    assert blocks
    script = tmp_path / "example.py"
    script.write_text("\n".join(blocks).replace("/tmp/", f"{tmp_path}/"), encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "polydrift-report-demo" / "report" / "index.html").exists()
    assert (tmp_path / "direction_cosine_vs_asr.html").exists()


# ------------------------------------------------------------------------------------------ headless Chromium

def _chromium() -> str | None:
    path = shutil.which("chromium")
    if path is None:
        return None
    try:
        subprocess.run([path, "--version"], capture_output=True, timeout=60, check=True)
    except (subprocess.SubprocessError, OSError):
        return None
    return path


def _headless(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=10000", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)]


def test_console_errors_are_recognised():
    lines = ['[1:1:1123/1.0:INFO:CONSOLE:3636] "Uncaught TypeError: x is null", source: file:///r.html (3636)',
             '[1:1:1123/1.0:INFO:CONSOLE:9] "Error: polydrift report: only 1 of 2 figures rendered", source: f (9)',
             '[1:1:1123/1.0:INFO:CONSOLE:9] "hello", source: f (9)',
             "[1:1:1123/1.0:ERROR:dbus/bus.cc:405] Failed to connect to the bus"]
    assert _console_errors("\n".join(lines)) == lines[:2]


def test_report_renders_in_chromium(report, tmp_path):
    """Every figure draws (the page's status element says so), the console shows no error, and a PNG screenshot is
    kept (under the test's folder and as tests/artifacts/report.png)."""
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (make test installs it as root: apt-get install chromium)")
    png = tmp_path / "report.png"
    run = _headless(chromium, tmp_path / "profile", "--dump-dom", f"--screenshot={png}", "--window-size=1400,3000",
                    "--hide-scrollbars", report.resolve().as_uri())
    status = re.search(r'<div id="report-status"([^>]*)>', run.stdout)
    assert status, f"no status element in the rendered page: {run.stderr[-2000:]}"
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', status.group(1)))
    assert attrs["data-status"] == "complete", attrs
    assert int(attrs["data-figures"]) == int(attrs["data-rendered"]) == int(attrs["data-expected"]) > 25
    assert attrs["data-errors"] == "0"
    assert not _console_errors(run.stderr), _console_errors(run.stderr)
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", run.stderr[-2000:]
    artifacts = ROOT / "tests" / "artifacts"
    artifacts.mkdir(exist_ok=True)
    shutil.copy(png, artifacts / "report.png")
