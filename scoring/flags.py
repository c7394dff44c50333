"""Answers the model should not score on its own: cheap, pure-Python checks.

`check_response(response, question=..., language=...)` returns the list of flag codes that apply to one
answer before the model is run; `low_confidence` is added by the scorer once the model's confidence is
known.  Any flag other than `low_confidence` makes the model decline (no model score: a teacher decides).

How the rules were chosen, and what each catches on the real data in ../shared/datasets/ and on crafted
non-answers, is measured by `bench/scoring_flags.py` (results in bench/results/scoring.md).  In short:
every rule is written so that it fires on (almost) no real student answer, because a flag costs a
teacher's time, while it still catches the crafted non-answers it is meant for.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

EMPTY = "empty"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
WRONG_LANGUAGE = "wrong_language"
COPY_OF_QUESTION = "copy_of_question"
GIBBERISH = "gibberish"
KEYWORD_LIST = "keyword_list"
LOW_CONFIDENCE = "low_confidence"
NO_ACTIVE_MODEL = "no_active_model"

FLAG_MESSAGES: dict[str, str] = {
    EMPTY: "The answer is empty.",
    TOO_SHORT: "The answer is far too short to score (fewer than two letters or digits).",
    TOO_LONG: "The answer is far longer than any answer the model was built for.",
    WRONG_LANGUAGE: "The answer does not seem to be in the item's language.",
    COPY_OF_QUESTION: "The answer mostly repeats the question.",
    GIBBERISH: "The answer looks like random characters or keyboard mashing.",
    KEYWORD_LIST: "The answer is a list of keywords (or the same words repeated), not an explanation.",
    LOW_CONFIDENCE: "The model is not confident about this score.",
    NO_ACTIVE_MODEL: "No model is active for this item, so nothing scored the answer.",
}
ALL_FLAGS = tuple(FLAG_MESSAGES)
# Flags that let the model's score stand (the answer is only queued for review).
REVIEW_ONLY_FLAGS = frozenset({LOW_CONFIDENCE})

# --- thresholds (see bench/scoring_flags.py for the measurements behind them) ----------------------
MIN_ALNUM_CHARS = 2  # "a", "?", "-" ... ; one real word ("Celsius.") is a valid answer in SciEntsBank
MAX_WORDS = 300  # the longest of 13,000 real answers has 260 words; the 99th percentile is ~105
MAX_CHARS = 2500  # longest real answer: 1,477 characters
COPY_MIN_WORDS = 4  # a copy needs at least this many words
COPY_MIN_CONTAINMENT = 0.85  # share of the answer's word trigrams found in the question, and
COPY_MIN_COVERAGE = 0.35  # ... share of the question's word trigrams the answer repeats, or
COPY_LONG_TRIGRAMS = 18  # ... this many trigrams copied (20 words in a row of a long question)
KEYWORD_MIN_WORDS = 6  # "heat conductor metal wood insulator hand": no function word among 6+ words
REPEAT_MIN_WORDS = 6
REPEAT_MAX_UNIQUE_RATIO = 0.35  # "heat heat heat metal metal metal ..."
GIBBERISH_MIN_SHARE = 0.5  # share of the answer's words that are implausible
LANG_MIN_WORDS = 4
LONG_TOKEN = 25  # letters in one token: longer is run-together words or mashing

_WORD = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")
_VOWELS = frozenset("aeiouyàáâãäåæèéêëìíîïòóôõöøùúûüýÿœ")
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm", "azertyuiop", "qwertzuiop", "yxcvbnm")
_KEY_RUNS = frozenset(r[i : i + 5] for row in _KEYBOARD_ROWS for r in (row, row[::-1]) for i in range(len(r) - 4))
_KEY_RUNS4 = frozenset(r[i : i + 4] for row in _KEYBOARD_ROWS for r in (row, row[::-1]) for i in range(len(r) - 3))
_TRIPLE = re.compile(r"(.)\1\1")
_CONSONANT_RUN = re.compile(r"[bcdfghjklmnpqrstvwxz]{6,}")

# The most frequent function words of each language we can recognise.  English has the longest list
# because it decides `keyword_list`; the others only need to out-vote it for `wrong_language`.
def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOPWORDS: dict[str, frozenset[str]] = {
    "en": _wordset(
        """a an the and or but if so as of to in on at by for from with without into onto over under about
        than then that this these those there here it its is are was were be been being am do does did
        done has have had having not no yes can could will would should may might must shall i you he she
        we they me him her us them my your his our their what which who whom whose when where why how all
        any each both more most some such only own same too very just also because since while until after
        before up down out off again further once through between during against above below"""
    ),
    "es": _wordset(
        """el la los las un una unos unas y o pero si porque que de del al en con sin por para es son está
        están fue ser estar hay lo le les se su sus mi mis tu yo tú él ella nosotros ellos como cuando donde
        muy más menos también no sí esto esta este eso esa ese"""
    ),
    "fr": _wordset(
        """le la les un une des et ou mais si parce que qui de du au aux en dans avec sans pour par est sont
        était être avoir il elle ils elles nous vous je tu on ce cette ces son sa ses mon ma mes leur très
        plus moins aussi ne pas oui non comme quand où"""
    ),
    "de": _wordset(
        """der die das ein eine einen einem einer und oder aber wenn weil dass von zu im in mit ohne für auf
        ist sind war waren sein haben hat ich du er sie es wir ihr mein dein nicht ja nein wie wann wo sehr
        mehr auch noch den dem des sich"""
    ),
    "pt": _wordset(
        """o a os as um uma uns umas e ou mas se porque que de do da dos das no na nos nas em com sem por para
        é são está estão foi ser estar há ele ela eles elas nós eu você meu minha seu sua muito mais menos
        também não sim como quando onde isso isto este esta"""
    ),
    "it": _wordset(
        """il lo la i gli le un uno una e o ma se perché che di del della dei delle in nel nella con senza
        per è sono era essere avere ha hanno io tu lui lei noi voi loro mio mia suo sua molto più meno anche
        non sì come quando dove questo questa quello"""
    ),
    "nl": _wordset(
        """de het een en of maar als omdat dat die van te in met zonder voor op is zijn was waren hebben heeft
        ik jij hij zij wij ze mijn jouw zijn niet ja nee hoe wanneer waar heel meer ook nog er dit deze dan
        daarom aan bij naar uit om wordt worden door"""
    ),
}
# Languages written in the Latin script (an answer mostly in another script is in another language).
LATIN_LANGUAGES = _wordset("en es fr de pt it nl ca da sv no nb fi pl cs ro hu tr id ms sw af et lv lt sk sl hr ga")


@functools.lru_cache(maxsize=256)
def base_language(code: str) -> str:
    """'en-US' -> 'en'."""
    return (code or "en").split("-")[0].split("_")[0].lower()


# ASCII fast path: bytes.translate keeps letters (lower-cased or as written), deletes apostrophes
# ("don't" -> "dont") and turns everything else into spaces; str.split() then yields the words.
_ASCII_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_AS_WRITTEN = bytes(c if c in _ASCII_LETTERS else 32 for c in range(256))
_LOWERED = bytes((c | 32) if c in _ASCII_LETTERS else 32 for c in range(256))


def tokenize(text: str) -> tuple[list[str], list[str]]:
    """(words as written, words lower-cased): runs of letters; apostrophes inside words dropped."""
    if text.isascii():
        raw = text.encode("ascii")
        return raw.translate(_AS_WRITTEN, b"'").decode().split(), raw.translate(_LOWERED, b"'").decode().split()
    originals = [w.replace("'", "").replace("\u2019", "") for w in _WORD.findall(text)]
    return originals, [w.lower() for w in originals]


def words(text: str) -> list[str]:
    """The text's words, lower-cased (as the flags see them)."""
    return tokenize(text)[1]


