"""Fine-tuning settings: one frozen dataclass per run, and a sweep that expands to language x seed x epochs runs."""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from drift.errors import DriftError

METHODS = ("sft", "dpo")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class FinetuneConfig:
    """One fine-tuning run.

    Attributes:
        method: ``sft`` (instruction tuning, loss on response tokens) or ``dpo`` (preference pairs).
        model: Base model spec (``default``, hub id, local dir, ``.gguf``).
        data: SFT examples (``builtin:instructions``, JSON/JSONL/dataset folder) or, for DPO, a preference file or
            ``builtin:refusal-pairs`` (bundled harmful/harmless prompts; rejected/helpful sides from the model).
        langs: Fine-tuning languages to keep (empty: all in the data).
        limit_per_lang: Keep at most this many examples per language.
        heldout_fraction: Share of item groups kept out of training (the same groups for every run of a sweep and
            every language), on which the task's own capability is measured.
        lora: Train a LoRA adapter (False: full fine-tuning).
        lora_r, lora_alpha, lora_dropout: LoRA rank, scale and dropout.
        lora_targets: Module names to adapt, or ``all-linear``.
        learning_rate, epochs, batch_size, grad_accum, max_length, seed: The usual.
        max_steps: Stop after this many optimizer steps (-1: run the epochs).
        scheduler: Learning-rate schedule (``linear``, ``constant``, ``cosine``...).
        warmup_ratio, weight_decay: Optimizer settings.
        precision: ``fp32``, ``bf16`` (autocast; fine on recent CPUs and GPUs) or ``fp16`` (GPU).
        gradient_checkpointing: Trade compute for memory (keep False on CPU: it only slows small models down).
        beta: DPO temperature.
        sft_weight: Weight of the chosen-answer likelihood term mixed into DPO (0: plain DPO).
        save: ``adapter`` (LoRA only) or ``merged`` (full weights).
        device: ``auto``, ``cpu``, ``cuda``.
    """

    method: str = "sft"
    model: str = "default"
    data: str = "builtin:instructions"
    langs: tuple[str, ...] = ()
    limit_per_lang: int | None = None
    heldout_fraction: float = 0.1
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] | str = "all-linear"
    learning_rate: float = 2e-4
    epochs: float = 1.0
    batch_size: int = 8
    grad_accum: int = 1
    max_length: int = 256
    seed: int = 0
    max_steps: int = -1
    scheduler: str = "linear"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    precision: str = "fp32"
    gradient_checkpointing: bool = False
    beta: float = 0.1
    sft_weight: float = 0.0
    save: str = "adapter"
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise DriftError(f"unknown method {self.method!r}: use sft or dpo")
        if self.precision not in PRECISIONS:
            raise DriftError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.save not in ("adapter", "merged") or (self.save == "adapter" and not self.lora):
            raise DriftError("save must be 'adapter' (with LoRA) or 'merged'; full fine-tuning saves merged weights")
        for name in ("learning_rate", "epochs", "batch_size", "grad_accum", "max_length", "lora_r"):
            if getattr(self, name) <= 0:
                raise DriftError(f"{name} must be positive, got {getattr(self, name)}")
        if isinstance(self.langs, list):
            object.__setattr__(self, "langs", tuple(self.langs))
        if isinstance(self.lora_targets, list):
            object.__setattr__(self, "lora_targets", tuple(self.lora_targets))

    def to_dict(self) -> dict:
        """JSON-ready settings."""
        return asdict(self)


@dataclass(frozen=True)
class SweepConfig:
    """A sweep: the base config run for every fine-tuning language x seed x epochs (``langs=[]``: one run on all)."""

    base: FinetuneConfig
    langs: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    epochs: tuple[float, ...] = (1.0,)
    out: str = "runs"
    name: str = field(default="")

    def runs(self) -> list[tuple[str, FinetuneConfig]]:
        """(run folder name, config) for every run of the sweep, in a fixed order."""
        langs = [(lang,) for lang in self.langs] or [self.base.langs]
        out = []
        for lang, seed, ep in itertools.product(langs, self.seeds, self.epochs):
            tag = "+".join(lang) or "all"
            name = f"{self.base.method}-{tag}-s{seed}-e{ep:g}"
            out.append((name, replace(self.base, langs=tuple(lang), seed=seed, epochs=float(ep))))
        return out


def load_sweep(path: str | Path, **overrides) -> SweepConfig:
    """Read a sweep from TOML: a ``[finetune]`` table with FinetuneConfig fields plus ``langs``, ``seeds``,
    ``epochs`` (lists) and ``out``. ``overrides`` (non-None) replace values from the file."""
    path = Path(path)
    if not path.is_file():
        raise DriftError(f"config file not found: {path}")
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("finetune")
    except tomllib.TOMLDecodeError as e:
        raise DriftError(f"{path} is not valid TOML: {e}") from None
    if table is None:
        raise DriftError(f"{path} has no [finetune] table")
    return make_sweep(table | {k: v for k, v in overrides.items() if v is not None}, where=str(path))


def make_sweep(table: dict, where: str = "arguments") -> SweepConfig:
    """Build a sweep from a flat dict (TOML table or CLI flags); unknown keys are an error."""
    table = dict(table)
    sweep_keys = {"langs": (), "seeds": (0,), "epochs": (1.0,), "out": "runs", "name": ""}
    sweep = {k: table.pop(k, v) for k, v in sweep_keys.items()}
    known = {f.name for f in fields(FinetuneConfig)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise DriftError(f"unknown fine-tuning setting(s) {unknown} in {where}; known: {sorted(known)}")
    for key in ("langs", "seeds", "epochs"):
        value = sweep[key]
        sweep[key] = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    return SweepConfig(FinetuneConfig(**table), sweep["langs"], tuple(int(s) for s in sweep["seeds"]),
                       tuple(float(e) for e in sweep["epochs"]), str(sweep["out"]), str(sweep["name"]))
