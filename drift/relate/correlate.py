"""Correlations across runs, vectorised over many drift measures at once, with bootstrap intervals and permutation
p-values.

A batch holds one outcome matrix ``asr: (run, lang)`` and many drift columns ``drift: (run, lang, unit)`` over the
same runs. With one language this is the ordinary Spearman/Pearson correlation across runs. With several languages
(the pooled analysis) each language is ranked (Spearman) or centred (Pearson) on its own before the cells are pooled,
so a language that has both more drift and more ASR change does not make a correlation by itself. Bootstrap samples
and permutations move whole runs (all their languages together); since permuting the drift of the runs is the same
as inversely permuting their ASR change, one matrix product gives the permutation distribution of every unit.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CorrResult:
    """Per-unit correlation, interval and p-value (arrays of length ``units``).

    Attributes:
        value: Observed correlation (NaN with fewer than 3 runs or a constant variable).
        ci_low: Lower percentile-bootstrap bound.
        ci_high: Upper percentile-bootstrap bound.
        p_value: Two-sided permutation p-value.
        p_min: The smallest p-value these permutations can give.
        method: How the p-value was obtained.
    """

    value: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_value: np.ndarray
    p_min: float
    method: str


def centre(x: np.ndarray, rank: bool, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rank (average ties) and/or centre ``x`` along ``axis`` (the run axis).

    Returns:
        The centred values, and the sum of squares over the run and language axes below which they count as
        constant (relative to the size of the values before centring).
    """
    if rank:
        from scipy.stats import rankdata

        x = rankdata(x, axis=axis)
    x = np.asarray(x, float)
    axes = (axis, axis + 1)
    return x - x.mean(axis=axis, keepdims=True), 1e-20 * np.maximum((x * x).sum(axes), 1e-300)


def _ratio(num: np.ndarray, ss_d: np.ndarray, ss_a: np.ndarray, ok: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return np.where(ok, num / np.sqrt(np.where(ok, ss_d * ss_a, 1.0)), np.nan)


def _corr(dc: np.ndarray, ac: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Correlation of centred ``dc: (run, lang, unit)`` with centred ``ac: (run, lang)`` per unit (NaN where not ok)."""
    return _ratio(np.einsum("rlu,rl->u", dc, ac), (dc * dc).sum((0, 1)), (ac * ac).sum(), ok)


def permutations(n: int, n_perm: int, seed: int) -> tuple[np.ndarray, bool]:
    """Run permutations ``(perm, run)``: all ``n!`` of them when that is at most ``n_perm`` (exact), else random."""
    if math.factorial(n) <= n_perm:
        return np.array(list(itertools.permutations(range(n))), dtype=np.intp), True
    rng = np.random.default_rng([seed, n])
    return rng.permuted(np.tile(np.arange(n), (n_perm, 1)), axis=1), False


def permutation_pvalues(dc: np.ndarray, ac: np.ndarray, observed: np.ndarray, perms: np.ndarray, exact: bool,
                        chunk: int = 4096) -> np.ndarray:
    """Two-sided permutation p-values of ``observed`` for every unit (one matmul per chunk of permutations)."""
    n_runs, n_lang, n_units = dc.shape
    flat = dc.reshape(n_runs * n_lang, n_units)
    den = np.sqrt((dc * dc).sum((0, 1)) * (ac * ac).sum())
    den = np.where(np.isfinite(observed) & (den > 0), den, np.inf)
    target = np.abs(observed) - 1e-10
    hits = np.zeros(n_units)
    for start in range(0, len(perms), chunk):
        permuted = ac[perms[start:start + chunk]].reshape(-1, n_runs * n_lang)
        hits += (np.abs(permuted @ flat) / den >= target).sum(0)
    p = hits / len(perms) if exact else (hits + 1) / (len(perms) + 1)
    return np.where(np.isfinite(observed), p, np.nan)


def bootstrap_ci(drift: np.ndarray, asr: np.ndarray, rank: bool, n_boot: int, seed: int, level: float,
                 max_cells: int = 2_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval over runs (resampled with all their languages) for every unit.

    Resamples where a variable is constant are left out; a unit keeps no interval when more than half are.
    """
    n_runs, n_lang, n_units = drift.shape
    lo, hi = np.full(n_units, np.nan), np.full(n_units, np.nan)
    if n_boot == 0 or n_runs < 3:
        return lo, hi
    idx = np.random.default_rng([seed, n_runs, 1]).integers(0, n_runs, size=(n_boot, n_runs))
    ab, a_floor = centre(asr[idx], rank, axis=1)
    a_ss = (ab * ab).sum((1, 2))
    a_ok = a_ss > a_floor
    step = max(1, max_cells // (n_boot * n_runs * n_lang))
    q = [(1 - level) / 2, (1 + level) / 2]
    for s in range(0, n_units, step):
        db, d_floor = centre(drift[idx, :, s:s + step], rank, axis=1)
        d_ss = (db * db).sum((1, 2))
        ok = a_ok[:, None] & (d_ss > d_floor)
        r = _ratio(np.einsum("brlu,brl->bu", db, ab), d_ss, a_ss[:, None], ok)
        keep = ok.sum(0) * 2 > n_boot
        if keep.any():
            bounds = np.nanquantile(r[:, keep], q, axis=0)
            lo[s:s + step][keep], hi[s:s + step][keep] = bounds[0], bounds[1]
    return lo, hi


def correlate(drift: np.ndarray, asr: np.ndarray, rank: bool, n_boot: int, n_perm: int, seed: int,
              level: float = 0.95) -> CorrResult:
    """Spearman (``rank``) or Pearson correlation of every drift unit with the ASR change across runs.

    Args:
        drift: ``(run, lang, unit)`` drift values, complete (no NaN).
        asr: ``(run, lang)`` ASR changes, complete.
        rank: Spearman (ranks within each language) instead of Pearson.
        n_boot: Bootstrap resamples of runs (0: no intervals).
        n_perm: Random permutations of runs (all of them when ``n!`` is not larger).
        seed: Seed of resampling and permutations (the same permutations serve every unit of a batch).
        level: Confidence level.
    """
    n_runs, _, n_units = drift.shape
    nan = np.full(n_units, np.nan)
    if n_runs < 3:
        return CorrResult(nan, nan.copy(), nan.copy(), nan.copy(), math.nan, "too few runs")
    (dc, d_floor), (ac, a_floor) = centre(drift, rank), centre(asr, rank)
    ok = ((dc * dc).sum((0, 1)) > d_floor) & ((ac * ac).sum() > a_floor)
    value = _corr(dc, ac, ok)
    perms, exact = permutations(n_runs, n_perm, seed)
    p = permutation_pvalues(dc, ac, value, perms, exact)
    lo, hi = bootstrap_ci(drift, asr, rank, n_boot, seed, level)
    lo, hi = np.where(ok, lo, np.nan), np.where(ok, hi, np.nan)
    method = f"exact permutation ({len(perms)})" if exact else f"permutation ({len(perms)})"
    p_min = 1 / len(perms) if exact else 1 / (len(perms) + 1)
    return CorrResult(value, lo, hi, p, p_min, method + (f", bootstrap ({n_boot})" if n_boot else ""))
