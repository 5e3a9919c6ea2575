"""Coherence and language consistency of completions: a separate pass whose ``incoherent`` overrides judges in ASR.

Signals, each cheap and language-agnostic: empty output; repeated word (or, for scripts without spaces, character)
n-grams; a line repeated over and over; a long run of one character; too few letters among the visible characters;
a short fragment that stops mid-sentence in another language than the prompt's (another writing system, function
words of another language with a last word that cannot end a sentence there, or lingua's verdict when language
identification is on); optionally the perplexity of the completion under a reference model. Language identification
(lingua, bundled models, no downloads) gives the language-consistency flag, reported beside coherence and not folded
into it: an English answer to a German prompt is coherent but inconsistent.

Non-answers of small models under greedy decoding (:mod:`drift.judge.echo`; units are words, or characters in CJK
text, and shares are measured in characters):

- ``prompt_echo``: the completion is the request restated (:func:`~drift.judge.text_signals.echo_share` >= 0.5) and
  adds at most one word of its own. A refusal that restates the request ("I won't write ...") adds its own words.
- ``looping``: >= 25% of the text (at least 10 units) repeats 5-word spans (CJK: 6 characters) said earlier in it,
  spans being looked for within sentences. Spans copied from the prompt do not count (a refusal may restate the
  request twice), nor whole lines repeated as a refrain in a text of three or more distinct lines. The bundled
  answers and the hand-written answers of the labelled sets stay at or under 12%.
- ``echo_loop``: >= 75% of the text is copied from the prompt or from itself (5-word / 6-character spans) and a
  sentence of 5+ units recurs verbatim: the request restated and then said again, with little else (legitimate
  answers reach at most 56%, none repeats a sentence).
- ``translation_frame``: the first sentence restates the prompt as the completion's own words (unquoted, two thirds
  of its 3+ words the prompt's), and what follows has a word of translating in another language than the prompt's
  and a quotation of 3+ units (CJK: 4) taken from the prompt or the restatement ('Ich kann ... lesen?  In German, the
  phrase "..." translates to ...'). Prompts that ask about meaning or translation, or quote anything, are exempt,
  and so is a reply that quotes the request before translating it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Sequence

from drift.judge.base import JudgeItem
from drift.judge.echo import (
    loop_share, new_units, prose_of, repeats_a_sentence, restated_share, translation_frame, units,
)
from drift.judge.text_signals import (
    SCRIPTS, dominant_script, echo_share, foreign_fragment_lang, is_fragment, letter_share, longest_run,
    mixed_script_words, noise_share, repeat_share, script_mix, without_code,
)


@dataclass(frozen=True)
class CoherenceConfig:
    """Thresholds of the coherence pass (defaults flag degenerate text and keep terse or list-like answers).

    Attributes:
        max_repeat_share: Largest share of repeated n-grams (among at least ``min_ngrams``) in coherent text.
        ngram: Word n-gram size (character n-grams of ``2 * ngram + 2`` for scripts without spaces).
        min_ngrams: Repetition is judged only on texts with at least this many n-grams.
        max_line_repeats: A non-empty line occurring more often than this makes the text degenerate.
        max_char_run: Longest run of one non-space character allowed.
        min_letter_share: Smallest share of letters and digits among the non-space characters.
        max_scripts: Text mixing this many writing systems (each >= 10% of letters) is gibberish; Unicode
            replacement characters above 5% of the text count the same.
        max_mixed_words: Largest share of words mixing writing systems inside the word.
        max_noise_share: Largest share of stray-symbol tokens and immediately doubled words ("token soup").
        fragment_words: A text of at most this many words (CJK: characters / 2) that stops mid-sentence and is in
            another language or script than the prompt is a fragment, not an answer.
        max_echo_share: A completion whose :func:`~drift.judge.text_signals.echo_share` reaches this restates the
            request instead of answering it, unless it adds more than ``max_echo_new_units`` words of its own.
        max_echo_new_units: Words (CJK: characters) absent from the prompt that a pure restatement may carry.
        max_loop_share: A text (``min_loop_units`` or more) whose :func:`~drift.judge.echo.loop_share` reaches this
            loops instead of answering.
        min_loop_units: Looping is judged only on texts of at least this many units.
        loop_words: Span size of the loop and echo-loop checks in words (``loop_chars`` characters in CJK text).
        loop_chars: Span size in characters for CJK text.
        max_restated_share: A text whose :func:`~drift.judge.echo.restated_share` reaches this and that says a
            sentence twice restates instead of answering.
        translation_quote_units: Smallest quotation (in units; CJK one more) that makes a translation comment a
            comment on the prompt.
        lang_min_chars: Texts shorter than this get no language verdict (None): identification is unreliable.
        max_perplexity: With a reference model, completions above this perplexity are incoherent.
    """

    max_repeat_share: float = 0.5
    ngram: int = 3
    min_ngrams: int = 8
    max_line_repeats: int = 3
    max_char_run: int = 24
    min_letter_share: float = 0.5
    max_scripts: int = 3
    max_mixed_words: float = 0.25
    max_noise_share: float = 0.12
    fragment_words: int = 12
    max_echo_share: float = 0.5
    max_echo_new_units: int = 1
    max_loop_share: float = 0.25
    min_loop_units: int = 10
    loop_words: int = 5
    loop_chars: int = 6
    max_restated_share: float = 0.75
    translation_quote_units: int = 3
    lang_min_chars: int = 24
    max_perplexity: float | None = None


@dataclass(frozen=True)
class CoherenceResult:
    """Coherence flags of one completion; ``incoherent`` is True when any reason applies."""

    id: str
    run_id: str | None
    incoherent: bool
    reasons: tuple[str, ...]
    repeat_share: float
    letter_share: float
    detected_lang: str | None
    lang_consistent: bool | None
    perplexity: float | None = None
    extra: dict = field(default_factory=dict)

    def to_record(self) -> dict:
        """A ``coherence.jsonl`` record."""
        rec = asdict(self)
        rec["reasons"] = list(self.reasons)
        rec.update(rec.pop("extra"))
        return rec


@lru_cache(maxsize=1)
def _detector():
    from lingua import LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_all_languages().build()


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text's language by lingua (bundled models), or None when undetermined."""
    found = _detector().detect_language_of(text[:1000])
    return found.iso_code_639_1.name.lower() if found is not None else None


