"""Comparing two activation stores of the same prompts: CKA, cosine drift and refusal-direction drift.

``compare_stores(base, ft)`` returns long-form metric records (one row per run, site, layer, position, language and
metric, with ``n`` and a 95% interval where one exists), ready to write as CSV or Parquet and to join with ASR tables
on ``run_id``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from drift.errors import DriftError
from drift.metrics import cka
from drift.metrics import cosine as cos
from drift.metrics.directions import POOLED

DEFAULT_METRICS = ("linear_cka", "debiased_cka", "cosine", "rel_norm_change", "direction_cosine", "proj_shift")
ALL_METRICS = (*DEFAULT_METRICS, "rbf_cka")


def check_compatible(base, ft) -> None:
    """Refuse to compare stores whose prompts, positions, tokenizer, chat template or width differ."""
    pb, pf = base.provenance, ft.provenance
    problems = []
    if pb["model"]["tokenizer_hash"] != pf["model"]["tokenizer_hash"]:
        problems.append("they were made with different tokenizers (different models cannot be compared row by row)")
    if pb["model"]["chat_template_hash"] != pf["model"]["chat_template_hash"]:
        problems.append("their chat templates or chat options differ")
    if base.d_model != ft.d_model:
        problems.append(f"their widths differ ({base.d_model} vs {ft.d_model})")
    if base.positions != ft.positions:
        problems.append(f"their positions differ ({base.positions} vs {ft.positions})")
    ids_b, ids_f = set(base.prompts["id"]), set(ft.prompts["id"])
    if ids_b != ids_f:
        problems.append(f"their prompts differ ({len(ids_b - ids_f)} only in base, {len(ids_f - ids_b)} only in ft)")
    if problems:
        raise DriftError(f"cannot compare {base.path.name} with {ft.path.name}: " + "; ".join(problems) +
                         ": extract both with the same --prompts, --positions and chat options")


def _record(base, ft, site, layer, position, lang, metric, value, n, lo=float("nan"), hi=float("nan")) -> dict:
    return {
        "run_id": ft.run.run_id, "base_run_id": base.run.run_id, "site": site, "layer": int(layer),
        "position": str(position), "lang": lang, "metric": metric, "value": float(value), "n": int(n),
        "ci_low": float(lo), "ci_high": float(hi),
    }


def _groups(base, by_lang: bool) -> dict[str, np.ndarray]:
    """Group name -> boolean mask over prompt rows (``all`` plus one per language)."""
    df = base.prompts
    groups = {POOLED: np.ones(len(df), dtype=bool)}
    if by_lang:
        groups |= {str(lang): (df["lang"] == lang).to_numpy() for lang in sorted(df["lang"].unique())}
    return groups


class _GroupStats:
    """Streaming accumulators of one group of paired rows at one (site, layer, position)."""

    def __init__(self) -> None:
        self.cka = cka.CKAFitter()
        self.cos = cos.CosineDriftFitter()
        self.sums: dict[str, list] = {}  # label -> [sum x, sum y, count]

    def update(self, x: np.ndarray, y: np.ndarray, labels: np.ndarray) -> None:
        self.cka.update(x, y)  # rows as stored: float32 rows get float32 products (cka_stream, precision "auto")
        self.cos.update(x, y)
        for label in ("harmful", "harmless"):
            m = labels == label
            if m.any():
                acc = self.sums.setdefault(label, [0.0, 0.0, 0])
                acc[0] = acc[0] + x[m].sum(0, dtype=np.float64)
                acc[1], acc[2] = acc[1] + y[m].sum(0, dtype=np.float64), acc[2] + int(m.sum())

    def means(self, label: str) -> tuple[np.ndarray, np.ndarray, int]:
        sx, sy, n = self.sums[label]
        return sx / n, sy / n, n


def _stream(base, ft, site, layer, position, ft_rows, groups, labels, chunk_size) -> dict[str, _GroupStats]:
    stats = {name: _GroupStats() for name in groups}
    for rows, block in base.iter_chunks(site, layer, chunk_size=chunk_size, positions=[position]):
        x = block[:, 0]
        y = ft.read(site, layer, positions=[position], rows=ft_rows[rows])[:, 0]
        for name, mask in groups.items():
            sel = mask[rows]
            if sel.any():
                stats[name].update(x[sel], y[sel], labels[rows][sel])
    return stats


def _group_records(st: _GroupStats, metrics, emit) -> dict[str, np.ndarray]:
    """Emit the streamed metrics of one group; return its base directions (label means) for the projection pass."""
    n = st.cka.n
    if n >= 2 and {"linear_cka", "debiased_cka"} & set(metrics):
        res = st.cka.result()
        if "linear_cka" in metrics:
            emit("linear_cka", res.linear, n)
        if "debiased_cka" in metrics and n >= 4:
            emit("debiased_cka", res.debiased, n)
    summaries = st.cos.result()
    for name in ("cosine", "rel_norm_change"):
        if name in metrics:
            s = summaries[name]
            emit(name, s.mean, s.n, s.ci_low, s.ci_high)
            if name == "cosine":
                emit("cosine_q05", s.q05, s.n)
                emit("cosine_q50", s.q50, s.n)
    if not {"harmful", "harmless"} <= set(st.sums):
        return {}
    (xh, yh, nh), (xb, yb, nb) = st.means("harmful"), st.means("harmless")
    r_base, r_ft = xh - xb, yh - yb
    if "direction_cosine" in metrics:
        emit("direction_cosine", cos.cosine(r_base, r_ft), nh + nb)
        emit("direction_cosine_random_p95", cos.random_cosine_floor(len(r_base)), nh + nb)
        emit("direction_norm_ratio", np.linalg.norm(r_ft) / np.linalg.norm(r_base), nh + nb)
    if "proj_shift" in metrics:
        for label, (mx, my, m) in (("harmful", (xh, yh, nh)), ("harmless", (xb, yb, nb))):
            floor = np.quantile(cos.random_projection_shift(mx[None], my[None]), 0.95)
            emit(f"proj_shift_{label}_random_p95", floor, m)
    return {"r_base": r_base}


def _projection_pass(base, ft, site, layer, position, ft_rows, groups, labels, dirs, emit_for, chunk_size) -> None:
    """Second pass: per-prompt shift of the projection onto each group's base direction, with a CI."""
    shifts = {(g, lab): [] for g in dirs for lab in ("harmful", "harmless")}
    units = {g: d["r_base"] / np.linalg.norm(d["r_base"]) for g, d in dirs.items()}
    for rows, block in base.iter_chunks(site, layer, chunk_size=chunk_size, positions=[position]):
        x = block[:, 0].astype(np.float64)
        y = ft.read(site, layer, positions=[position], rows=ft_rows[rows])[:, 0].astype(np.float64)
        for g, u in units.items():
            for lab in ("harmful", "harmless"):
                sel = groups[g][rows] & (labels[rows] == lab)
                shifts[(g, lab)].append((y[sel] - x[sel]) @ u)
    for (g, lab), parts in shifts.items():
        s = cos.summarise(np.concatenate(parts))
        emit_for(g)(f"proj_shift_{lab}", s.mean, s.n, s.ci_low, s.ci_high)


