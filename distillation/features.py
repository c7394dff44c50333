"""The featuriser shared by training and serving (numpy + stdlib only: no torch, no transformers).

A response is lower-cased (``str.lower``), encoded as UTF-8, every run of bytes that are not ASCII
letters or digits or part of a non-ASCII character becomes one space, and the text is padded with a
space on each side.  Features, hashed into ``n_buckets`` buckets, one byte array for the whole batch and
no per-n-gram Python loop:

* namespace 0: word n-grams of the response (``word_ngrams``, default 1-2), 64-bit polynomial hashes;
* namespace 1: character n-grams of the padded response (``char_ngrams``, at most 8 bytes long): the
  n-gram's bytes packed into one 64-bit integer and hashed by one multiplication (multiply-shift);
* namespace 2: the response's word 1- and 2-grams that also occur in the reference answer
  (what the answer shares with the key);
* namespace 3 (``cross_question``): the response's words crossed with the question, so that a model
  pooled over many items can learn item-specific words.

Each occurrence in a namespace weighs ``1 / sqrt(number of occurrences of that namespace in the row)``.
``Featurizer.transform`` returns the exact feeds of the ONNX student (``distillation.onnx_contract``):

* ``bucket`` int64 [m] and ``segment`` int64 [m]: one entry per n-gram occurrence, ``segment`` =
  ``row * N_NAMESPACES + namespace`` (a bucket may repeat: the model sums).  Character windows that would
  cross from one answer into the next point at bucket ``n_buckets``, a sink whose weight is 0 (cheaper
  than removing them);
* ``segment_weight`` float32 [n * N_NAMESPACES]: the weight of each (row, namespace);
* ``dense`` float32 [n, N_DENSE]: overlap with the reference answer and the question (words, bigrams,
  character 4-grams), which carries over to questions the model never saw, and length features.  A
  featuriser given ``known_questions`` (a pooled model's training questions) adds a last column,
  ``question_seen``: 1.0 where the row's question is one of them, else 0.0 (``question_key``).

The model's bag term for a row is ``sum over its namespaces of segment_weight * sum of w[bucket]``.
``to_csr`` turns the feeds into the equivalent scipy matrix for training.  The same code runs in
training and in serving, so features are identical byte for byte, and a row's features never depend on
the other rows of its batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate

import numpy as np

FORMAT = "kdgrade-featurizer/3"
FORMAT_WORDS = "kdgrade-featurizer/4"  # format 3 plus a word vocabulary (the ``word`` feed of a word CNN)
PAD_WORD, OTHER_WORD = 0, 1  # word ids: padding, a word outside the vocabulary; vocabulary word i is i + 2
N_NAMESPACES = 4
WORDS, CHARS, SHARED, CROSS = range(N_NAMESPACES)
MAX_CHAR_NGRAM = 8  # bytes packed into one 64-bit integer

DENSE_NAMES = (
    "ref_word_recall",  # share of the reference's distinct words present in the response
    "ref_word_precision",  # share of the response's distinct words present in the reference
    "ref_bigram_recall",  # share of the reference's distinct word bigrams present in the response
    "question_word_share",  # share of the response's distinct words present in the question
    "novel_word_share",  # share of the response's distinct words in neither question nor reference
    "log_words",  # log1p(number of words) / 5
    "log_chars",  # log1p(number of characters) / 8
    "distinct_word_ratio",  # distinct words / words
    "ref_char4_recall",  # share of the reference's distinct character 4-grams present in the response
    "ref_char4_precision",  # share of the response's distinct character 4-grams present in the reference
    "ref_length_ratio",  # log((words + 1) / (reference words + 1)) / 3
    "ref_content_recall",  # share of the reference's distinct content words (not function words) present
    "ref_new_content_recall",  # ... of those the question does not already contain ("question demoting")
)
N_DENSE = len(DENSE_NAMES)
# English function words: they match in almost any answer, so overlap over the other, content words says
# more about what the answer shares with the key (it carries over to questions a pooled model never saw).
_FUNCTION_WORDS_TEXT = """
a about after all also an and any are as at be been before being but by can could did do does doing done
for from had has have having he her here hers him his how i if in into is it its itself just me more most
my no nor not of off on once only or other our ours out over own same she should so some such than that
the their them then there these they this those through to too under until up very was we were what when
where which while who whom why will with would you your
"""
FUNCTION_WORDS = tuple(_FUNCTION_WORDS_TEXT.split())
# Not an overlap feature: 1.0 where the row's question is one the model was trained on (``known_questions``).
# A pooled student scores a question it never saw from the overlap features alone (``distillation.student``).
QUESTION_SEEN = "question_seen"


def question_key(question: str) -> str:
    """A question's identity for ``known_questions``: a hash of its lower-cased, whitespace-normalised text."""
    return hashlib.blake2b(" ".join(str(question).lower().split()).encode("utf-8"), digest_size=8).hexdigest()