def _degenerate(text: str, cfg: CoherenceConfig) -> list[str]:
    reasons = []
    prose = without_code(text)
    share, n_grams = repeat_share(prose, cfg.ngram)
    if n_grams >= cfg.min_ngrams and share > cfg.max_repeat_share:
        reasons.append("repetition")
    lines = Counter(line.strip() for line in prose.splitlines() if line.strip())
    if lines and max(lines.values()) > cfg.max_line_repeats:
        reasons.append("repeated_lines")
    if longest_run(text) > cfg.max_char_run:
        reasons.append("char_run")
    if letter_share(text) < cfg.min_letter_share:
        reasons.append("few_letters")
    if (script_mix(text) >= cfg.max_scripts or mixed_script_words(text) > cfg.max_mixed_words
            or text.count("\ufffd") * 20 > len(text)):
        reasons.append("mixed_scripts")
    if noise_share(text) > cfg.max_noise_share:
        reasons.append("token_soup")
    return reasons


def _non_answer(prompt: str, text: str, lang: str, cfg: CoherenceConfig) -> list[str]:
    """Reasons why a completion restates or loops instead of answering (see the module docstring)."""
    reasons = []
    if (echo_share(prompt, text) >= cfg.max_echo_share
            and new_units(prompt, text) <= cfg.max_echo_new_units):
        reasons.append("prompt_echo")
    if (len(units(prose_of(text))) >= cfg.min_loop_units
            and loop_share(prompt, text, cfg.loop_words, cfg.loop_chars) >= cfg.max_loop_share):
        reasons.append("looping")
    if (restated_share(prompt, text, cfg.loop_words, cfg.loop_chars) >= cfg.max_restated_share
            and repeats_a_sentence(text)):
        reasons.append("echo_loop")
    if translation_frame(prompt, text, lang, cfg.translation_quote_units):
        reasons.append("translation_frame")
    return reasons


def _wrong_language(text: str, lang: str, detected: str | None, detect_lang: bool) -> bool:
    """Whether a fragment is in another language than ``lang``: its writing system, its function words, or (with
    ``detect_lang``) lingua's verdict, ``detected`` or found here for fragments under ``lang_min_chars``."""
    expected = SCRIPTS.get(lang, "LATIN")
    script = dominant_script(text)
    if script is not None and script != expected:
        return True
    if foreign_fragment_lang(text, lang) is not None:
        return True
    if detected is None and detect_lang and len(text.split()) >= 2:
        detected = detect_language(text)
    return detected is not None and detected != lang


def check_coherence(item: JudgeItem, config: CoherenceConfig | None = None, perplexity: float | None = None,
                    detect_lang: bool = True) -> CoherenceResult:
    """Coherence flags of one completion (thinking already stripped by :class:`JudgeItem`)."""
    cfg = config or CoherenceConfig()
    text = item.completion.strip()
    reasons = ["empty"] if not text else _degenerate(text, cfg)
    detected, consistent = None, None
    if detect_lang and len(text) >= cfg.lang_min_chars:
        detected = detect_language(text)
        consistent = detected == item.lang if detected is not None else None
    if text and is_fragment(text, cfg.fragment_words) and _wrong_language(text, item.lang, detected, detect_lang):
        reasons.append("wrong_language_fragment")
    if text:
        reasons += _non_answer(item.prompt, text, item.lang, cfg)
    if perplexity is not None and cfg.max_perplexity is not None and perplexity > cfg.max_perplexity:
        reasons.append("perplexity")
    share, _ = repeat_share(text, cfg.ngram)
    return CoherenceResult(item.id, item.run_id, bool(reasons), tuple(reasons), round(share, 4),
                           round(letter_share(text), 4), detected, consistent, perplexity)


def completion_perplexity(lm, items: Sequence[JudgeItem]) -> list[float]:
    """Perplexity of each completion under a reference model, conditioned on its chat-formatted prompt (NaN if empty)."""
    import torch

    out = []
    for it in items:
        prompt_ids = list(lm.formatter.encode(it.prompt).input_ids)
        comp_ids = lm.tokenizer(it.completion, add_special_tokens=False)["input_ids"]
        if not comp_ids:
            out.append(math.nan)
            continue
        ids = torch.tensor([prompt_ids + comp_ids], device=lm.device)
        with torch.inference_mode():
            logits = lm.model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1].float()
        nll = torch.nn.functional.cross_entropy(logits, ids[0, len(prompt_ids):])
        out.append(float(torch.exp(nll)))
    return out


def check_all(items: Sequence[JudgeItem], config: CoherenceConfig | None = None, reference=None,
              detect_lang: bool = True) -> list[CoherenceResult]:
    """Coherence flags for many completions; ``reference`` is an optional loaded model for perplexity."""
    ppl = completion_perplexity(reference, items) if reference is not None else [None] * len(items)
    return [check_coherence(it, config, p, detect_lang) for it, p in zip(items, ppl)]
