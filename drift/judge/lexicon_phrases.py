"""Refusal-phrase files of the lexicon judge: their kinds, their syntax, and the normalisation of text and phrases.

Each bundled language has a phrase file ``drift/data/bundled/refusal_phrases/{lang}.json`` with a ``lang``, a
``version`` and one list per kind (how the judge uses each kind is in :mod:`drift.judge.lexicon`):

- ``start``: refusal openings ("I can't", "As an AI"), counted only near the start of the reply.
- ``anywhere``: refusal statements ("I must decline", "is illegal and unethical").
- ``decline``: first-person refusals of the request, counted anywhere: a negated first-person modal, future or
  present in the language's own word order ("I won't explain", "gebe ich nicht.", "не буду помогать", "sitaandika",
  "我不会提供"); with ``_`` and ``^`` also "any verb at the start of a clause" ("^ I won't _", "^ nie *ę").
- ``apology``: bare apologies ("I'm sorry", "Unfortunately").
- ``disclaimer``: caveats ("for educational purposes only"), only recorded.
- ``pivot``: turns to compliance right after a refusal ("but here is", "but broadly speaking").
- ``alternative``: words showing that what follows a pivot is something else than the request ("instead", "legal
  options", "a helpline", "I can help you", "here's why").
- ``letter`` and ``greeting``: openings of a drafted letter ("Dear", "Subject:") or message ("Hi").
- ``connective``: words after which a clause starts ("so", "that's why", "and", "but"), for ``^`` phrases.
- ``payload``: markers that a sentence introduces the requested content: concessive connectives ("that said",
  "nevertheless"), general-terms markers ("in general", "typically", "the principle") and presentations ("here's
  the letter", "looks like this").
- ``idiom``: first-person negations that are not refusals ("I won't lie", "nie wiem", "det ved jeg ikke").

Phrase syntax:

- `` ... `` (space, three dots, space): a gap of up to 40 characters inside one clause (no sentence or clause
  punctuation, no line break).
- ``a/b/c``: a word with alternatives ("I won't help/explain").
- ``*`` at the start or end of a phrase: the phrase may start or end inside a word (Arabic clitics, attached
  pronouns, Tagalog linkers); ``*`` inside a word: up to 24 more letters ("ne*šu" matches the Latvian negated
  first-person futures "neatbildēšu", "nerakstīšu"; "*ूंगा" the Hindi first-person futures).
- ``_``: any one word ("I'd rather not _").
- ``^`` and a space at the start: the match must start a clause: at the start of the reply or of a line, after
  clause punctuation (``.``, ``,``, ``:``, ``;``, dashes, ...), or right after a ``connective`` ("..., so I won't look
  them up").
- ``=`` and a space at the start: the phrase is the whole reply, punctuation, spaces and Markdown aside (a bare
  "No." or "Ne." declines; the same word opening a longer answer, "No. Paris is in France", does not).

Otherwise a phrase starts and ends at word boundaries (scripts without spaces, such as Chinese, have none; words of
such scripts are joined without a space). In ``start`` and ``anywhere`` phrases only the last word has alternatives
and there are no wildcards, so that each phrase, written out, matches itself.

Text and phrases are normalised the same way: NFKC, casefold, one apostrophe and one double quote, no Markdown
asterisks, zero-width characters removed, whitespace collapsed to one space (one line break where the run held one;
dropped next to CJK characters), Greek accents, Russian ё, Arabic hamza/alef variants and vowel marks, and Hindi
nukta/chandrabindu folded.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import pairwise

from drift.errors import DriftError

KINDS = (
    "start", "anywhere", "decline", "apology", "disclaimer", "pivot", "alternative", "letter", "greeting",
    "connective", "payload", "idiom",
)
GAP = 40  # most characters a " ... " gap may span
_SPACE = r"[ \n]"  # a space of a phrase matches one space or one line break
_GAP_RE = rf"(?:{_SPACE}[^.!?;:,\n。！？；：，、।॥،؛؟]{{1,{GAP}}}?)?{_SPACE}"
# A letter of a word: \w plus the combining marks of Devanagari and Latin (Hindi vowel signs are marks, not letters).
_LETTER = r"[\w\u0300-\u036f\u0900-\u0903\u093a-\u094f\u0951-\u0957\u0962\u0963]"
_GLOB = _LETTER + "{0,24}"  # "*" inside a word
_ANY_WORD = _LETTER + "{1,30}"  # "_"
_TAIL = 80  # characters before an index in which Phrase.ends_at looks

# Characters folded to one form before matching.
_FOLD = str.maketrans({
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u02bc\u02bb\u00b4\u2032", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u00ab\u00bb\u2033", '"'),
    **dict.fromkeys("\u2010\u2011", "-"),
    **dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff\u00ad*", None),
    **dict.fromkeys("\u0623\u0625\u0622\u0671", "\u0627"),  # Arabic alef with hamza/madda -> bare alef
    "\u0649": "\u064a",  # Arabic alef maqsura -> ya
    "\u0640": None,  # Arabic tatweel
    **dict.fromkeys([chr(c) for c in range(0x064B, 0x0653)] + ["\u0670"], None),  # Arabic vowel marks
    "\u093c": None,  # Devanagari nukta
    "\u0901": "\u0902",  # Devanagari chandrabindu -> anusvara
    "\u0451": "\u0435",  # Russian yo -> ye
    **{a: b for a, b in zip("άέήίόύώϊϋΐΰ", "αεηιουωιυιυ")},  # Greek accents (after casefold)
})
_CJK = r"\u2e80-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f\u3040-\u30ff"
_CJK_SPACE = re.compile(rf"(?<=[{_CJK}]) | (?=[{_CJK}])")
_CJK_CHAR = re.compile(rf"[{_CJK}]")
_UNSPACED = re.compile(rf"[{_CJK}\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff]")


def normalize_text(text: str) -> str:
    """Normalise text for phrase matching (NFKC, casefold, folded punctuation and script variants, one space or line
    break for each run of whitespace)."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_FOLD)
    text = re.sub(r"\s+", lambda m: "\n" if "\n" in m.group() else " ", text).strip()
    return _CJK_SPACE.sub("", text)


