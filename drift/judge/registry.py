"""Judge names to implementations, imported lazily so optional dependencies load only when a judge is chosen."""

from __future__ import annotations

import importlib
from typing import Any

from drift.errors import DriftError
from drift.judge.base import Judge

# name -> "module:factory"; the factory takes keyword options and returns a Judge.
JUDGES: dict[str, str] = {
    "refusal-lexicon": "drift.judge.lexicon:LexiconJudge",
    "refusal-lexicon-strict": "drift.judge.lexicon:strict_lexicon_judge",
    "substring-en12": "drift.judge.substring:SubstringJudge",
    "llama-guard-3": "drift.judge.llama_guard:LlamaGuardJudge",
    "polyguard": "drift.judge.polyguard:PolyGuardJudge",
    "wildguard": "drift.judge.wildguard:WildGuardJudge",
    "sorrybench": "drift.judge.sorrybench:SorryBenchJudge",
    "llm": "drift.judge.llm:LLMJudge",
}


def judge_names() -> list[str]:
    """The registered judge names."""
    return sorted(JUDGES)


def make_judge(name: str, **options: Any) -> Judge:
    """Construct a judge by name with its options.

    Raises:
        DriftError: For an unknown name (the message lists the known ones) or bad options.
    """
    if name not in JUDGES:
        raise DriftError(f"unknown judge {name!r}; choose from {', '.join(judge_names())}")
    module_name, attr = JUDGES[name].split(":")
    factory = getattr(importlib.import_module(module_name), attr)
    try:
        return factory(**options)
    except TypeError as exc:
        raise DriftError(f"bad options for judge {name!r}: {exc}") from None
