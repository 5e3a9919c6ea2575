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

    A name ending in ``+bt`` (e.g. ``substring-en12+bt``) wraps the judge in back-translation to English; its
    ``translator`` option is a dict for :func:`drift.judge.translate.make_translator` (``kind`` endpoint or local).

    Raises:
        DriftError: For an unknown name (the message lists the known ones) or bad options.
    """
    if name.endswith("+bt"):
        from drift.judge.translate import BackTranslated, make_translator

        translator = dict(options.pop("translator", {}))
        return BackTranslated(make_judge(name[:-3], **options), make_translator(**translator))
    if name not in JUDGES:
        raise DriftError(f"unknown judge {name!r}; choose from {', '.join(judge_names())}")
    module_name, attr = JUDGES[name].split(":")
    factory = getattr(importlib.import_module(module_name), attr)
    try:
        return factory(**options)
    except TypeError as exc:
        raise DriftError(f"bad options for judge {name!r}: {exc}") from None
