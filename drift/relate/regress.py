"""Regression of ASR change on drift, controlling for capability change, with fixed effects where the data allow.

``auto``: OLS of ``asr_change ~ drift + capability_change + C(ft_lang)`` (+ ``C(eval_lang)`` when pooled), with
errors clustered by run when pooled (a run's languages are not independent), by seed when the seeds repeat and there
are at least ``min_clusters`` of them, else HC3 (on 8 seeds, clustering by seed rejected a true null about twice as
often as it should in our simulations). ``mixed``: MixedLM with the same fixed effects, a random intercept per seed
(per run when pooled) and t tests, falling back to ``auto`` when there are fewer than ``min_clusters`` groups, the
group variance is at 0 or the fit does not converge (with few groups its tests are too liberal as well). Fixed
effects are dropped when they would leave fewer than 3 residual degrees of freedom or make the design singular; the
fitted model is written out in ``method``."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

_MIN_DOF = 3


@dataclass(frozen=True)
class RegResult:
    """The drift coefficient of one regression.

    Attributes:
        coef: Change in ASR change per unit of drift, given the controls.
        ci_low: Lower confidence bound.
        ci_high: Upper confidence bound.
        p_value: Two-sided p-value of the drift coefficient.
        n: Rows used.
        method: The model that was fit (formula and errors), or why none was.
        flags: Problems (``no_capability``, ``collinear``, ``reg_fallback``, ...).
    """

    coef: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    p_value: float = math.nan
    n: int = 0
    method: str = "none"
    flags: tuple[str, ...] = ()


def _unit(v: np.ndarray) -> np.ndarray:
    sd = v.std()
    return v / sd if sd > 0 else v


def _design(df: pd.DataFrame, pooled: bool) -> tuple[np.ndarray, list[str], list[str]]:
    """Design matrix (drift and capability at unit scale) with the controls the data allow: (X, terms, flags)."""
    cols, terms, flags = [np.ones(len(df)), _unit(df["drift"].to_numpy(float))], ["drift"], []
    cap = df["capability_change"].to_numpy(float)
    if np.isfinite(cap).all() and np.ptp(cap) > 0:
        cols.append(_unit(cap))
        terms.append("capability_change")
    else:
        flags.append("no_capability")
    x = np.column_stack(cols)
    if np.linalg.matrix_rank(x) < x.shape[1]:
        return x, terms, [*flags, "collinear"]
    for factor in (["eval_lang"] if pooled else []) + ["ft_lang"]:
        codes, levels = pd.factorize(df[factor].astype(str), sort=True)
        if len(levels) < 2:
            continue
        trial = np.column_stack([x, np.eye(len(levels))[codes][:, 1:]])
        if len(df) - trial.shape[1] >= _MIN_DOF and np.linalg.matrix_rank(trial) == trial.shape[1]:
            x, terms = trial, [*terms, f"C({factor})"]
        else:
            flags.append(f"dropped_C({factor})")
    return x, terms, flags


def _clusters(df: pd.DataFrame, pooled: bool, min_clusters: int) -> tuple[str, np.ndarray | None]:
    """The cluster variable for robust errors, or None for HC3.

    Pooled rows are always clustered by run (a run's languages share its noise); per-language rows by seed only with
    at least ``min_clusters`` repeated seeds, since cluster-robust errors over few clusters reject too often.
    """
    col = "run_id" if pooled else "seed"
    groups = df[col]
    if groups.isna().any():
        return col, None
    codes = pd.factorize(groups.astype(str))[0]
    n_groups = codes.max() + 1
    if n_groups < (3 if pooled else min_clusters) or (n_groups == len(codes) and not pooled):
        return col, None
    return col, codes


def _result(fit, n: int, method: str, flags: list[str], level: float) -> RegResult:
    lo, hi = np.asarray(fit.conf_int(alpha=1 - level))[1]
    return RegResult(float(fit.params[1]), float(lo), float(hi), float(fit.pvalues[1]), n, method, tuple(flags))


def _fit_ols(y, x, df, pooled, mode, min_clusters, level, terms, flags) -> RegResult:
    import statsmodels.api as sm

    formula = "asr_change ~ " + " + ".join(terms)
    model = sm.OLS(y, x)
    if mode == "ols":
        return _result(model.fit(), len(y), f"OLS {formula}; classical errors", flags, level)
    col, codes = _clusters(df, pooled, min_clusters)
    if codes is None and pooled:
        return RegResult(n=len(y), method=f"not fit: {formula} on fewer than 3 runs or without run ids",
                         flags=tuple(flags))
    if codes is None:
        return _result(model.fit(cov_type="HC3", use_t=True), len(y), f"OLS {formula}; HC3 errors", flags, level)
    fit = model.fit(cov_type="cluster", cov_kwds={"groups": codes}, use_t=True)
    return _result(fit, len(y), f"OLS {formula}; errors clustered by {col} ({codes.max() + 1})", flags, level)


def _fit_mixed(y, x, df, pooled, min_clusters, level, terms, flags) -> RegResult | str:
    """MixedLM with a random intercept per group; a string saying why not when it cannot be fit."""
    import statsmodels.api as sm

    col = "run_id" if pooled else "seed"
    groups = df[col]
    if groups.isna().any():
        return f"no {col} for every run"
    codes = pd.factorize(groups.astype(str))[0]
    if codes.max() + 1 < min_clusters or np.bincount(codes).max() < 2:
        return f"too few {col} groups with repeated runs"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = sm.MixedLM(y, x, groups=codes).fit(reml=True)
        except (np.linalg.LinAlgError, ValueError) as e:
            return f"mixed model failed ({type(e).__name__})"
    said = " ".join(str(w.message) for w in caught)
    if not fit.converged or "not positive definite" in said:
        return "mixed model did not converge"
    if "boundary" in said:
        return f"mixed model: {col} variance at the boundary (0)"
    if not np.isfinite(fit.bse_fe[1]):
        return "mixed model gave no standard error"
    from scipy.stats import t as student

    # t instead of the normal, which rejected too often in simulations; pooled rows share their run's noise
    df_resid = codes.max() if pooled else len(y) - x.shape[1]
    coef, se = float(fit.fe_params[1]), float(fit.bse_fe[1])
    half = student.ppf(0.5 + level / 2, df_resid) * se
    formula = "asr_change ~ " + " + ".join(terms) + f" + (1 | {col})"
    return RegResult(coef, coef - half, coef + half, float(2 * student.sf(abs(coef / se), df_resid)), len(y),
                     f"MixedLM {formula} ({codes.max() + 1} groups; t with {df_resid} df)", tuple(flags))


def regress(df: pd.DataFrame, pooled: bool, mode: str = "auto", min_clusters: int = 20,
            level: float = 0.95) -> RegResult:
    """Regress ``asr_change`` on ``drift`` with the controls ``df`` allows.

    Args:
        df: Rows with asr_change, drift, capability_change, ft_lang, seed, eval_lang, run_id (complete in the first
            two).
        pooled: Rows of several evaluation languages (adds ``C(eval_lang)``, clusters by run).
        mode: ``auto``, ``ols``, ``mixed`` or ``none``.
        min_clusters: Fewest seeds for errors clustered by seed (per-language rows), and fewest groups for MixedLM.
        level: Confidence level.
    """
    if mode == "none" or len(df) == 0:
        return RegResult(method="not fit" if len(df) == 0 else "none")
    x, terms, flags = _design(df, pooled)
    y = df["asr_change"].to_numpy(float)
    if "collinear" in flags or len(y) - x.shape[1] < _MIN_DOF or np.ptp(y) == 0:
        return RegResult(n=len(y), method="not fit: too few runs, constant ASR change or collinear drift",
                         flags=tuple(flags))
    # unit scales (MixedLM fails to converge on raw ASR scales); the coefficient is scaled back
    res = _fit(y / y.std(), x, df, pooled, mode, min_clusters, level, terms, flags)
    k = y.std() / df["drift"].to_numpy(float).std()
    return replace(res, coef=res.coef * k, ci_low=res.ci_low * k, ci_high=res.ci_high * k)


def _fit(y, x, df, pooled, mode, min_clusters, level, terms, flags) -> RegResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if mode == "mixed":
            res = _fit_mixed(y, x, df, pooled, min_clusters, level, terms, flags)
            if isinstance(res, RegResult):
                return res
            fallback = _fit_ols(y, x, df, pooled, "auto", min_clusters, level, terms, [*flags, "reg_fallback"])
            return replace(fallback, method=f"{res}; {fallback.method}")
        return _fit_ols(y, x, df, pooled, mode, min_clusters, level, terms, flags)
