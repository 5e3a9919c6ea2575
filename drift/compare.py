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


def _groups(base, by_lang: bool) -> list[tuple[str, np.ndarray]]:
    df = base.prompts
    groups = [(POOLED, np.arange(len(df)))]
    if by_lang:
        groups += [(str(lang), np.flatnonzero((df["lang"] == lang).to_numpy())) for lang in sorted(df["lang"].unique())]
    return groups


def _pair_metrics(x, y, labels, metrics, rbf_threshold) -> list[tuple[str, float, int, float, float]]:
    """Metrics of one group of paired rows: (metric, value, n, ci_low, ci_high)."""
    from drift.metrics import cka

    out = []
    n = len(x)
    if "linear_cka" in metrics and n > 1:
        out.append(("linear_cka", cka.linear_cka(x, y), n, np.nan, np.nan))
    if "debiased_cka" in metrics and n > 3:
        out.append(("debiased_cka", cka.debiased_cka(x, y), n, np.nan, np.nan))
    if "rbf_cka" in metrics and n > 1:
        out.append(("rbf_cka", cka.rbf_cka(x, y, rbf_threshold), n, np.nan, np.nan))
    if {"cosine", "rel_norm_change"} & set(metrics):
        res = cos.CosineDriftFitter().update(x, y).result()
        for name in ("cosine", "rel_norm_change"):
            if name in metrics:
                s = res[name]
                out.append((name, s.mean, s.n, s.ci_low, s.ci_high))
                if name == "cosine":
                    out += [("cosine_q05", s.q05, s.n, np.nan, np.nan), ("cosine_q50", s.q50, s.n, np.nan, np.nan)]
    harmful, harmless = labels == "harmful", labels == "harmless"
    if harmful.any() and harmless.any() and {"direction_cosine", "proj_shift"} & set(metrics):
        r_base = x[harmful].mean(0) - x[harmless].mean(0)
        r_ft = y[harmful].mean(0) - y[harmless].mean(0)
        if "direction_cosine" in metrics:
            out.append(("direction_cosine", cos.cosine(r_base, r_ft), n, np.nan, np.nan))
            out.append(("direction_cosine_random_p95", cos.random_cosine_floor(x.shape[1]), n, np.nan, np.nan))
            out.append(("direction_norm_ratio", np.linalg.norm(r_ft) / np.linalg.norm(r_base), n, np.nan, np.nan))
        if "proj_shift" in metrics:
            for label, mask in (("harmful", harmful), ("harmless", harmless)):
                s = cos.projection_shift(x[mask], y[mask], r_base)
                out.append((f"proj_shift_{label}", s.mean, s.n, s.ci_low, s.ci_high))
                floor = np.quantile(cos.random_projection_shift(x[mask], y[mask]), 0.95)
                out.append((f"proj_shift_{label}_random_p95", floor, s.n, np.nan, np.nan))
    return out


def compare_stores(
    base,
    ft,
    metrics: Iterable[str] = DEFAULT_METRICS,
    sites: Iterable[str] | None = None,
    layers: Iterable[int] | None = None,
    positions: Iterable | None = None,
    by_lang: bool = True,
    rbf_threshold: float = 1.0,
) -> list[dict]:
    """Drift records for every (site, layer, position) and language, pooled (``lang='all'``) and per language.

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
    records = []
    for site in sites:
        for layer in layers:
            for position in positions or base.positions:
                x = base.read(site, layer, positions=[position])[:, 0].astype(np.float64)
                y = ft.read(site, layer, positions=[position], rows=ft_rows)[:, 0].astype(np.float64)
                for lang, rows in _groups(base, by_lang):
                    for metric, value, n, lo, hi in _pair_metrics(x[rows], y[rows], labels[rows], metrics,
                                                                  rbf_threshold):
                        records.append(_record(base, ft, site, layer, position, lang, metric, value, n, lo, hi))
    return records


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
