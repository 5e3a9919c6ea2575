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
    """A short text that stops mid-sentence (no terminal punctuation), e.g. ``Las vacunas son un tema de la``; a
    straight quote that opens a quotation (after a space or colon, ``The answer is: "``) does not end a sentence."""
    t = text.strip()
    opening_quote = t[-1:] in ("\"", "'") and t[-2:-1] in (" ", ":")
    if not t or (t.endswith(_TERMINAL) and not opening_quote) or "\n" in t:
        return False
    size = len(t) / 2 if is_cjk(t) else len(t.split())
    return size <= max_words


# Function words of languages that models often slip into, for telling a short fragment's language without a
# detector. The first string of each pair holds words that cannot end a sentence (articles, most prepositions,
# conjunctions, complementisers, subject pronouns); the second other frequent function words. Words that can end a
# sentence (English stranded prepositions, German separable particles, "that", "it", numerals such as "una" or
# "einen" used as pronouns) are kept out of the first string.
_FUNCTION_WORDS = {
    "en": ("the a an and or but nor because than whether my your our their its i we they been",
           "is are was were be have has it this that of to in on for with from by at will would can should not you"),
    "de": ("der die dem des und oder sondern dass weil wenn ob als man ich wir von für im zum zur vom beim am ohne",
           "das den ein eine einen einem einer eines ist sind war es sich nicht mit zu auf auch wird sollte kann"),
    "fr": ("le la les l des du de d au aux et ou mais que qu dont pour dans par il ils je on ce cette ces mon "
           "ma mes son sa ses faut", "un une est sont pas ne se qui avec sur en plus être a y doit peut elle nous"),
    "es": ("el la los las un y e o u pero que de del al en con por para sin sobre su sus mi mis tu se "
           "le les lo muy porque como", "una unos unas es son fue era está no más este esta hay ha"),
    "it": ("il lo la i gli le un e ed o ma che di del dello della dei degli delle da dal dalla in nel nella "
           "nei con per tra fra al alla ai non si", "uno una è sono come più anche questo questa ha hanno a"),
    "pt": ("o a os as e ou mas que de do da dos das em no na nos nas com por para pelo pela ao aos à "
           "às se seu sua", "um uma uns umas é são foi não mais como este esta isso muito há"),
    "nl": ("de een en of maar van te met als omdat wij ik mijn", "is zijn het dat die niet op in er ook wordt"),
    "pl": ("i a oraz ale lub albo że żeby aby bo w we z ze na do od dla o przez po przy nad pod u bez",
           "jest są się nie to jak co tak być było może warto już"),
    "cs": ("a i ale nebo že aby v ve s z ze na do od pro k ke o u po při bez přes za než",
           "je jsou se to jak co tak být byl by jsem není také který která které jako tento tato"),
    "sk": ("a i ale alebo že aby v vo s so z zo na do od pre k ku o u po pri bez cez za než",
           "je sú sa to ako čo tak byť bol by som nie tiež ktorý ktorá ktoré"),
    "da": ("og eller men at fordi hvis end", "er det den en et jeg til af med på som ikke har for de vi kan skal der"),
    "sv": ("och eller men att eftersom än", "är det den en ett jag till av med på som inte har för de vi kan ska om"),
    "lt": ("ir bet arba kad jog nes į iš su nuo prie apie per be ar o", "yra buvo tai kaip kas ne taip tik jau aš mes"),
    "lv": ("un bet vai ka lai ar no uz par pie jo nekā", "ir bija tas tā kas ne arī ļoti es mēs"),
    "sw": ("na ya wa za la cha vya kwa katika kama au lakini ili kwamba", "ni si hii huu hiyo sana pia yake wake kuwa"),
    "tl": ("ang ng sa mga at ay si ni kay para pero kung dahil", "ito iyon hindi ako ka siya kami tayo may rin din"),
    "tr": ("ve ama veya ki çünkü", "bu bir için da de çok ne gibi daha olarak ben biz var yok"),
    "vi": ("và của với là những các một để khi thì mà nhưng hoặc đã sẽ đang rất",
           "không có này người được chúng tôi đi ở cũng ra"),
    "ro": ("și sau dar că să la în cu pe din pentru un unei unui", "este sunt nu mai ce care ca se"),
    "id": ("dan atau tetapi tapi yang di ke dari untuk dengan pada karena bahwa para",
           "ini itu adalah tidak akan ada saya kami juga sudah"),
}
_OPEN_ENDS = {lang: frozenset(ends.split()) for lang, (ends, _) in _FUNCTION_WORDS.items()}
_COMMON = {lang: frozenset(f"{ends} {more}".split()) for lang, (ends, more) in _FUNCTION_WORDS.items()}


def foreign_fragment_lang(text: str, lang: str) -> str | None:
    """The other language a short unfinished text is in, told by its function words (no detector): at least two of
    its words are common function words of that language, more than of ``lang``, and its last word cannot end a
    sentence there ("La Ruta de la Seda fue una red de rutas comerciales que", "According to the"). None when no
    other language qualifies or ``lang`` has no word list."""
    if lang not in _COMMON:
        return None
    words = re.findall(r"\w+", text.casefold())
    own = sum(w in _COMMON[lang] for w in words)
    best, found = 1, None
    for other, vocab in _COMMON.items():
        if other == lang or not words or words[-1] not in _OPEN_ENDS[other]:
            continue
        hits = sum(w in vocab for w in words)
        if hits > max(best, own):
            best, found = hits, other
    return found


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
