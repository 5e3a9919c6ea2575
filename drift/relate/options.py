"""Options of the relate stage (one frozen dataclass, validated on construction)."""

from __future__ import annotations

from dataclasses import dataclass

from drift.errors import DriftError

#: Drift measures used when none are named (those present in the records).
DEFAULT_MEASURES = ("linear_cka", "debiased_cka", "cosine", "rel_norm_change", "direction_cosine",
                    "proj_shift_harmful", "proj_shift_harmless")
DRIFT_LANG_MODES = ("match", "pooled", "strict")
REGRESSIONS = ("auto", "ols", "mixed", "none")
CORRECTIONS = ("holm", "bh")
STATISTICS = ("spearman", "pearson")


@dataclass(frozen=True)
class RelateOptions:
    """How drift records and ASR tables are joined and related.

    Attributes:
        measures: Drift metrics to relate (default: those of ``DEFAULT_MEASURES`` present in the records).
        judges: Judges whose ASR is used (default: every judge in the ASR table).
        eval_langs: Evaluation languages (default: every language with ASR for a run and its parent).
        asr_metric: ASR metric of ``asr.csv`` (``asr`` or ``asr_incoherent_as_refusal``).
        category: Prompt category of the ASR rows (``all``: pooled over categories).
        drift_lang: ``match``: drift measured on the evaluation language's prompts, the pooled ``all`` value where
            a run has none (flagged ``pooled_drift``); ``pooled``: always the pooled value; ``strict``: per-language
            drift only.
        capability_metric: Capability control as ``suite:metric`` (or ``metric`` when unambiguous); None: none
            unless the capability records hold exactly one such pair.
        capability_lang: ``match`` (the evaluation language's value, else ``all``) or ``pooled`` (always ``all``).
        roles: Run roles related when the run table has roles (runs without roles: every run with a parent).
        pooled: Also relate over all evaluation languages together (``eval_lang='all'`` rows).
        n_boot: Bootstrap resamples of runs for the confidence intervals.
        n_perm: Permutations for the p-values; None: at least 2000 and enough that the correction can reach
            ``alpha`` (``4 * tests / alpha``, at most 200,000). Runs with ``n! <= n_perm`` are enumerated exactly.
        seed: Seed of the bootstrap and the permutations.
        correction: ``holm`` (family-wise) or ``bh`` (Benjamini-Hochberg false discovery rate).
        alpha: Level at which an adjusted p-value counts as significant.
        level: Confidence level of the intervals.
        min_runs: Results on fewer runs are flagged ``few_runs``.
        regression: ``auto`` (OLS with fixed effects; errors clustered by run when pooled, by seed when there are
            ``min_clusters`` seeds, else HC3), ``ols`` (classical errors, pooled rows taken as
            independent), ``mixed`` (MixedLM with a random intercept per seed, or per run when pooled; falls back to
            ``auto`` with fewer than ``min_clusters`` groups or when it does not converge), ``none``.
        min_clusters: Fewest seeds for errors clustered by seed in the per-language regressions (fewer: HC3), and
            fewest groups for a mixed model.
        primary: Statistic that picks the strongest layer in the summary.
    """

    measures: tuple[str, ...] | None = None
    judges: tuple[str, ...] | None = None
    eval_langs: tuple[str, ...] | None = None
    asr_metric: str = "asr"
    category: str = "all"
    drift_lang: str = "match"
    capability_metric: str | None = None
    capability_lang: str = "match"
    roles: tuple[str, ...] = ("finetuned",)
    pooled: bool = True
    n_boot: int = 2000
    n_perm: int | None = None
    seed: int = 0
    correction: str = "holm"
    alpha: float = 0.05
    level: float = 0.95
    min_runs: int = 5
    regression: str = "auto"
    min_clusters: int = 20
    primary: str = "spearman"

    def __post_init__(self) -> None:
        for name in ("measures", "judges", "eval_langs", "roles"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, tuple(v.strip() for v in value.split(",") if v.strip()))
            elif value is not None:
                object.__setattr__(self, name, tuple(value))
        choices = {"drift_lang": DRIFT_LANG_MODES, "capability_lang": ("match", "pooled"),
                   "regression": REGRESSIONS, "correction": CORRECTIONS, "primary": STATISTICS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise DriftError(f"relate option {name}={getattr(self, name)!r} is unknown: use one of "
                                 f"{', '.join(allowed)}")
        if self.n_boot < 0 or (self.n_perm is not None and self.n_perm < 1):
            raise DriftError("relate options n_boot and n_perm must be positive: n_boot=0 skips the intervals")
        if not (0 < self.alpha < 1 and 0 < self.level < 1):
            raise DriftError(f"relate options alpha={self.alpha} and level={self.level} must lie between 0 and 1")
        if self.min_runs < 3 or self.min_clusters < 2:
            raise DriftError("relate options need min_runs >= 3 and min_clusters >= 2")
