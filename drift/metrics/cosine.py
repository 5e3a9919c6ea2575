"""Cosine drift between a base and a fine-tuned model on the same prompts, and direction statistics.

All inputs are paired rows: row ``i`` of ``x`` (base) and of ``y`` (fine-tuned) are the same prompt at the same
position. Results are frozen dataclasses; :func:`drift_records` turns them into long-form records.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drift.errors import DriftError

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Summary:
    """Mean of a per-prompt statistic with a normal-approximation 95% CI and quantiles."""

    mean: float
    ci_low: float
    ci_high: float
    q05: float
    q50: float
    q95: float
    n: int


def summarise(values: np.ndarray) -> Summary:
    """Summarise per-prompt values (NaNs are dropped)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        nan = float("nan")
        return Summary(nan, nan, nan, nan, nan, nan, 0)
    half = Z95 * v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else float("nan")
    q05, q50, q95 = np.quantile(v, [0.05, 0.5, 0.95])
    return Summary(float(v.mean()), float(v.mean() - half), float(v.mean() + half), float(q05), float(q50),
                   float(q95), int(v.size))


class CosineDriftFitter:
    """Streams paired (base, fine-tuned) rows and keeps per-prompt cosine and norm ratio (O(n) floats)."""

    def __init__(self) -> None:
        self._cos: list[np.ndarray] = []
        self._ratio: list[np.ndarray] = []

    def update(self, x: np.ndarray, y: np.ndarray) -> CosineDriftFitter:
        """Add paired rows shaped (n, d)."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.shape != y.shape:
            raise DriftError(f"paired activations differ in shape: {x.shape} vs {y.shape}")
        nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            self._cos.append((x * y).sum(1) / (nx * ny))
            self._ratio.append(ny / nx - 1.0)
        return self

    def result(self) -> dict[str, Summary]:
        """``cosine`` (per-prompt cosine) and ``rel_norm_change`` (||y|| / ||x|| - 1) summaries."""
        cat = lambda parts: np.concatenate(parts) if parts else np.empty(0)  # noqa: E731
        return {"cosine": summarise(cat(self._cos)), "rel_norm_change": summarise(cat(self._ratio))}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors (float64)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def projection_shift(x: np.ndarray, y: np.ndarray, direction: np.ndarray) -> Summary:
    """Per-prompt change of the projection onto a unit ``direction``: ``y . r - x . r``."""
    r = np.asarray(direction, dtype=np.float64)
    r = r / np.linalg.norm(r)
    return summarise(np.asarray(y, dtype=np.float64) @ r - np.asarray(x, dtype=np.float64) @ r)


def random_projection_shift(x: np.ndarray, y: np.ndarray, n_dirs: int = 200, seed: int = 0) -> np.ndarray:
    """Absolute mean projection shift along ``n_dirs`` random unit directions: the noise floor for a direction."""
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(np.asarray(x).shape[1], n_dirs))
    dirs /= np.linalg.norm(dirs, axis=0)
    delta = np.asarray(y, dtype=np.float64).mean(0) - np.asarray(x, dtype=np.float64).mean(0)
    return np.abs(delta @ dirs)


def random_cosine_floor(d: int, n_dirs: int = 1000, seed: int = 0) -> float:
    """95th percentile of |cosine| between random pairs of directions in ``d`` dimensions."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(2, n_dirs, d))
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(np.quantile(np.abs(cos), 0.95))