MASH, RUN_TOGETHER = 1, 2


def _implausible_uncached(original: str) -> int:
    """0 for a plausible word; MASH for a word no language writes (no vowel, adjacent keys, a triple
    letter); RUN_TOGETHER for 25+ letters that read like words written without spaces."""
    token = original.lower()
    n = len(token)
    if n >= LONG_TOKEN:
        vowels = sum(1 for c in token if c in _VOWELS)
        return RUN_TOGETHER if vowels / n >= 0.25 and not _TRIPLE.search(token) else MASH
    if n < 4 or (original.isupper() or (not original.islower() and not original.istitle())):
        # short words and acronyms / mixed case (DNA, mRNA, pH) are fine, unless "AAAA"
        return MASH if n >= 4 and _TRIPLE.search(token) is not None else 0
    if n == 4 and token in _KEY_RUNS4:  # "asdf", "fdsa", "qwer"
        return MASH
    vowels = sum(1 for c in token if c in _VOWELS)
    if vowels == 0:
        return MASH
    if _TRIPLE.search(token) or _CONSONANT_RUN.search(token):
        return MASH
    return MASH if n >= 5 and any(token[i : i + 5] in _KEY_RUNS for i in range(n - 4)) else 0


_implausible_cache: dict[str, int] = {}
# Words (as written) known to be plausible: most answers consist of them only, which one C-level
# `issuperset` checks.  Both caches are only ever added to or cleared whole (safe under the GIL).
_plausible: set[str] = set()
_CACHE_MAX = 200_000