def compare_stores(
    base,
    ft,
    metrics: Iterable[str] = DEFAULT_METRICS,
    sites: Iterable[str] | None = None,
    layers: Iterable[int] | None = None,
    positions: Iterable | None = None,
    by_lang: bool = True,
    rbf_threshold: float = 1.0,
    n_boot: int = 0,
    chunk_size: int = 2048,
) -> list[dict]:
    """Drift records for every (site, layer, position) and language, pooled (``lang='all'``) and per language.

    Linear and debiased CKA, cosine drift and the direction statistics stream over the stores in chunks (memory
    independent of the number of prompts); the projection shifts take a second pass; RBF CKA and bootstrap intervals
    read each group whole.

    Args:
        base: Store of the base model.
        ft: Store of the fine-tuned model (same prompts, positions and tokenizer).
        metrics: Any of ``linear_cka``, ``debiased_cka``, ``rbf_cka``, ``cosine``, ``rel_norm_change``,
            ``direction_cosine``, ``proj_shift``.
        sites: Sites (default: those in both stores).
        layers: Layers (default: those in both stores).
        positions: Position labels (default: all fixed positions).
        by_lang: Also compute each metric per language.
        rbf_threshold: Bandwidth multiplier for RBF CKA.
        n_boot: Bootstrap resamples for CKA intervals (0: none).
        chunk_size: Rows read at a time.
    """
    metrics = tuple(metrics)
    unknown = set(metrics) - set(ALL_METRICS)
    if unknown:
        raise DriftError(f"unknown metric(s) {sorted(unknown)}: choose from {', '.join(ALL_METRICS)}")
    check_compatible(base, ft)
    sites = [s for s in (sites or base.sites) if s in ft.sites]
    layers = [layer for layer in (layers or base.layers) if layer in ft.layers]
    if not sites or not layers:
        raise DriftError("the two stores share no site or layer to compare")
    id_to_ft_row = {pid: i for i, pid in enumerate(ft.prompts["id"])}
    ft_rows = np.asarray([id_to_ft_row[pid] for pid in base.prompts["id"]])
    labels = base.prompts["label"].to_numpy()
    groups = _groups(base, by_lang)
    records: list[dict] = []
    for site in sites:
        for layer in layers:
            for position in positions or base.positions:
                def emit_for(g, site=site, layer=layer, position=position):
                    def emit(metric, value, n, lo=np.nan, hi=np.nan):
                        records.append(_record(base, ft, site, layer, position, g, metric, value, n, lo, hi))
                    return emit

                stats = _stream(base, ft, site, layer, position, ft_rows, groups, labels, chunk_size)
                dirs = {g: d for g, st in stats.items() if (d := _group_records(st, metrics, emit_for(g)))}
                if "proj_shift" in metrics and dirs:
                    _projection_pass(base, ft, site, layer, position, ft_rows, groups, labels, dirs, emit_for,
                                     chunk_size)
                if "rbf_cka" in metrics or n_boot:
                    _whole_group_metrics(base, ft, site, layer, position, ft_rows, groups, metrics, rbf_threshold,
                                         n_boot, emit_for)
    return records


