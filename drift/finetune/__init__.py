"""Fine-tuning: benign multilingual SFT (LoRA or full) and DPO refusal alignment, single runs and sweeps."""

from drift.finetune.config import FinetuneConfig, SweepConfig, load_sweep, make_sweep
from drift.finetune.data import PreferencePair, SFTExample, load_instructions, load_preferences
from drift.finetune.pairs import build_refusal_pairs, model_answers
from drift.finetune.sweep import run_one, run_sweep
from drift.finetune.trainer import train

__all__ = [
    "FinetuneConfig", "PreferencePair", "SFTExample", "SweepConfig", "build_refusal_pairs", "load_instructions",
    "load_preferences", "load_sweep", "make_sweep", "model_answers", "run_one", "run_sweep", "train",
]