def _implausible(original: str) -> int:
    """The word's implausibility (0, MASH or RUN_TOGETHER), cached: answers reuse their words."""
    hit = _implausible_cache.get(original)
    if hit is None:
        if len(_implausible_cache) > _CACHE_MAX:
            _implausible_cache.clear()
            _plausible.clear()
        hit = _implausible_cache[original] = _implausible_uncached(original)
        if not hit:
            _plausible.add(original)
    return hit


def _trigrams(tokens: list[str]) -> set[tuple[str, str, str]]:
    return set(zip(tokens, tokens[1:], tokens[2:], strict=False))


class QuestionIndex:
    """The question's words and word trigrams, computed once per item and reused for every answer."""

    __slots__ = ("min_shared", "text", "trigrams", "words")

    def __init__(self, question: str) -> None:
        self.text = question
        tokens = words(question)
        self.words = frozenset(tokens)
        self.trigrams = frozenset(_trigrams(tokens))
        # The fewest shared trigrams a copy needs (see _is_copy: at least 3, and COPY_MIN_COVERAGE of the
        # question's or COPY_LONG_TRIGRAMS); 0 for a question of 2 trigrams or fewer (no such bound).
        self.min_shared = 0
        if len(self.trigrams) > 2:
            self.min_shared = next(
                s for s in range(3, COPY_LONG_TRIGRAMS + 1)
                if s / len(self.trigrams) >= COPY_MIN_COVERAGE or s >= COPY_LONG_TRIGRAMS
            )

    def may_be_copied(self, tokens: list[str], new_words: int) -> bool:
        """False when the answer (`new_words`: its distinct words not in the question) cannot be a copy
        (see _is_copy), shown without its trigrams."""
        if not self.min_shared:
            return True
        # Each shared trigram is at least one window of three question words in a row: one bit per word
        # (1: a question word), a window is three adjacent 1 bits.
        bits = int(bytes(map(self.words.__contains__, tokens)).translate(_BIT_DIGITS), 2)
        windows = (bits & (bits >> 1) & (bits >> 2)).bit_count()
        if windows < self.min_shared:
            return False
        # Each new word puts at least one trigram outside the question, three at most share one: the
        # share of the answer's trigrams found in the question is at most this.
        return windows / (windows + -(-new_words // 3)) >= COPY_MIN_CONTAINMENT


_BIT_DIGITS = bytes.maketrans(b"\x00\x01", b"01")


_question_cache: dict[str, QuestionIndex] = {}


def question_index(question: str) -> QuestionIndex:
    index = _question_cache.get(question)
    if index is None:
        if len(_question_cache) > 1024:
            _question_cache.clear()
        index = _question_cache[question] = QuestionIndex(question)
    return index


def _is_copy(tokens: list[str], types: Counter[str] | set[str], question: QuestionIndex) -> bool:
    if len(tokens) < COPY_MIN_WORDS or not question.words:
        return False
    if 2 * len(question.words.intersection(types)) < len(types):  # mostly the answer's own words
        return False
    grams = _trigrams(tokens)
    if len(grams) >= 3:
        shared = len(question.trigrams.intersection(grams))
        if shared / len(grams) < COPY_MIN_CONTAINMENT:
            return False
        # Quoting a part of the question can be the answer ("Max ran after the cat."): a copy is most
        # of the question, or a long stretch of it.
        return shared / max(1, len(question.trigrams)) >= COPY_MIN_COVERAGE or shared >= COPY_LONG_TRIGRAMS
    # 4 words: only when the question itself is that short
    return len(grams & question.trigrams) == len(grams) == len(question.trigrams)


# word -> the languages whose function-word list holds it
_STOP_LANGS: dict[str, tuple[str, ...]] = {}
for _lang, _words in STOPWORDS.items():
    for _w in _words:
        _STOP_LANGS[_w] = (*_STOP_LANGS.get(_w, ()), _lang)
_STOP_KEYS = frozenset(_STOP_LANGS)


def _non_latin_share(text: str) -> float:
    if text.isascii():
        return 0.0
    letters = [c for c in text if c.isalpha()]
    if len(letters) < 3:
        return 0.0
    non_latin = sum(1 for c in letters if ord(c) > 0x24F and not unicodedata.name(c, "").startswith("LATIN"))
    return non_latin / len(letters)


def _stopword_hits(counts: Counter[str], stop: set[str] | frozenset[str] | None = None) -> dict[str, int]:
    """Occurrences of each language's function words (`stop`: the answer's function words, if known)."""
    hits: dict[str, int] = {}
    for w in _STOP_KEYS.intersection(counts) if stop is None else stop:
        n = counts[w]
        for lang in _STOP_LANGS[w]:
            hits[lang] = hits.get(lang, 0) + n
    return hits


def _wrong_language(text: str, n: int, language: str, hits: dict[str, int]) -> bool:
    if language in LATIN_LANGUAGES and _non_latin_share(text) >= 0.5:
        return True
    if language not in STOPWORDS or n < LANG_MIN_WORDS:
        return False
    own_hits = hits.get(language, 0)
    best_other = max((n for lang, n in hits.items() if lang != language), default=0)
    return best_other >= 2 and best_other >= 2 * own_hits + 1


def _keyword_list(
    n: int, counts: Counter[str], own: frozenset[str], own_hits: int, *, wrong_language: bool, ascii_text: bool
) -> bool:
    """Words without the glue of a sentence, or the same few content words over and over."""
    if n >= 3 and len(counts) == 1:  # "bla bla bla"
        return True
    others = counts.keys() - own
    # Few distinct content words: count them.  A repetition needs len(content) <= 0.35 * n_content, and
    # n_content <= n - own_hits while len(content) >= len(others) - (one-letter words), so skip the count
    # when even the bound fails (the one-letter words are counted only then).
    bound = REPEAT_MAX_UNIQUE_RATIO * (n - own_hits)
    if len(others) * 2 < n and (len(others) <= bound or len(others) - _one_letter(others, ascii_text) <= bound):
        content = [t for t in others if len(t) > 1]
        n_content = sum(map(counts.__getitem__, content))
        if n_content >= REPEAT_MIN_WORDS and len(content) / n_content <= REPEAT_MAX_UNIQUE_RATIO:
            return True
    return n >= KEYWORD_MIN_WORDS and bool(own) and not wrong_language and not own_hits


_ASCII_ONE_LETTER = frozenset("abcdefghijklmnopqrstuvwxyz")


def _one_letter(types: set[str], ascii_text: bool) -> int:
    """How many of the (lower-cased) word types are one letter long."""
    if ascii_text:  # then the words are lower-case ASCII letters
        return len(_ASCII_ONE_LETTER.intersection(types))
    return sum(1 for t in types if len(t) == 1)


def check_response(response: str, *, question: str = "", language: str = "en") -> list[str]:
    """Flag codes for one answer (before the model runs), in a fixed order; [] when it looks scorable."""
    return _check(response, question_index(question) if question else None, base_language(language))


def _check(response: str, question: QuestionIndex | None, language: str) -> list[str]:
    """check_response with the question indexed and the language code reduced (see base_language)."""
    text = response.strip()
    if not text:
        return [EMPTY]
    if len(text) < 8 and sum(1 for c in text if c.isalnum()) < MIN_ALNUM_CHARS:
        return [TOO_SHORT]
    fast = _FAST_LANGUAGES.get(language)
    if fast is not None and text.isascii() and _surely_clean(text, question, fast):
        return []
    return _rules(text, question, language)


def _rules(text: str, question: QuestionIndex | None, language: str) -> list[str]:
    """Every rule, for a stripped answer that is neither empty nor too short."""
    flags: list[str] = []
    originals, tokens = tokenize(text)
    n = len(tokens)
    counts = Counter(tokens)
    if n > MAX_WORDS or len(text) > MAX_CHARS:
        flags.append(TOO_LONG)
    own = STOPWORDS.get(language, _EMPTY_SET)
    own_types = own.intersection(counts)
    own_hits = sum(map(counts.__getitem__, own_types))
    # Another language's function words must out-number ours (see _wrong_language): they can only if
    # the answer's function words that are not ours occur more often than ours.  Most answers fail
    # that bound, and then the per-language counts are not needed.
    foreign = _STOP_KEYS.intersection(counts) - own_types
    if foreign and sum(map(counts.__getitem__, foreign)) > own_hits:
        hits = _stopword_hits(counts, foreign | own_types)
    else:
        hits = {language: own_hits}
    if _wrong_language(text, n, language, hits):
        flags.append(WRONG_LANGUAGE)
    if question is not None and _is_copy(tokens, counts, question):
        flags.append(COPY_OF_QUESTION)
    # Letter-shape rules are for Latin-script items, and for text in the item's language; digits only
    # ("100") is left alone: a number can be the answer.
    mash = run_together = 0
    if language in LATIN_LANGUAGES and WRONG_LANGUAGE not in flags and not _plausible.issuperset(originals):
        kinds = [_implausible(o) for o in originals]
        mash = kinds.count(MASH)
        run_together = kinds.count(RUN_TOGETHER)
    if (mash or run_together) and (mash + run_together) / n >= GIBBERISH_MIN_SHARE:
        # words written without spaces ("anaphasemetaphaseprophase") are a keyword list, not noise
        flags.append(GIBBERISH if mash >= run_together else KEYWORD_LIST)
    elif _keyword_list(n, counts, own, own_hits, wrong_language=WRONG_LANGUAGE in flags,
                       ascii_text=text.isascii()):
        flags.append(KEYWORD_LIST)
    return flags


class _FastLanguage:
    """Per-language sets for _surely_clean."""

    __slots__ = ("foreign", "one_letter", "own")

    def __init__(self, language: str) -> None:
        self.own = STOPWORDS[language]
        self.foreign = _STOP_KEYS - self.own  # other languages' function words
        self.one_letter = _ASCII_ONE_LETTER - self.own  # one-letter words that are not function words


def _surely_clean(text: str, question: QuestionIndex | None, lang: _FastLanguage) -> bool:
    """True when no rule can flag this ASCII answer (stripped, neither empty nor too short), shown with
    cheap necessary conditions of each rule; False when that is not shown (then _rules decides).

    Most real answers are plain text in the item's language, and proving that no rule fires needs no
    word counts, no trigrams and no as-written words."""
    if len(text) > MAX_CHARS:
        return False
    tokens = text.encode("ascii").translate(_LOWERED, b"'").decode().split()
    n = len(tokens)
    if n < 3 or n > MAX_WORDS:
        return False
    types = set(tokens)
    own_types = lang.own.intersection(types)
    if not own_types or len(types) == 1:  # keyword_list's "no function word" and "bla bla bla"
        return False
    # wrong_language: the ASCII text has no non-Latin letters, and other languages' function words
    # would have to occur more often than ours (the bound in _rules).  They occur at most
    # len(foreign) + (n - len(types)) times (the repeats of all words), ours at least len(own_types).
    own = lang.own.__contains__
    foreign = lang.foreign.intersection(types)
    if (
        foreign
        and len(foreign) + n - len(types) > len(own_types)
        and sum(map(foreign.__contains__, tokens)) > sum(map(own, tokens))
    ):
        return False
    if question is not None and n >= COPY_MIN_WORDS:
        shared = len(question.words.intersection(types))
        if (
            2 * shared >= len(types)
            and question.may_be_copied(tokens, len(types) - shared)
            and _is_copy(tokens, types, question)
        ):
            return False
    # gibberish: a lower-case word plausible as written is plausible in any case (upper case and mixed
    # case are only checked for a triple letter, title case as lower case), so the lower-cased words
    # stand for the words as written.
    if not _plausible.issuperset(types) and any(_implausible(t) for t in types.difference(_plausible)):
        return False
    # keyword_list's repetition rule (the no-function-word rule needs own_types empty): it needs few
    # distinct content words, at most 0.35 * (n - function-word occurrences) <= 0.35 * (n - len(own_types));
    # the occurrences are counted only when the second bound does not rule it out.
    others = len(types) - len(own_types)
    if 2 * others < n:
        content = others - len(lang.one_letter.intersection(types))
        if content <= REPEAT_MAX_UNIQUE_RATIO * (n - len(own_types)) and (
            content <= REPEAT_MAX_UNIQUE_RATIO * (n - sum(map(own, tokens)))
        ):
            return False
    return True


_EMPTY_SET: frozenset[str] = frozenset()
# The item languages _surely_clean handles (function words known, Latin script).
_FAST_LANGUAGES = {lang: _FastLanguage(lang) for lang in STOPWORDS if lang in LATIN_LANGUAGES}


def declines(flags: list[str]) -> bool:
    """True when the flags mean the model must not give a score on its own."""
    return bool(flags) and not REVIEW_ONLY_FLAGS.issuperset(flags)


def check_batch(responses: Sequence[str], question: str | Sequence[str], language: str = "en") -> list[list[str]]:
    """check_response for a batch: one question for all answers, or one per answer."""
    language = base_language(language)
    if isinstance(question, str):
        index = question_index(question) if question else None
        return [_check(r, index, language) for r in responses]
    out: list[list[str]] = []
    previous: str | None = None
    index = None
    for response, q in zip(responses, question, strict=True):
        # Rows of one item repeat the same long question, as separate strings: comparing with the
        # previous row's is cheaper than hashing each for the cache.
        if q is not previous and q != previous:
            previous = q
            index = question_index(q) if q else None
        out.append(_check(response, index, language))
    return out
