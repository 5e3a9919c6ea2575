"""Small statistics shared by the judging, capability and relate stages (numpy/scipy only)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def wilson(k: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (NaNs when ``n`` is 0)."""
    from scipy.stats import norm

    if n == 0:
        return math.nan, math.nan
    z = float(norm.ppf(0.5 + level / 2))
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts ``b`` (0->1) and ``c`` (1->0)."""
    from scipy.stats import binomtest

    if b + c == 0:
        return 1.0
    return float(binomtest(min(b, c), b + c, 0.5).pvalue)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float, float]:
    """Difference of means ``mean(b) - mean(a)`` over paired items, with a percentile bootstrap interval."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    if len(a) == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    diffs = b[idx].mean(1) - a[idx].mean(1)
    lo, hi = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    return float(b.mean() - a.mean()), float(lo), float(hi)


def cohen_kappa(a: Sequence, b: Sequence) -> float:
    """Cohen's kappa of two raters' labels (NaN when undefined, e.g. fewer than two items)."""
    a, b = list(a), list(b)
    if len(a) < 2 or len(a) != len(b):
        return math.nan
    labels = sorted(set(a) | set(b))
    pa = np.array([[x == lab for lab in labels] for x in a], float).mean(0)
    pb = np.array([[x == lab for lab in labels] for x in b], float).mean(0)
    observed = float(np.mean([x == y for x, y in zip(a, b)]))
    expected = float(pa @ pb)
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else math.nan
    return (observed - expected) / (1 - expected)


def adjust_pvalues(p: Sequence[float], method: str = "holm") -> np.ndarray:
    """Holm or Benjamini-Hochberg adjusted p-values (NaNs stay NaN and are not counted)."""
    p = np.asarray(p, float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    q, m = p[ok], int(ok.sum())
    if m == 0:
        return out
    order = np.argsort(q)
    if method == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * q[order])
    elif method in ("bh", "fdr_bh"):
        adj = np.minimum.accumulate((m / np.arange(m, 0, -1)) * q[order][::-1])[::-1]
    else:
        raise ValueError(f"unknown correction {method!r}: use 'holm' or 'bh'")
    res = np.empty(m)
    res[order] = np.minimum(adj, 1.0)
    out[ok] = res
    return out