def _whole_group_metrics(base, ft, site, layer, position, ft_rows, groups, metrics, rbf_threshold, n_boot,
                         emit_for) -> None:
    """RBF CKA and bootstrap intervals, which need each group's rows in memory."""
    x_all = base.read(site, layer, positions=[position])[:, 0]
    y_all = ft.read(site, layer, positions=[position], rows=ft_rows)[:, 0]
    for g, mask in groups.items():
        x, y = x_all[mask].astype(np.float64), y_all[mask].astype(np.float64)
        emit = emit_for(g)
        if "rbf_cka" in metrics and len(x) > 1:
            emit("rbf_cka", cka.rbf_cka(x, y, rbf_threshold), len(x))
        if n_boot:
            for kind in ("linear", "debiased"):
                if f"{kind}_cka" in metrics and len(x) >= 4:
                    b = cka.cka_bootstrap(x, y, kind, n_boot=n_boot)
                    emit(f"{kind}_cka_boot", b.value, b.n, b.ci_low, b.ci_high)


def write_records(records: list[dict], path: str | Path, overwrite: bool = False) -> Path:
    """Write records as CSV (or Parquet for ``.parquet``) through a temporary file; refuse to overwrite unless asked."""
    import pandas as pd

    path = Path(path)
    if path.exists() and not overwrite:
        raise DriftError(f"output {path} already exists: choose another --out, or pass --overwrite")
    if not path.parent.is_dir():
        raise DriftError(f"output folder {path.parent} does not exist: create it first")
    tmp = path.with_name(path.name + ".tmp")
    df = pd.DataFrame.from_records(records)
    if path.suffix == ".parquet":
        df.to_parquet(tmp, index=False)
    else:
        df.to_csv(tmp, index=False)
    tmp.replace(path)
    return path
