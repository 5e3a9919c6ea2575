"""Signals of completions that loop on themselves or restate the prompt instead of answering it.

Small models under greedy decoding often produce text that is fluent word by word but carries no answer: the prompt
restated (often in the first person) and then repeated, a clause that keeps coming back ("X qui est une X qui est une
X"), or a comment on how the prompt's words translate. Everything here works on *units*: words (runs of letters,
digits and combining marks) in scripts with spaces, single characters in Chinese, Japanese and Korean, so spans and
shares mean the same in every language; shares are measured in characters, so long words and CJK characters weigh
what they occupy on the page.
"""

from __future__ import annotations

import re
import unicodedata

from drift.judge.text_signals import is_cjk, without_code

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
# Verbs and nouns of translating, by the languages they belong to (a comment on translation in the prompt's own
# language is left alone; one in another language is a switch into meta-commentary).
_TRANSLATE = {
    "translat": "en", "übersetz": "de", "tradu": "fr es it pt", "tłumacz": "pl", "przetłumacz": "pl",
    "přelož": "cs", "překl": "cs", "prelož": "sk", "prekl": "sk", "oversæt": "da", "översätt": "sv",
    "vertaal": "nl", "перевод": "ru", "переведен": "ru", "μετάφρ": "el", "μεταφρ": "el", "翻译": "zh",
    "译成": "zh", "译为": "zh", "ترجم": "ar", "अनुवाद": "hi", "tafsiri": "sw", "isalin": "tl", "išvers": "lt",
    "vertim": "lt", "tulko": "lv",
}
# A prompt that asks what words mean or how they translate makes a translation comment an answer, not a non-answer.
_ASKS_MEANING = re.compile(
    "|".join(_TRANSLATE) + r"|mean|bedeut|heißt|signif|veut dire|quiere decir|vuol dire|quer dizer|znacz|znamen|"
    r"значит|значение|σημαίν|意思|含义|什么叫|يعني|मतलब|अर्थ|maana|ibig sabihin|reiškia|nozīmē|betyd", re.IGNORECASE)
_QUOTED = re.compile(r'"([^"\n]+)"|“([^”\n]+)”|„([^“”\n]+)[“”]|«([^»\n]+)»|「([^」\n]+)」|『([^』\n]+)』')
_QUOTE_MARKS = set("\"“”„«»「」『』")
_SENTENCE_END = re.compile(r"[.!?。！？\n]+")
_INLINE_CODE = re.compile(r"`[^`\n]+`")


def units(text: str) -> list[tuple[str, int]]:
    """The text's units with their length in characters: casefolded words (letters, digits and combining marks, so
    Devanagari or Arabic words stay whole) and single CJK characters; punctuation and spaces are dropped."""
    out: list[tuple[str, int]] = []
    word: list[str] = []
    for c in text:
        if _CJK.match(c) or unicodedata.category(c)[0] not in "LNM":
            if word:
                out.append(("".join(word).casefold(), len(word)))
                word = []
            if _CJK.match(c):
                out.append((c, 1))
        else:
            word.append(c)
    if word:
        out.append(("".join(word).casefold(), len(word)))
    return out


def span_size(text: str, words: int = 5, chars: int = 6) -> int:
    """Units in a span worth noticing when repeated: ``words`` words, or ``chars`` characters in CJK text."""
    return chars if is_cjk(text) else words


def prose_of(text: str) -> str:
    """The text without fenced code blocks and inline code spans (code repeats itself legitimately)."""
    return _INLINE_CODE.sub(" ", without_code(text))


def _grams(toks: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]


def _sentences(text: str) -> list[list[tuple[str, int]]]:
    """The units of each sentence or line: spans are looked for inside sentences, so that list items built on one
    template ("Add 1 cup of flour to the bowl.", "Add 1 cup of sugar ...") do not join into repeated spans."""
    return [us for part in _SENTENCE_END.split(text) if (us := units(part))]


def _char_share(parts: list[list[tuple[str, int]]], covered: list[list[bool]]) -> float:
    total = sum(size for us in parts for _, size in us)
    hit = sum(size for us, cov in zip(parts, covered) for (_, size), c in zip(us, cov) if c)
    return hit / total if total else 0.0


def _cover(parts: list[list[tuple[str, int]]], n: int, prompt_grams: set, count_prompt: bool) -> list[list[bool]]:
    """Per sentence, which units lie in a span of ``n`` units that already occurred earlier in the text (spans found
    in the prompt excluded unless ``count_prompt``) or, with ``count_prompt``, anywhere in the prompt."""
    seen: set = set()
    out = []
    for us in parts:
        covered = [False] * len(us)
        for i, gram in enumerate(_grams([u for u, _ in us], n)):
            in_prompt = gram in prompt_grams
            if (count_prompt and in_prompt) or (gram in seen and not in_prompt):
                covered[i:i + n] = [True] * n
            seen.add(gram)
        out.append(covered)
    return out