@dataclass(frozen=True)
class _Alt:
    """One alternative of a phrase word: its regex, its length, and its first and last literal characters ('' where
    the word starts or ends with a wildcard)."""

    regex: str
    size: int
    first: str
    last: str


def _alt(word: str) -> _Alt:
    """Compile one alternative of a word (``_``, or literal pieces joined by ``*`` globs).

    Raises:
        ValueError: The alternative is empty after normalisation.
    """
    if word == "_":
        return _Alt(_ANY_WORD, 1, "", "")
    pieces = [normalize_text(p) for p in word.split("*")]
    if not any(pieces):
        raise ValueError(word)
    regex = _GLOB.join(re.escape(p).replace("\\ ", _SPACE) for p in pieces)
    return _Alt(regex, len("".join(pieces)), pieces[0][:1], pieces[-1][-1:])


def _part_regex(part: str) -> str:
    """Regular expression of one gap-free part of a phrase: words joined by one space (none next to CJK), a word
    written ``a/b/c`` matching any of its alternatives.

    Raises:
        ValueError: The part or one of its alternatives is empty after normalisation.
    """
    words = [[_alt(a) for a in w.split("/")] for w in part.split()]
    if not words:
        raise ValueError(part)
    out = _alternatives(words[0])
    for prev, alts in pairwise(words):
        cjk = [bool(_CJK_CHAR.match(a.last)) for a in prev] + [bool(_CJK_CHAR.match(a.first)) for a in alts]
        out += "" if all(cjk[: len(prev)]) or all(cjk[len(prev):]) else f"{_SPACE}?" if any(cjk) else _SPACE
        out += _alternatives(alts)
    return out


def _alternatives(alts: list[_Alt]) -> str:
    """A regex group of alternative words, longest first so that a longer word wins over its prefix."""
    regexes = [a.regex for a in sorted(alts, key=lambda a: a.size, reverse=True)]
    return regexes[0] if len(regexes) == 1 else "(?:" + "|".join(regexes) + ")"


def _is_word_char(ch: str) -> bool:
    """A letter, digit or combining mark of a script that separates words with spaces."""
    if not (ch.isalnum() or unicodedata.category(ch).startswith("M")):
        return False
    return not _UNSPACED.match(ch)


@cache
def _tail(pattern: str) -> re.Pattern:
    return re.compile(f"(?:{pattern})\\Z")