_U64 = np.uint64
_P = 0x100000001B3  # odd: invertible modulo 2**64
_P_INV = pow(_P, -1, 1 << 64)
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)
_PAIR = _U64(0x9E3779B97F4A7C15)
_NS = {WORDS: _U64(0x2545F4914F6CDD1D), SHARED: _U64(0x14057B7EF767814F), CROSS: _U64(0xD1B54A32D192ED03)}
_GRAM = _U64(0xA0761D6478BD642F)
# one odd multiplier per character n-gram length (multiply-shift hashing of the packed bytes)
_CHAR_MUL = tuple(_U64(k) for k in (
    0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
    0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x87C37B91114253D5, 0x4CF5AD432745937F, 0x52DCE729DA3ED5B5))
_SET_MUL = _U64(0x9FB21C651E98DF25)
_KEY_FLAG = _U64(1 << 63)  # set in every set key, so that 0 marks an empty hash-table slot
_LOW40 = _U64((1 << 40) - 1)
_SEP = ord("\n")
_SPACE = ord(" ")
# byte map: ASCII letters and digits, every byte of a non-ASCII character, and the row separator are
# kept; every other byte (punctuation, underscore, whitespace, NUL) becomes a space.
_WORD_BYTE = np.full(256, _SPACE, dtype=np.uint8)
for _c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\n":
    _WORD_BYTE[_c] = _c
_WORD_BYTE[128:] = np.arange(128, 256, dtype=np.uint8)

_powers = np.ones(1, dtype=np.uint64)
_inv_powers = np.ones(1, dtype=np.uint64)


def _power_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P**i and P**-i modulo 2**64 for i < n (cached, grown on demand)."""
    global _powers, _inv_powers
    if len(_powers) < n:
        size = max(n, 2 * len(_powers), 1 << 16)
        with np.errstate(over="ignore"):
            p = np.full(size, _P, dtype=np.uint64)
            p[0] = 1
            q = np.full(size, _P_INV, dtype=np.uint64)
            q[0] = 1
            powers, inv_powers = np.cumprod(p, dtype=np.uint64), np.cumprod(q, dtype=np.uint64)
        _powers, _inv_powers = powers, inv_powers  # swap both at once (readers take a local reference)
    return _powers, _inv_powers


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (uint64 arrays wrap around silently)."""
    x = x ^ (x >> _U64(30))
    x = x * _MIX1
    x = x ^ (x >> _U64(27))
    x = x * _MIX2
    return x ^ (x >> _U64(31))


def _to_bucket(h: np.ndarray, n_buckets: int) -> np.ndarray:
    """A well-mixed 64-bit hash -> [0, n_buckets): the top 32 bits scaled (no modulo, any n_buckets)."""
    return ((h >> _U64(32)) * _U64(n_buckets) >> _U64(32)).view(np.int64)


class _Text:
    """One batch of texts as a single byte array: rows, words and their prefix hashes."""

    def __init__(self, texts: Sequence[str]):
        joined = " " + " \n ".join(t.lower().replace("\n", " ") for t in texts) + " "
        raw = np.frombuffer(joined.encode("utf-8"), dtype=np.uint8)
        raw = _WORD_BYTE[raw]  # letters, digits, non-ASCII bytes and separators kept; the rest -> space
        is_space = raw == _SPACE
        keep = np.ones(len(raw), dtype=bool)
        keep[1:] = ~(is_space[1:] & is_space[:-1])  # runs of spaces -> one space
        raw = raw[keep]
        self.raw = raw
        self.n_rows = len(texts)
        is_sep = raw == _SEP
        self.seps = np.flatnonzero(is_sep)
        self.row_of = np.cumsum(is_sep, dtype=np.int64)  # row index of each byte (a separator opens its row)
        starts = np.concatenate([[0], self.seps + 1])
        ends = np.concatenate([self.seps, [len(raw)]])
        self.row_len = ends - starts  # bytes of each padded row, its separator excluded
        is_word = (raw != _SPACE) & ~is_sep
        w = np.zeros(len(raw) + 2, dtype=bool)  # is_word with a non-word byte either side (np.diff is slow)
        w[1:-1] = is_word
        self.word_start = np.flatnonzero(w[1:] > w[:-1])
        self.word_end = np.flatnonzero(w[1:] < w[:-1])
        self.word_row = self.row_of[self.word_start]
        n = len(raw)
        self.pw, self.ipw = _power_tables(n + 1)
        b = raw[is_word].astype(np.uint64) + _U64(1)  # prefix hashes over the words' bytes only
        prefix = np.zeros(len(b) + 1, dtype=np.uint64)
        np.cumsum(b * self.pw[: len(b)], out=prefix[1:])
        # word k spans [word_start, word_end) in raw; in the words-only array it starts at word_pos[k]
        lengths = self.word_end - self.word_start
        pos = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=pos[1:])
        h = (prefix[pos[1:]] - prefix[pos[:-1]]) * self.ipw[pos[:-1]]
        self.word_hash = _mix(h + _GRAM * lengths.astype(np.uint64))

    def word_bigrams(self) -> tuple[np.ndarray, np.ndarray]:
        same = self.word_row[1:] == self.word_row[:-1]
        h = _mix(self.word_hash[:-1] * _PAIR + self.word_hash[1:])
        return h[same], self.word_row[:-1][same]

    def packed_windows(self, hi: int):
        """Yield (n, packed) for n = 1..hi: ``packed[p]`` holds bytes p..p+n-1 (little end first).  Each
        array is a view of one buffer updated in place: use it before asking for the next."""
        b = self.raw.astype(np.uint64)
        g = b.copy()
        shifted = np.empty_like(b)
        for n in range(1, hi + 1):
            size = max(len(b) - n + 1, 0)
            if n > 1 and size:
                np.left_shift(b[n - 1 :], _U64(8 * (n - 1)), out=shifted[:size])
                np.bitwise_or(g[:size], shifted[:size], out=g[:size])
            yield n, g[:size]

    def crossing(self, n: int, n_windows: int) -> np.ndarray:
        """Window starts (of length ``n``) that contain a row separator: they belong to no row."""
        idx = (self.seps[:, None] - np.arange(n)[None, :]).ravel()
        return idx[(idx >= 0) & (idx < n_windows)]

    def windows_per_row(self, n: int) -> np.ndarray:
        return np.maximum(self.row_len - (n - 1), 0)


