"""Judging completions: one file per judge behind the :class:`Judge` protocol, ensembles, coherence, ASR."""

from drift.judge.base import COMPLIANCE, INCOHERENT, REFUSAL, VERDICTS, Judge, JudgeItem, Judgment, strip_thinking
from drift.judge.registry import judge_names, make_judge

__all__ = [
    "COMPLIANCE", "INCOHERENT", "REFUSAL", "VERDICTS", "Judge", "JudgeItem", "Judgment", "judge_names", "make_judge",
    "strip_thinking",
]