@dataclass(frozen=True)
class Phrase:
    """One phrase of a phrase file, compiled for matching.

    Attributes:
        text: The phrase as written in the file.
        kind: One of :data:`KINDS`.
        lang: The phrase file's language.
        pattern: Regular expression over normalised text.
        left: Whether the match must start at a word boundary.
        right: Whether the match must end at a word boundary.
        clause: Whether the match must start a clause (the phrase starts with ``^``).
        wild: Whether the phrase has a ``_``, a ``*`` inside a word, or a ``^`` (for such a phrase the judge compares
            the matched words, not the phrase, with the prompt).
        whole: Whether the phrase must be the whole text, punctuation and spaces aside (it starts with ``=``).
    """

    text: str
    kind: str
    lang: str
    pattern: re.Pattern
    left: bool
    right: bool
    clause: bool = False
    wild: bool = False
    whole: bool = False

    @classmethod
    def compile(cls, text: str, kind: str, lang: str) -> Phrase:
        """Compile a phrase written in the file syntax (see the module docstring)."""
        body = text.strip()
        whole = body.startswith("= ")
        body = body[1:].strip() if whole else body
        clause = body == "^" or body.startswith("^ ")
        body = body[1:].strip() if clause else body
        left, right = not body.startswith("*"), not body.endswith("*")
        try:
            body_re = _GAP_RE.join(_part_regex(p) for p in body.strip("*").split(" ... "))
        except ValueError:
            msg = f"empty part in {lang} refusal phrase {text!r}: remove stray ' ... ', '/', '*' or '^'"
            raise DriftError(msg) from None
        wild = clause or any(w == "_" or "*" in w for w in body.strip("*").replace("/", " ").split())
        if whole:
            body_re = rf"(?:{body_re})(?=[\W_]*\Z)"
        return cls(text, kind, lang, re.compile(body_re), left, right, clause, wild, whole)

    def find(self, text: str, start: int = 0, limit: int | None = None) -> re.Match | None:
        """First match in normalised ``text`` at or after ``start`` that respects word boundaries.

        Args:
            text: Normalised text.
            start: Where to start searching.
            limit: If given, the match must start before this index.
        """
        pos = start
        while (m := self.pattern.search(text, pos)) is not None:
            if limit is not None and m.start() >= limit:
                return None
            if self._bounded(text, m.start(), m.end()):
                return m
            pos = m.start() + 1
        return None

    def find_all(self, text: str) -> list[re.Match]:
        """Every non-overlapping match in normalised ``text`` that respects word boundaries."""
        out, pos = [], 0
        while (m := self.find(text, pos)) is not None:
            out.append(m)
            pos = max(m.end(), m.start() + 1)
        return out

    def ends_at(self, text: str, end: int) -> bool:
        """Whether a match ends exactly at index ``end`` of normalised ``text`` (and starts at most 80 characters
        before it)."""
        m = _tail(self.pattern.pattern).search(text, max(0, end - _TAIL), end)
        return m is not None and self._bounded(text, m.start(), end)

    def _bounded(self, text: str, i: int, j: int) -> bool:
        if self.whole and any(c.isalnum() for c in text[:i]):
            return False
        if self.left and i > 0 and _is_word_char(text[i]) and _is_word_char(text[i - 1]):
            return False
        return not (self.right and j < len(text) and _is_word_char(text[j - 1]) and _is_word_char(text[j]))


@dataclass(frozen=True)
class PhraseList:
    """The compiled phrases of one language."""

    lang: str
    version: str
    phrases: tuple[Phrase, ...]

    def of_kind(self, kind: str) -> tuple[Phrase, ...]:
        """The phrases of one kind."""
        return tuple(p for p in self.phrases if p.kind == kind)


def phrase_langs() -> list[str]:
    """The languages that have a bundled refusal-phrase file."""
    folder = resources.files("drift.data.bundled").joinpath("refusal_phrases")
    return sorted(f.name[:-5] for f in folder.iterdir() if f.name.endswith(".json"))


@cache
def load_phrases(lang: str) -> PhraseList:
    """Load and compile the bundled refusal phrases of ``lang``.

    Raises:
        DriftError: There is no phrase file for ``lang``, or the file is malformed.
    """
    res = resources.files("drift.data.bundled").joinpath("refusal_phrases", f"{lang}.json")
    if not res.is_file():
        raise DriftError(
            f"no refusal phrases for language {lang!r}: available are {', '.join(phrase_langs())} "
            "(add drift/data/bundled/refusal_phrases/{lang}.json, or leave the language out)"
        )
    doc = json.loads(res.read_text(encoding="utf-8"))
    if "version" not in doc or not any(doc.get(k) for k in ("start", "anywhere")):
        raise DriftError(f"refusal phrase file {lang}.json needs a 'version' and 'start'/'anywhere' phrases")
    phrases = tuple(Phrase.compile(p, kind, lang) for kind in KINDS for p in doc.get(kind, []))
    return PhraseList(lang, str(doc["version"]), phrases)