def _unique(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort-based: numpy's hash-based ``unique`` is several times slower on
    large uint64 arrays)."""
    s = np.sort(a)
    if len(s) == 0:
        return s
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def _row_key(rows: np.ndarray, h: np.ndarray) -> np.ndarray:
    """(row, value) as one uint64 key: the flag bit, the row in the next 23 bits, 40 bits of value."""
    return _KEY_FLAG | (rows.astype(np.uint64) << _U64(40)) | (h & _LOW40)


def _key_row(keys: np.ndarray) -> np.ndarray:
    return ((keys & ~_KEY_FLAG) >> _U64(40)).astype(np.int64)


_SMALL_QUERY = 256  # at most this many keys: looked up in a Python set (same answer, less overhead)


class _KeySet:
    """An exact set of uint64 keys (each with ``_KEY_FLAG`` set) answering vectorised membership
    queries: an open-addressing table at most a quarter full, probed linearly (``np.isin`` sorts the
    whole query array, several times slower for the millions of queries of a large batch).  At most an
    eighth full, so that nine queries in ten end at their first slot."""

    def __init__(self, keys: np.ndarray):
        keys = np.asarray(keys, dtype=np.uint64)
        self.bits = max(4, (8 * len(keys) - 1).bit_length())
        self.mask = (1 << self.bits) - 1
        key_list = keys.tolist()
        table = [0] * (1 << self.bits)
        for key, slot in zip(key_list, self._slots(keys).tolist(), strict=True):
            while table[slot] and table[slot] != key:
                slot = (slot + 1) & self.mask
            table[slot] = key
        self.table = np.array(table, dtype=np.uint64)
        self.members = frozenset(key_list)  # for small queries (one answer): a set beats a dozen numpy calls
        self.counts = np.bincount(_key_row(keys), minlength=1) if len(keys) else np.zeros(1, np.int64)

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        return ((keys * _SET_MUL) >> _U64(64 - self.bits)).view(np.int64)

    def contains(self, queries: np.ndarray) -> np.ndarray:
        if len(queries) <= _SMALL_QUERY:
            return np.fromiter(map(self.members.__contains__, queries.tolist()), bool, count=len(queries))
        slot = self._slots(queries)
        t = self.table[slot]
        found = t == queries
        idx = np.flatnonzero(~found & (t != 0))  # collided with another key: probe on
        q, slot = queries[idx], (slot[idx] + 1) & self.mask
        while len(idx):
            t = self.table[slot]
            hit = t == q
            found[idx[hit]] = True
            go_on = ~hit & (t != 0)
            idx, q, slot = idx[go_on], q[go_on], (slot[go_on] + 1) & self.mask
        return found

    def distinct_per_row(self, n_rows: int) -> np.ndarray:
        """How many keys each row (the row part of the key) has."""
        c = np.zeros(n_rows, np.float64)
        m = min(n_rows, len(self.counts))
        c[:m] = self.counts[:m]
        return c


def _text_ids(qt: _Text, n_texts: int) -> np.ndarray:
    """One hash per whole text (e.g. per question), from its words in order."""
    if len(qt.word_hash) == 0:
        return np.zeros(n_texts, np.uint64)
    pos = np.arange(len(qt.word_hash)) - np.searchsorted(qt.word_row, qt.word_row, side="left")
    contrib = qt.word_hash * qt.pw[pos]
    out = np.zeros(n_texts, np.uint64)
    np.add.at(out, qt.word_row, contrib)
    return _mix(out)


_NO_KEY = _U64((1 << 64) - 1)  # never a real key (its 4-gram would hold byte 0xFF, never in UTF-8)


def _char4_keys(t: _Text, packed4: np.ndarray | None = None) -> np.ndarray:
    """Sorted distinct (row, character 4-gram) keys of the 4-grams inside each row (exact: the 4 bytes
    themselves, no hashing).  ``packed4``: the packed 4-byte windows, when the caller has them."""
    if packed4 is None:
        packed4 = np.zeros(0, np.uint64)
        for k, g in t.packed_windows(4):
            if k == 4:
                packed4 = g
    keys = _row_key(t.row_of[: len(packed4)], packed4)
    keys[t.crossing(4, len(keys))] = _NO_KEY  # windows across two rows: sorted last, dropped
    keys = _unique(keys)
    return keys[:-1] if len(keys) and keys[-1] == _NO_KEY else keys


def _rekey(keys: np.ndarray, rows: np.ndarray, ids: np.ndarray, n_texts: int) -> np.ndarray:
    """Keys (row keys, or bare hashes) of a response keyed with the row of its reference / question
    (``ids[row]``)."""
    if n_texts == 1:  # one reference (or question) for the whole batch: its row is 0
        return (keys & _LOW40) | _KEY_FLAG
    return _row_key(ids[rows], keys)


def _new_content_counts(ctx: _Context, ref_id: np.ndarray, q_id: np.ndarray) -> np.ndarray:
    """Per row: how many of its reference's distinct content words its question does not contain (looked
    up once per distinct (reference, question) pair of the batch)."""
    nq = len(ctx.question_ids)
    if nq == 1 and len(ctx.ref_content_start) == 2:  # one item: the usual serving batch, done once per item
        one = ctx.memo.get("new_content")
        if one is None:
            zero = np.zeros(1, np.int64)
            one = ctx.memo["new_content"] = float(_new_content_counts_of(ctx, zero, zero)[0])
        return np.full(len(ref_id), one)
    return _new_content_counts_of(ctx, ref_id, q_id)


def _new_content_counts_of(ctx: _Context, ref_id: np.ndarray, q_id: np.ndarray) -> np.ndarray:
    nq = len(ctx.question_ids)
    pairs, inverse = np.unique(ref_id * nq + q_id, return_inverse=True)
    r, q = pairs // nq, pairs % nq
    start = ctx.ref_content_start
    lengths = start[r + 1] - start[r]
    pair = np.repeat(np.arange(len(pairs)), lengths)  # each pair's reference content words, one after another
    offset = np.arange(len(pair)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    words = ctx.ref_content[start[r][pair] + offset]
    in_q = ctx.q_uni.contains(_row_key(q[pair], words))
    counts = lengths - np.bincount(pair[in_q], minlength=len(pairs))
    return counts.astype(np.float64)[inverse.ravel()]


_CONTEXT_CACHE: dict[tuple, _Context] = {}
_CONTEXT_CACHE_SIZE = 256


@dataclass(frozen=True)
class _Context:
    """Sets of (row, n-gram) keys of a batch's distinct references and questions."""

    ref_uni: _KeySet
    ref_bi: _KeySet
    ref_c4: _KeySet
    ref_word_count: np.ndarray
    q_uni: _KeySet
    question_ids: np.ndarray
    ref_content: np.ndarray  # sorted (reference row, word) keys of each reference's distinct content words
    ref_content_start: np.ndarray  # reference r's content keys are ref_content[start[r]:start[r + 1]]
    ref_content_count: np.ndarray  # float64: how many distinct content words reference r has
    memo: dict = field(default_factory=dict)  # per-context results of the batches that used it


