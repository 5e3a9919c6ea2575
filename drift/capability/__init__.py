"""Capability grounding: perplexity, multiple-choice accuracy, task capability, fluency, capability matching."""

from drift.capability.matched import compare_matched, match_capability
from drift.capability.mcq import MCQItem, evaluate_mcq, load_mcq
from drift.capability.measures import (
    fluency_records, mcq_records, response_perplexity, task_records, text_perplexity,
)

__all__ = [
    "MCQItem", "compare_matched", "evaluate_mcq", "fluency_records", "load_mcq", "match_capability", "mcq_records",
    "response_perplexity", "task_records", "text_perplexity",
]
