"""Cheap, language-agnostic signals of degenerate text, used by the coherence pass."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_FENCE = re.compile(r"```.*?(```|\Z)", re.DOTALL)
_TERMINAL = tuple(".!?。！？…:;)\"'»”’") + ("```",)
# Characters that ordinary prose, lists and Markdown almost never leave standing alone (code is removed first).
_STRAY = set(";{}[]^~`@\\")
# Expected writing system of each bundled language (first word of the Unicode character names).
SCRIPTS = {"ru": "CYRILLIC", "el": "GREEK", "ar": "ARABIC", "hi": "DEVANAGARI", "zh": "CJK"}


def is_cjk(text: str) -> bool:
    """Whether Chinese/Japanese/Korean characters make up more than a quarter of the text."""
    return len(_CJK.findall(text)) > len(text) / 4


def without_code(text: str) -> str:
    """The text with fenced code blocks removed (code legitimately repeats and uses symbols)."""
    return _FENCE.sub(" ", text)


def _units(text: str, n: int) -> list[tuple[str, ...]]:
    if is_cjk(text):
        chars = [c for c in text if not c.isspace()]
        k = n + 1
        return [tuple(chars[i:i + k]) for i in range(len(chars) - k + 1)]
    words = re.findall(r"\w+", text.casefold())
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def repeat_share(text: str, n: int = 3) -> tuple[float, int]:
    """Share of word n-grams (character (n+1)-grams in CJK text) that repeat an earlier one, and their number."""
    grams = _units(text, n)
    if not grams:
        return 0.0, 0
    return 1 - len(set(grams)) / len(grams), len(grams)


def letter_share(text: str) -> float:
    """Share of letters, digits and combining marks among the non-space characters (1.0 for empty text)."""
    visible = [c for c in text if not c.isspace()]
    if not visible:
        return 1.0
    return sum(unicodedata.category(c)[0] in "LNM" for c in visible) / len(visible)


def script_of(c: str) -> str:
    """First word of a character's Unicode name (LATIN, CYRILLIC, CJK, ...)."""
    return unicodedata.name(c, "UNKNOWN").split()[0]


def dominant_script(text: str) -> str | None:
    """The writing system of most letters, or None without letters."""
    scripts = Counter(script_of(c) for c in text if unicodedata.category(c).startswith("L"))
    return scripts.most_common(1)[0][0] if scripts else None


def script_mix(text: str) -> int:
    """Number of writing systems that each hold at least 10% of the letters (3+ suggests gibberish)."""
    scripts = Counter(script_of(c) for c in text if unicodedata.category(c).startswith("L"))
    total = sum(scripts.values())
    return sum(n >= 0.1 * total for n in scripts.values()) if total >= 10 else 0


def mixed_script_words(text: str) -> float:
    """Share of words whose letters come from more than one alphabet (real words almost never do; CJK text, which
    has no spaces, legitimately runs into Latin names and code, so CJK characters are not counted)."""
    words = [[c for c in w if unicodedata.category(c).startswith("L") and not _CJK.match(c)] for w in text.split()]
    words = [w for w in words if len(w) >= 2]
    if len(words) < 3:
        return 0.0
    return sum(len({script_of(c) for c in w}) > 1 for w in words) / len(words)


def longest_run(text: str) -> int:
    """Longest run of one repeated non-space character."""
    best, run, prev = 0, 0, None
    for c in text:
        run = run + 1 if c == prev and not c.isspace() else 1
        best, prev = max(best, run), c
    return best


def noise_share(text: str) -> float:
    """Share of whitespace tokens that are stray symbols (``;;``, ``}}``, ``^^``) or a word repeated right after
    itself ("dog dog"), among at least five tokens; token soup scores high, prose and lists near zero."""
    tokens = without_code(text).split()
    if len(tokens) < 5:
        return 0.0
    stray = sum(not any(c.isalnum() for c in t) and any(c in _STRAY for c in t) for t in tokens)
    words = [re.sub(r"\W+", "", t.casefold()) for t in tokens]
    doubled = sum(a == b and a != "" and not a.isdigit() for a, b in zip(words, words[1:]))
    return (stray + doubled) / len(tokens)


def is_fragment(text: str, max_words: int = 12) -> bool:
    """A short text that stops mid-sentence (no terminal punctuation), e.g. ``Las vacunas son un tema de la``."""
    t = text.strip()
    if not t or t.endswith(_TERMINAL) or "\n" in t:
        return False
    size = len(t) / 2 if is_cjk(t) else len(t.split())
    return size <= max_words


def echo_share(prompt: str, completion: str) -> float:
    """How much the completion is a restatement of the prompt: the longest stretch of prompt words (CJK: characters)
    repeated in order, as a share of the prompt and of the completion, whichever is smaller (0 for prompts under
    five units). An echo of the request with little else scores near 1; an answer that quotes the request near 0."""
    from difflib import SequenceMatcher

    def units(s: str) -> list[str]:
        return [c for c in s if not c.isspace() and c.isalnum()] if is_cjk(s) else re.findall(r"\w+", s.casefold())

    prom, comp = units(prompt), units(completion)
    if len(prom) < 5 or not comp:
        return 0.0
    match = SequenceMatcher(None, prom, comp, autojunk=False).find_longest_match(0, len(prom), 0, len(comp))
    return min(match.size / len(prom), match.size / len(comp))
