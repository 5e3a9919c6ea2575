"""Study configuration: one TOML file describes the whole study (``drift run STUDY.toml``)."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from drift.errors import DriftError


@dataclass(frozen=True)
class EvalConfig:
    """Which prompts every model state is evaluated, captured and measured on (``autocast = "bfloat16"`` runs
    generation under bf16 autocast; capture always runs in the model's own dtype)."""

    prompts: str = "builtin:prompts"
    langs: tuple[str, ...] = ("en", "de", "fr", "zh")
    limit_per_lang: int = 20
    heldout_fraction: float = 0.5
    max_new_tokens: int = 48
    batch_size: int = 20
    autocast: str | None = None
    judges: tuple[str, ...] = ("refusal-lexicon", "refusal-lexicon-strict")
    primary_judge: str = "refusal-lexicon-strict"
    sites: tuple[str, ...] = ("resid_post",)
    positions: tuple[str, ...] = ("last",)
    compare_metrics: tuple[str, ...] = ("linear_cka", "debiased_cka", "cosine", "rel_norm_change",
                                        "direction_cosine", "proj_shift")
    probes: bool = True
    capability_suites: tuple[str, ...] = ("perplexity", "mcq", "task", "fluency")
    capability_limit: int = 20


@dataclass(frozen=True)
class StudyConfig:
    """A study: base model, optional refusal alignment, a benign fine-tuning sweep, and the evaluation.

    Attributes:
        name: Study name.
        model: Base model spec.
        out: Study folder.
        device: ``auto``, ``cpu`` or ``cuda``.
        align: FinetuneConfig fields (plus ``langs``, trained jointly) for DPO refusal alignment of the base model
            before the sweep, or a list of such tables to compare alignments (empty: the sweep starts from the base).
        finetune: Sweep fields (FinetuneConfig fields plus ``langs``, ``seeds``, ``epochs``) for the benign
            fine-tuning of the (aligned) model.
        eval: What every model state is evaluated on.
    """

    name: str = "study"
    model: str = "default"
    out: str = "studies/study"
    device: str = "auto"
    align: dict | list = field(default_factory=dict)
    finetune: dict = field(default_factory=dict)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        """JSON-ready configuration."""
        return asdict(self)


def _tuples(table: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}


def study_from_dict(table: dict, where: str = "config") -> StudyConfig:
    """Build a StudyConfig from a dict with ``[study]``, ``[align]``, ``[finetune]`` and ``[eval]`` tables."""
    unknown = sorted(set(table) - {"study", "align", "finetune", "eval"})
    if unknown:
        raise DriftError(f"unknown table(s) {unknown} in {where}: use [study], [align], [finetune], [eval]")
    study = dict(table.get("study", {}))
    known = {f.name for f in fields(StudyConfig)} - {"align", "finetune", "eval"}
    bad = sorted(set(study) - known)
    if bad:
        raise DriftError(f"unknown [study] key(s) {bad} in {where}; known: {sorted(known)}")
    ev = dict(table.get("eval", {}))
    bad = sorted(set(ev) - {f.name for f in fields(EvalConfig)})
    if bad:
        raise DriftError(f"unknown [eval] key(s) {bad} in {where}; known: {sorted(f.name for f in fields(EvalConfig))}")
    _check_primary_judge(ev, where)
    align = table.get("align", {})
    align = [dict(a) for a in align] if isinstance(align, list) else dict(align)
    return StudyConfig(**study, align=align, finetune=dict(table.get("finetune", {})),
                       eval=EvalConfig(**_tuples(ev)))


def _check_primary_judge(ev: dict, where: str) -> None:
    """Default ``primary_judge`` to the first judge when the default is not among ``judges``; refuse a named one
    that is not."""
    judges = list(ev.get("judges", EvalConfig.judges))
    if "primary_judge" not in ev:
        if EvalConfig.primary_judge not in judges and judges:
            ev["primary_judge"] = judges[0]
    elif ev["primary_judge"] not in judges:
        raise DriftError(f"[eval] primary_judge {ev['primary_judge']!r} in {where} is not one of the judges "
                         f"{judges}: add it to judges or pick one of them")


def load_study(path: str | Path) -> StudyConfig:
    """Read a study TOML file."""
    path = Path(path)
    if not path.is_file():
        raise DriftError(f"study file not found: {path}")
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise DriftError(f"{path} is not valid TOML: {e}") from None
    return study_from_dict(table, str(path))