_FUNCTION_SET: _KeySet | None = None


def _is_function_word(keys: np.ndarray) -> np.ndarray:
    """Which (row, word) keys hold a function word (``FUNCTION_WORDS``)."""
    global _FUNCTION_SET
    if _FUNCTION_SET is None:
        with np.errstate(over="ignore"):
            fw = _Text([" ".join(FUNCTION_WORDS)])
            _FUNCTION_SET = _KeySet(_unique(_row_key(np.zeros(len(fw.word_hash), np.int64), fw.word_hash)))
    return _FUNCTION_SET.contains(_KEY_FLAG | (keys & _LOW40))


def _context(refs: tuple[str, ...], questions: tuple[str, ...]) -> _Context:
    """Word and 4-gram sets of the (deduplicated) references and questions of a batch; cached, since a
    serving process scores the same few items over and over.  Pure function of its arguments."""
    key = (refs, questions)
    hit = _CONTEXT_CACHE.get(key)
    if hit is not None:
        return hit
    with np.errstate(over="ignore"):
        rt = _Text(refs)
        qt = _Text(questions)
        rbi_h, rbi_r = rt.word_bigrams()
        ref_keys = _unique(_row_key(rt.word_row, rt.word_hash))
        content = ref_keys[~_is_function_word(ref_keys)]
        start = np.searchsorted(_key_row(content), np.arange(len(refs) + 1))
        value = _Context(
            ref_uni=_KeySet(ref_keys),
            ref_bi=_KeySet(_unique(_row_key(rbi_r, rbi_h))),
            ref_c4=_KeySet(_char4_keys(rt)),
            ref_word_count=np.bincount(rt.word_row, minlength=len(refs)).astype(np.float64),
            q_uni=_KeySet(_unique(_row_key(qt.word_row, qt.word_hash))),
            question_ids=_text_ids(qt, len(questions)),
            ref_content=content,
            ref_content_start=start,
            ref_content_count=np.diff(start).astype(np.float64),
        )
    if len(_CONTEXT_CACHE) >= _CONTEXT_CACHE_SIZE:
        _CONTEXT_CACHE.pop(next(iter(_CONTEXT_CACHE)))
    _CONTEXT_CACHE[key] = value
    return value


