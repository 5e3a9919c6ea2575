"""Builders of refusal-alignment preference pairs (the RefusEU recipe).

For harmful prompts: chosen = a refusal in the prompt's language, rejected = a compliance, by default the model's own
greedy answer (the recipe starts from a model whose refusal was removed). Harmless prompts are mixed in the other way
round (chosen = a helpful answer, rejected = a refusal), so the model does not learn to refuse everything.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from drift.data.records import Prompt
from drift.errors import DriftError
from drift.finetune.data import PreferencePair, bundled_refusals


def model_answers(lm, prompts: Sequence[Prompt], max_new_tokens: int = 96, batch_size: int = 16,
                  autocast: str | None = None) -> dict[str, str]:
    """The model's own greedy answers, by prompt id (used as the rejected side, or as helpful chosen answers)."""
    from drift.generate import GenerationConfig
    from drift.generate.hf_backend import generate_batches

    cfg = GenerationConfig(max_new_tokens=max_new_tokens, batch_size=batch_size, autocast=autocast)
    out: dict[str, str] = {}
    for batch in generate_batches(lm, [p.text for p in prompts], cfg):
        out.update({prompts[i].id: g.completion.strip() for i, g in batch})
    return out


def build_refusal_pairs(
    harmful: Sequence[Prompt],
    rejected: dict[str, str] | Callable[[Sequence[Prompt]], dict[str, str]],
    harmless: Sequence[Prompt] = (),
    helpful: dict[str, str] | Callable[[Sequence[Prompt]], dict[str, str]] | None = None,
    refusals: dict[str, list[str]] | None = None,
    seed: int = 0,
) -> list[PreferencePair]:
    """Preference pairs for refusal alignment.

    Args:
        harmful: Harmful prompts; chosen = a refusal in the prompt's language (phrasing drawn per prompt).
        rejected: Compliant answers to the harmful prompts by id, or a function producing them (e.g. a
            ``functools.partial`` of :func:`model_answers`). Empty answers are skipped.
        harmless: Harmless prompts to mix in; chosen = a helpful answer, rejected = a refusal.
        helpful: Helpful answers to the harmless prompts by id, or a function producing them.
        refusals: Refusal phrasings per language (default: the bundled ones).
        seed: Seed of the phrasing draw.
    """
    if not harmful:
        raise DriftError("no harmful prompts to build refusal pairs from: check the prompt set and its filters")
    if harmless and helpful is None:
        raise DriftError("harmless prompts need helpful answers (a dict by id or a function such as model_answers)")
    rng = random.Random(seed)
    pool = dict(refusals or {})

    def refusal(lang: str) -> str:
        if lang not in pool:
            pool[lang] = bundled_refusals(lang)
        return rng.choice(pool[lang])

    bad = rejected(harmful) if callable(rejected) else rejected
    good = (helpful(harmless) if callable(helpful) else helpful) if harmless else {}
    pairs = [PreferencePair(f"dpo-{p.id}", p.group, p.lang, "harmful", p.text, refusal(p.lang), bad[p.id],
                            "polydrift-refusal") for p in harmful if (bad.get(p.id) or "").strip()]
    pairs += [PreferencePair(f"dpo-{p.id}", p.group, p.lang, "harmless", p.text, good[p.id], refusal(p.lang),
                             "polydrift-helpful") for p in harmless if (good.get(p.id) or "").strip()]
    if not pairs:
        raise DriftError("every answer was empty: no preference pairs could be built")
    return pairs
