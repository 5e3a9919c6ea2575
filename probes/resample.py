"""Cluster-bootstrap confidence intervals for probe scores (AUROC and expected calibration error).

Translations of one prompt share a prompt group, so rows are not independent: each bootstrap replicate draws whole
groups with replacement, which amounts to weighting every row by how often its group was drawn. Both statistics are
computed for all replicates at once from those weights.
"""

from __future__ import annotations

import numpy as np


def group_bootstrap_weights(groups: np.ndarray, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, n) row weights: the number of times each row's group is drawn when resampling groups."""
    _, inverse = np.unique(groups, return_inverse=True)
    n_groups = int(inverse.max()) + 1
    counts = np.random.default_rng(seed).multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)
    return counts[:, inverse].astype(np.float64)


def weighted_auroc(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """AUROC for each row of weights ``w`` (B, n) (ties count one half); NaN where a class has no weight."""
    order = np.argsort(p, kind="stable")
    p, y, w = p[order], y[order].astype(bool), w[:, order]
    start = np.r_[0, np.flatnonzero(np.diff(p)) + 1]  # first row of each run of tied scores
    tie = np.repeat(np.arange(len(start)), np.diff(np.r_[start, len(p)]))
    neg = np.where(y, 0.0, w)
    below = np.cumsum(neg, axis=1) - neg  # negative weight strictly before each row (ties fixed below)
    at_start = below[:, start]
    tied = np.add.reduceat(neg, start, axis=1)
    credit = at_start[:, tie] + 0.5 * tied[:, tie]
    pos_w, neg_w = np.where(y, w, 0.0), neg.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos_w * credit).sum(1) / (pos_w.sum(1) * neg_w)


def weighted_ece(y: np.ndarray, p: np.ndarray, w: np.ndarray, bins: int = 10) -> np.ndarray:
    """Expected calibration error (equal-width bins) for each row of weights ``w`` (B, n)."""
    idx = np.clip(np.digitize(p, np.linspace(0, 1, bins + 1)[1:-1]), 0, bins - 1)
    onehot = np.zeros((len(p), bins))
    onehot[np.arange(len(p)), idx] = 1.0
    conf, acc = (w * p) @ onehot, (w * y) @ onehot
    return np.abs(conf - acc).sum(1) / w.sum(1)


def bootstrap_auroc_ece(y: np.ndarray, p: np.ndarray, groups: np.ndarray, n_boot: int = 1000, seed: int = 0,
                        bins: int = 10, alpha: float = 0.05) -> dict[str, tuple[float, float]]:
    """Percentile intervals for AUROC and ECE from a bootstrap over prompt groups.

    Args:
        y: (n,) 0/1 labels.
        p: (n,) predicted probability of class 1.
        groups: (n,) prompt groups (resampled whole).
        n_boot: Replicates.
        seed: Seed of the generator (the same seed gives the same intervals).
        bins: ECE bins.
        alpha: 1 - coverage.

    Returns:
        ``{"auroc": (low, high), "ece": (low, high)}``; NaN bounds when the statistic is undefined.
    """
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    w = group_bootstrap_weights(np.asarray(groups), n_boot, seed)
    out = {}
    for name, values in (("auroc", weighted_auroc(y, p, w)), ("ece", weighted_ece(y, p, w, bins))):
        values = values[np.isfinite(values)]
        q = np.quantile(values, [alpha / 2, 1 - alpha / 2]) if len(values) else (np.nan, np.nan)
        out[name] = (float(q[0]), float(q[1]))
    return out