def _dedupe(texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    index: dict[str, int] = {}
    ids = np.fromiter((index.setdefault(t, len(index)) for t in texts), dtype=np.int64, count=len(texts))
    return list(index), ids


def _as_text_list(values, n: int, name: str) -> list[str] | str:
    """One text per response, or the one string itself when all responses share it."""
    if values is None:
        return ""
    if isinstance(values, str):
        return values
    out = []
    for v in values:
        if v is None:
            out.append("")
        elif isinstance(v, str):
            out.append(v)
        else:  # several reference answers for one response
            out.append(" \n ".join(str(x) for x in v).replace("\n", " "))
    if len(out) != n:
        raise ValueError(f"{name}: expected {n} values (one per response), got {len(out)}")
    return out


def _ids(values: list[str] | str, n: int) -> tuple[list[str], np.ndarray]:
    if isinstance(values, str):
        return [values], np.zeros(n, np.int64)
    return _dedupe(values)


def _word_ids(t: _Text, vocabulary: np.ndarray, max_words: int) -> np.ndarray:
    """``int64 [n, w]``: each row's first ``max_words`` words as ids (vocabulary word i: i + 2; any other
    word: ``OTHER_WORD``), then ``PAD_WORD``; ``w`` = the longest row's words (at least 1), so a row's ids
    do not depend on the other rows of its batch beyond their padding."""
    n = t.n_rows
    rows = t.word_row
    first = np.searchsorted(rows, np.arange(n))  # the words are in row order
    pos = np.arange(len(rows)) - first[rows]
    keep = pos < max_words
    rows, pos, h = rows[keep], pos[keep], t.word_hash[keep]
    at = np.minimum(np.searchsorted(vocabulary, h), len(vocabulary) - 1)
    ids = np.where(vocabulary[at] == h, at + 2, OTHER_WORD)
    out = np.full((n, max(1, int(pos.max()) + 1 if len(pos) else 1)), PAD_WORD, np.int64)
    out[rows, pos] = ids
    return out


def word_vocabulary(texts: Sequence[str], max_size: int, min_count: int = 2) -> tuple[list[int], list[str]]:
    """The ``max_size`` most frequent words of ``texts`` seen at least ``min_count`` times, split and hashed
    as the featuriser does: their hashes in increasing order (a ``Featurizer`` vocabulary) and, in the
    same order, how each is spelled (for an embedding initialisation)."""
    with np.errstate(over="ignore"):
        t = _Text([r if isinstance(r, str) else "" for r in texts])
    h, first, counts = np.unique(t.word_hash, return_index=True, return_counts=True)
    order = np.lexsort((h, -counts))  # most frequent first, ties by hash: deterministic
    chosen = np.sort(order[counts[order] >= min_count][:max_size])
    raw = t.raw.tobytes()
    spell = [raw[s:e].decode("utf-8", "replace") for s, e in zip(t.word_start[first[chosen]].tolist(),
                                                              t.word_end[first[chosen]].tolist(), strict=True)]
    return [int(x) for x in h[chosen]], spell


class Featurizer:
    """Hashed n-gram bag (sparse) + overlap features.  ``transform`` output feeds the ONNX student."""

    def __init__(
        self,
        n_buckets: int = 4096,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] = (3, 5),
        use_reference: bool = True,
        cross_question: bool = False,
        dense_features: Sequence[str] | None = None,
        known_questions: Sequence[str] | None = None,
        vocabulary: Sequence[int] | None = None,
        max_words: int = 200,
    ):
        """``dense_features``: the overlap features to compute, by name (default: all of ``DENSE_NAMES``; a
        model version trained before a feature existed lists the ones it was trained on).
        ``known_questions``: the ``question_key`` of each question a pooled model was trained on; the dense
        features then end with ``question_seen`` (by default; a listed ``dense_features`` must say so).
        ``vocabulary``: word hashes (``word_vocabulary``) of a student with a word CNN; ``transform`` then
        also returns ``word``, each answer's first ``max_words`` words as ids (``word_ids``)."""
        if not 2 <= n_buckets < 2**31:
            raise ValueError("n_buckets must be at least 2 (and below 2**31)")
        self.n_buckets = int(n_buckets)
        self.word_ngrams = (int(word_ngrams[0]), int(word_ngrams[1]))
        self.char_ngrams = (int(char_ngrams[0]), int(char_ngrams[1]))
        if not (1 <= self.word_ngrams[0] <= self.word_ngrams[1] <= 2):
            raise ValueError("word_ngrams must be within (1, 2)")
        if self.char_ngrams != (0, 0) and not (1 <= self.char_ngrams[0] <= self.char_ngrams[1] <= MAX_CHAR_NGRAM):
            raise ValueError(f"char_ngrams must be (lo, hi) with 1 <= lo <= hi <= {MAX_CHAR_NGRAM}, "
                             "or (0, 0) for none")
        self.use_reference = bool(use_reference)
        self.cross_question = bool(cross_question)
        self.known_questions = None
        if known_questions is not None:
            keys = sorted({str(k) for k in known_questions})
            if not keys or not all(len(k) == 16 and all(c in "0123456789abcdef" for c in k) for k in keys):
                raise ValueError("known_questions must be question_key() values (16 hex digits), at least one")
            self.known_questions = tuple(keys)
        default = DENSE_NAMES + ((QUESTION_SEEN,) if self.known_questions else ())
        names = tuple(default if dense_features is None else dense_features)
        unknown = [x for x in names if x not in DENSE_NAMES and x != QUESTION_SEEN]
        if unknown:
            raise ValueError(f"no dense feature named {', '.join(map(repr, unknown))}: this code computes "
                             f"{', '.join(DENSE_NAMES)} (and {QUESTION_SEEN} with known questions)")
        if (QUESTION_SEEN in names) != bool(self.known_questions) or (
                QUESTION_SEEN in names and names[-1] != QUESTION_SEEN):
            raise ValueError(f"{QUESTION_SEEN!r} must be the last dense feature exactly when known_questions is given")
        self.dense_features = names
        overlap = names[:-1] if self.known_questions else names
        self._dense_cols = None if overlap == DENSE_NAMES else np.array([DENSE_NAMES.index(x) for x in overlap])
        self._known = frozenset(self.known_questions or ())
        self.vocabulary = None
        self.max_words = int(max_words)
        if self.max_words < 1:
            raise ValueError("max_words must be at least 1")
        if vocabulary is not None:
            v = np.asarray([int(x) for x in vocabulary], dtype=np.uint64)
            if len(v) == 0 or np.any(v[1:] <= v[:-1]):
                raise ValueError("vocabulary must be a non-empty, strictly increasing list of word hashes")
            self.vocabulary = v

    # -- state -----------------------------------------------------------------------------------
    @property
    def input_names(self) -> tuple[str, ...]:
        return ("bucket", "segment", "segment_weight", "dense") + (("word",) if self.vocabulary is not None else ())

    @property
    def n_dense(self) -> int:
        return len(self.dense_features)

    def to_state(self) -> dict:
        words = {} if self.vocabulary is None else {
            "vocabulary": [int(x) for x in self.vocabulary], "max_words": self.max_words}
        return {
            "format": FORMAT if self.vocabulary is None else FORMAT_WORDS,
            "n_buckets": self.n_buckets,
            "word_ngrams": list(self.word_ngrams),
            "char_ngrams": list(self.char_ngrams),
            "use_reference": self.use_reference,
            "cross_question": self.cross_question,
            "dense_features": list(self.dense_features),
            **({"known_questions": list(self.known_questions)} if self.known_questions else {}),
            "namespaces": N_NAMESPACES,
            "inputs": {"bucket": ["m"], "segment": ["m"], "segment_weight": [f"n*{N_NAMESPACES}"],
                       "dense": ["n", self.n_dense], **({"word": ["n", "w"]} if words else {})},
            **words,
        }

    @classmethod
    def from_state(cls, state: dict) -> Featurizer:
        if not isinstance(state, dict) or state.get("format") not in (FORMAT, FORMAT_WORDS):
            found = state.get("format") if isinstance(state, dict) else None
            raise ValueError(f"not a featuriser state of format {FORMAT!r} (found {found!r}): "
                             "a model version from an older kdgrade; train it again")
        names = state.get("dense_features")
        if not isinstance(names, list) or not names:
            raise ValueError("featuriser state lists no dense features")
        return cls(
            n_buckets=state["n_buckets"],
            word_ngrams=tuple(state["word_ngrams"]),
            char_ngrams=tuple(state["char_ngrams"]),
            use_reference=state["use_reference"],
            cross_question=state["cross_question"],
            dense_features=names,
            known_questions=state.get("known_questions"),
            vocabulary=state.get("vocabulary") if state["format"] == FORMAT_WORDS else None,
            max_words=state.get("max_words", 200),
        )

    @property
    def seen_column(self) -> int | None:
        """The dense column of ``question_seen`` (None without known questions)."""
        return self.n_dense - 1 if self.known_questions else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Featurizer) and self.to_state() == other.to_state()

    def __repr__(self) -> str:
        return f"Featurizer({self.to_state()!r})"

    # -- transform -------------------------------------------------------------------------------
    def transform(self, responses: Sequence[str], questions=None, references=None) -> dict[str, np.ndarray]:
        """Features of ``responses`` (with the item's question and reference answer, one per response
        or one string for all): ``{"bucket": int64 [m], "segment": int64 [m], "segment_weight": float32
        [n * N_NAMESPACES], "dense": float32 [n, n_dense]}``, and with a vocabulary ``"word": int64 [n, w]``
        (``word_ids``)."""
        with np.errstate(over="ignore"):
            return self._transform(responses, questions, references)

    def to_csr(self, feeds: dict[str, np.ndarray]):
        """The bag of ``feeds`` as a scipy CSR matrix ``[n, n_buckets]`` (float64, duplicates summed)."""
        import scipy.sparse as sp

        n = feeds["dense"].shape[0]
        keep = feeds["bucket"] < self.n_buckets  # drop the sink
        seg = feeds["segment"][keep]
        weight = feeds["segment_weight"].astype(np.float64)[seg]
        return sp.csr_matrix((weight, (seg // N_NAMESPACES, feeds["bucket"][keep])), shape=(n, self.n_buckets))

    def _transform(self, responses, questions, references) -> dict[str, np.ndarray]:
        if isinstance(responses, str):
            raise TypeError("responses must be a sequence of strings, not one string")
        responses = [r if isinstance(r, str) else ("" if r is None else str(r)) for r in responses]
        n = len(responses)
        nb = self.n_buckets
        if n == 0:
            out = {"bucket": np.zeros(0, np.int64), "segment": np.zeros(0, np.int64),
                   "segment_weight": np.zeros(0, np.float32), "dense": np.zeros((0, self.n_dense), np.float32)}
            if self.vocabulary is not None:
                out["word"] = np.zeros((0, 1), np.int64)
            return out
        uniq_q, q_id = _ids(_as_text_list(questions, n, "questions"), n)
        uniq_ref, ref_id = _ids(_as_text_list(references, n, "references"), n)
        t = _Text(responses)

        # blocks of entries, in this order: word n-grams, character n-grams (a length: written last,
        # straight into the output), shared words, words x question
        blocks: list[tuple[np.ndarray, np.ndarray] | int] = []
        count = np.zeros((n, N_NAMESPACES), dtype=np.float64)  # occurrences per row and namespace

        def add(h: np.ndarray, rows: np.ndarray, ns: int) -> None:
            blocks.append((_to_bucket(_mix(h ^ _NS[ns]), nb), rows * N_NAMESPACES + ns))
            count[:, ns] += np.bincount(rows, minlength=n)

        lo, hi = self.word_ngrams
        if lo <= 1 <= hi:
            add(t.word_hash, t.word_row, WORDS)
        bi_h, bi_r = t.word_bigrams()
        if hi >= 2:
            add(bi_h, bi_r, WORDS)
        clo, chi = self.char_ngrams
        if self.char_ngrams != (0, 0):
            for k in range(clo, chi + 1):
                blocks.append(k)
                count[:, CHARS] += t.windows_per_row(k)

        # Relations with the reference answer and the question (texts deduplicated: usually one per item)
        ctx = _context(tuple(uniq_ref), tuple(uniq_q))
        if self.use_reference:
            n_ref = len(ctx.ref_word_count)
            w_in_ref = ctx.ref_uni.contains(_rekey(t.word_hash, t.word_row, ref_id, n_ref))
            b_in_ref = ctx.ref_bi.contains(_rekey(bi_h, bi_r, ref_id, n_ref))
            add(t.word_hash[w_in_ref], t.word_row[w_in_ref], SHARED)
            add(bi_h[b_in_ref] * _PAIR, bi_r[b_in_ref], SHARED)
        if self.cross_question:
            add(_mix(t.word_hash * _PAIR + ctx.question_ids[q_id[t.word_row]]), t.word_row, CROSS)

        sizes = [len(b[0]) if isinstance(b, tuple) else max(len(t.raw) - b + 1, 0) for b in blocks]
        offsets = [0, *accumulate(sizes)]
        bucket = np.empty(offsets[-1], np.int64)
        segment = np.empty(offsets[-1], np.int64)
        for block, at in zip(blocks, offsets, strict=False):
            if isinstance(block, tuple):
                bucket[at : at + len(block[0])], segment[at : at + len(block[1])] = block
        char4 = None
        if self.char_ngrams != (0, 0):
            char_segment = t.row_of * N_NAMESPACES + CHARS  # by window start
            at = offsets[blocks.index(clo)]
            for k, g in t.packed_windows(max(chi, 4)):
                if k == 4:
                    char4 = _char4_keys(t, g)  # before the buffer moves on to 5-grams
                if not clo <= k <= chi:
                    continue
                size = len(g)
                out = bucket[at : at + size].view(np.uint64)  # = _to_bucket(g * _CHAR_MUL[k], nb), in place
                np.multiply(g, _CHAR_MUL[k], out=out)
                np.right_shift(out, _U64(32), out=out)
                np.multiply(out, _U64(nb), out=out)
                np.right_shift(out, _U64(32), out=out)
                out[t.crossing(k, size)] = nb  # the sink
                segment[at : at + size] = char_segment[:size]
                at += size

        with np.errstate(divide="ignore"):
            weight = np.where(count > 0, 1.0 / np.sqrt(count), 0.0).astype(np.float32).ravel()
        dense = self._dense(t, ctx, ref_id, q_id, bi_h, bi_r, char4 if char4 is not None else _char4_keys(t), n)
        if self._dense_cols is not None:
            dense = np.ascontiguousarray(dense[:, self._dense_cols])
        if self.known_questions:
            seen = np.array([question_key(q) in self._known for q in uniq_q], np.float32)[q_id]
            dense = np.concatenate([dense, seen[:, None]], axis=1)
        out = {"bucket": bucket, "segment": segment, "segment_weight": weight, "dense": dense}
        if self.vocabulary is not None:
            out["word"] = _word_ids(t, self.vocabulary, self.max_words)
        return out

    @staticmethod
    def _dense(t, ctx, ref_id, q_id, bi_h, bi_r, char4: np.ndarray, n) -> np.ndarray:
        dense = np.zeros((n, N_DENSE), np.float64)
        n_words = np.bincount(t.word_row, minlength=n).astype(np.float64)
        # distinct words per row, and which of them are in the row's reference / question (keys carry
        # the row; re-keyed with the reference's / question's row to look them up)
        keys = _unique(_row_key(t.word_row, t.word_hash))
        d_row = _key_row(keys)
        n_ref = len(ctx.ref_word_count)
        d_ref = ctx.ref_uni.contains(_rekey(keys, d_row, ref_id, n_ref))
        d_q = ctx.q_uni.contains(_rekey(keys, d_row, q_id, len(ctx.question_ids)))
        n_types = np.bincount(d_row, minlength=n).astype(np.float64)
        shared = np.bincount(d_row[d_ref], minlength=n).astype(np.float64)
        in_q = np.bincount(d_row[d_q], minlength=n).astype(np.float64)
        d_content = d_ref & ~_is_function_word(keys)
        content_shared = np.bincount(d_row[d_content], minlength=n).astype(np.float64)
        new_shared = np.bincount(d_row[d_content & ~d_q], minlength=n).astype(np.float64)
        novel = np.bincount(d_row[~(d_ref | d_q)], minlength=n).astype(np.float64)
        bkeys = _unique(_row_key(bi_r, bi_h))
        b_row = _key_row(bkeys)
        b_shared_n = np.bincount(b_row[ctx.ref_bi.contains(_rekey(bkeys, b_row, ref_id, n_ref))],
                                 minlength=n).astype(np.float64)
        rt_n = ctx.ref_uni.distinct_per_row(n_ref)[ref_id]
        rb_n = ctx.ref_bi.distinct_per_row(n_ref)[ref_id]
        rc_n = ctx.ref_c4.distinct_per_row(n_ref)[ref_id]
        # distinct character 4-grams of each response, and how many of them the reference has
        ckeys = char4
        c_row = _key_row(ckeys)
        c_types = np.bincount(c_row, minlength=n).astype(np.float64)
        c_shared = np.bincount(c_row[ctx.ref_c4.contains(_rekey(ckeys, c_row, ref_id, n_ref))],
                               minlength=n).astype(np.float64)
        safe = np.maximum
        dense[:, 0] = np.where(rt_n > 0, shared / safe(rt_n, 1), 0.0)
        dense[:, 1] = shared / safe(n_types, 1)
        dense[:, 2] = np.where(rb_n > 0, b_shared_n / safe(rb_n, 1), 0.0)
        dense[:, 3] = in_q / safe(n_types, 1)
        dense[:, 4] = novel / safe(n_types, 1)
        dense[:, 5] = np.log1p(n_words) / 5.0
        n_chars = np.bincount(t.word_row, weights=(t.word_end - t.word_start).astype(np.float64), minlength=n)
        dense[:, 6] = np.log1p(n_chars) / 8.0
        dense[:, 7] = n_types / safe(n_words, 1)
        dense[:, 8] = np.where(rc_n > 0, c_shared / safe(rc_n, 1), 0.0)
        dense[:, 9] = c_shared / safe(c_types, 1)
        dense[:, 10] = (np.log1p(n_words) - np.log1p(ctx.ref_word_count[ref_id])) / 3.0
        rcc_n = ctx.ref_content_count[ref_id]
        dense[:, 11] = np.where(rcc_n > 0, content_shared / safe(rcc_n, 1), 0.0)
        rnc_n = _new_content_counts(ctx, ref_id, q_id)
        dense[:, 12] = np.where(rnc_n > 0, new_shared / safe(rnc_n, 1), 0.0)
        return dense.astype(np.float32)