def _prompt_grams(prompt: str, n: int) -> set:
    return {g for us in _sentences(prompt) for g in _grams([u for u, _ in us], n)}


def _without_refrains(text: str, min_distinct: int = 3) -> str:
    """The text with lines that repeat an earlier line (compared by their units) dropped, when it has at least
    ``min_distinct`` distinct lines: a poem's refrain or a list's repeated heading (how often a line may recur is
    the ``repeated_lines`` check's business)."""
    first: dict[tuple[str, ...], str] = {}
    for line in text.splitlines():
        key = tuple(u for u, _ in units(line))
        if key:
            first.setdefault(key, line)
    return "\n".join(first.values()) if len(first) >= min_distinct else text


def loop_share(prompt: str, completion: str, words: int = 5, chars: int = 6) -> float:
    """Share of the completion's characters that repeat a span of ``words`` words (CJK: ``chars`` characters) said
    earlier in it, not counting spans taken from the prompt (restating the request twice, as refusals do, is not a
    loop) nor whole lines repeated as a refrain. Hand-written answers and lists stay at or under 0.12; text that
    circles back on a clause ("est une méthamine qui est une méthamine", "可以在你的美丽范围内获取，但是它可以在你的美丽
    范围内获取") scores 0.25 to 0.9."""
    text = _without_refrains(prose_of(completion))
    n = span_size(text, words, chars)
    parts = _sentences(text)
    return _char_share(parts, _cover(parts, n, _prompt_grams(prompt, n), count_prompt=False))


def restated_share(prompt: str, completion: str, words: int = 5, chars: int = 6) -> float:
    """Share of the completion's characters inside spans (``words`` words, CJK ``chars`` characters) copied from the
    prompt or from earlier in the completion: what is left is the completion's own new content."""
    text = prose_of(completion)
    n = span_size(text, words, chars)
    parts = _sentences(text)
    return _char_share(parts, _cover(parts, n, _prompt_grams(prompt, n), count_prompt=True))


def repeats_a_sentence(completion: str, min_units: int = 5) -> bool:
    """Whether a sentence of at least ``min_units`` units recurs verbatim (as the same run of units) later in the
    text, e.g. a restated prompt said again after a label ("A: ...", "Première : « ... »")."""
    sentences = [tuple(u for u, _ in us) for us in _sentences(prose_of(completion))]
    for i, sent in enumerate(sentences):
        if len(sent) < min_units:
            continue
        for later in sentences[i + 1:]:
            if any(later[j:j + len(sent)] == sent for j in range(len(later) - len(sent) + 1)):
                return True
    return False


def new_units(prompt: str, completion: str) -> int:
    """How many of the completion's units (words; CJK characters) never occur in the prompt."""
    known = {u for u, _ in units(prompt)}
    return sum(u not in known for u, _ in units(completion))


def _known(unit: str, vocab: set[str], stem: int = 6) -> bool:
    if unit in vocab:
        return True
    return len(unit) >= stem and any(v.startswith(unit[:stem]) for v in vocab if len(v) >= stem)


def _mostly_from(span: str, source: str, min_units: int) -> bool:
    """Whether a span of at least ``min_units`` units is mostly (two thirds) words of ``source``, matched on their
    first six letters so that inflected forms count."""
    q = [u for u, _ in units(span)]
    if len(q) < min_units:
        return False
    vocab = {u for u, _ in units(source)}
    return sum(_known(u, vocab) for u in q) * 3 >= 2 * len(q)


def _translates_elsewhere(text: str, lang: str) -> bool:
    low = text.casefold()
    return any(stem in low and lang not in langs.split() for stem, langs in _TRANSLATE.items())


def translation_frame(prompt: str, completion: str, lang: str, min_units: int = 3) -> bool:
    """Whether the completion restates the prompt as its own words and then comments on how they translate instead
    of answering: its first sentence is unquoted and mostly the prompt's words, and what follows has a word of
    translating from another language than ``lang`` and a quotation of at least ``min_units`` units (CJK: one more)
    taken from the prompt or the restatement ('Ich kann ... lesen? In German, the phrase "..." translates to').
    A prompt that itself asks about meaning or translation, or quotes anything, is left alone, and so is a reply
    that quotes the request before translating it (an English refusal may explain what it declines)."""
    if _ASKS_MEANING.search(prompt) or any(c in _QUOTE_MARKS for c in prompt):
        return False
    text = completion.strip()
    end = _SENTENCE_END.search(text)
    cut = end.end() if end else len(text)
    opening, rest = text[:cut], text[cut:]
    if any(c in _QUOTE_MARKS for c in opening) or not _mostly_from(opening, prompt, min_units):
        return False
    if not _translates_elsewhere(rest, lang):
        return False
    for m in _QUOTED.finditer(rest):
        quote = next(g for g in m.groups() if g is not None)
        need = min_units + 1 if is_cjk(quote) else min_units
        if _mostly_from(quote, prompt + "\n" + opening + rest[:m.start()], need):
            return True
    return False
