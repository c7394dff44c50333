"""The featuriser shared by training and serving (numpy + stdlib only: no torch, no transformers).

A response is lower-cased (``str.lower``), encoded as UTF-8, every run of bytes that are not ASCII
letters or digits or part of a non-ASCII character becomes one space, and the text is padded with a
space on each side.  Features, all hashed into ``n_buckets`` buckets
with a vectorised 64-bit polynomial hash (one byte array for the whole batch, no per-n-gram Python
loop):

* namespace 1: word n-grams of the response (``word_ngrams``, default 1-2);
* namespace 2: character n-grams of the padded response (``char_ngrams``, default 3-5);
* namespace 3: the response's word 1- and 2-grams that also occur in the reference answer
  (what the answer shares with the key);
* namespace 4 (``cross_question``): the response's words crossed with the question, so that a model
  pooled over many items can learn item-specific words.

Each occurrence in a namespace weighs ``1 / sqrt(number of occurrences of that namespace in the row)``.
The bag is returned sparse, as three flat arrays of the same length: ``row`` (int64, the answer),
``bucket`` (int64) and ``weight`` (float32), one entry per n-gram occurrence (a bucket may repeat: the
model sums), and ``dense`` ``[n, N_DENSE]`` (float32): overlap with the reference answer and the
question (words, bigrams, character 4-grams), which carry over to questions the model never saw, and
length features.  Buckets need not be a power of two.

``Featurizer.transform`` returns ``{"row", "bucket", "weight", "dense"}``, the exact feeds of the ONNX
student (``distillation.onnx_contract``); ``to_csr`` turns them into a scipy matrix for training.
The same code runs in training and in serving, so features are identical byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FORMAT = "kdgrade-featurizer/2"

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
)
N_DENSE = len(DENSE_NAMES)

_U64 = np.uint64
_MASK64 = (1 << 64) - 1
_P = 0x100000001B3  # odd: invertible modulo 2**64
_P_INV = pow(_P, -1, 1 << 64)
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)
_PAIR = _U64(0x9E3779B97F4A7C15)
_NS = {1: _U64(0x2545F4914F6CDD1D), 2: _U64(0x5851F42D4C957F2D), 3: _U64(0x14057B7EF767814F),
       4: _U64(0xD1B54A32D192ED03)}
_GRAM = _U64(0xA0761D6478BD642F)
_SEP = ord("\n") + 1  # byte values are shifted by one so that no byte hashes as zero
_SPACE = ord(" ") + 1
# byte map: ASCII letters and digits, every byte of a non-ASCII character, and the row separator are
# kept; every other byte (punctuation, underscore, whitespace) becomes a space.
_WORD_BYTE = np.full(256, ord(" "), dtype=np.uint8)
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


class _Text:
    """One batch of texts as a single shifted byte array with prefix hashes."""

    def __init__(self, texts: Sequence[str]):
        joined = " " + " \n ".join(t.lower().replace("\n", " ") for t in texts) + " "
        raw = np.frombuffer(joined.encode("utf-8"), dtype=np.uint8)
        raw = _WORD_BYTE[raw]  # letters, digits, non-ASCII bytes and separators kept; the rest -> space
        is_space = raw == ord(" ")
        keep = np.ones(len(raw), dtype=bool)
        keep[1:] = ~(is_space[1:] & is_space[:-1])  # runs of spaces -> one space
        raw = raw[keep]
        self.n_rows = len(texts)
        self.b = raw.astype(np.uint64) + _U64(1)
        n = len(self.b)
        self.pw, self.ipw = _power_tables(n + 1)
        self.prefix = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum(self.b * self.pw[:n], out=self.prefix[1:])
        is_sep = raw == ord("\n")
        self.is_sep = is_sep
        self.row_of = np.cumsum(is_sep, dtype=np.int64)  # row index of each byte (a separator opens its row)
        is_word = (raw != ord(" ")) & ~is_sep
        edges = np.diff(is_word.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
        self.word_start = np.flatnonzero(edges == 1)
        self.word_end = np.flatnonzero(edges == -1)
        self.word_row = self.row_of[self.word_start]
        self.word_hash = self.segment_hash(self.word_start, self.word_end)

    def segment_hash(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Position-independent hash of b[start:end] for each pair (vectorised)."""
        h = (self.prefix[end] - self.prefix[start]) * self.ipw[start]
        return _mix(h + _GRAM * (end - start).astype(np.uint64))

    def word_bigrams(self) -> tuple[np.ndarray, np.ndarray]:
        same = self.word_row[1:] == self.word_row[:-1]
        h = _mix(self.word_hash[:-1] * _PAIR + self.word_hash[1:])
        return h[same], self.word_row[:-1][same]

    def char_ngrams(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        total = len(self.b)
        if total < n:
            return np.zeros(0, np.uint64), np.zeros(0, np.int64)
        m = total - n + 1  # windows start at 0..m-1; slices only, no gathers
        h = (self.prefix[n:] - self.prefix[:m]) * self.ipw[:m] + _GRAM * _U64(n)
        ok = (self.row_of[n - 1 :] == self.row_of[:m]) & ~self.is_sep[:m]
        return _mix(h[ok]), self.row_of[:m][ok]


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
    """(row, hash) as one uint64 key: row in the top 24 bits, 40 bits of hash."""
    return (rows.astype(np.uint64) << _U64(40)) | (h & _U64((1 << 40) - 1))


def _text_ids(qt: _Text, n_texts: int) -> np.ndarray:
    """One hash per whole text (e.g. per question), from its words in order."""
    if len(qt.word_hash) == 0:
        return np.zeros(n_texts, np.uint64)
    pos = np.arange(len(qt.word_hash)) - np.searchsorted(qt.word_row, qt.word_row, side="left")
    contrib = qt.word_hash * qt.pw[pos]
    out = np.zeros(n_texts, np.uint64)
    np.add.at(out, qt.word_row, contrib)
    return _mix(out)


_CONTEXT_CACHE: dict[tuple, _Context] = {}
_CONTEXT_CACHE_SIZE = 256


@dataclass(frozen=True)
class _Context:
    """Hashed (row, n-gram) sets of a batch's distinct references and questions."""

    ref_uni: np.ndarray
    ref_bi: np.ndarray
    ref_c4: np.ndarray
    ref_word_count: np.ndarray
    q_uni: np.ndarray
    question_ids: np.ndarray


def _context(refs: tuple[str, ...], questions: tuple[str, ...]) -> _Context:
    """Word hashes of the (deduplicated) references and questions of a batch; cached, since a
    serving process scores the same few items over and over.  Pure function of its arguments."""
    key = (refs, questions)
    hit = _CONTEXT_CACHE.get(key)
    if hit is not None:
        return hit
    with np.errstate(over="ignore"):
        rt = _Text(refs)
        qt = _Text(questions)
        rbi_h, rbi_r = rt.word_bigrams()
        rc4_h, rc4_r = rt.char_ngrams(4)
        value = _Context(
            ref_uni=_unique(_row_key(rt.word_row, rt.word_hash)),
            ref_bi=_unique(_row_key(rbi_r, rbi_h)),
            ref_c4=_unique(_row_key(rc4_r, rc4_h)),
            ref_word_count=np.bincount(rt.word_row, minlength=len(refs)).astype(np.float64),
            q_uni=_unique(_row_key(qt.word_row, qt.word_hash)),
            question_ids=_text_ids(qt, len(questions)),
        )
    if len(_CONTEXT_CACHE) >= _CONTEXT_CACHE_SIZE:
        _CONTEXT_CACHE.pop(next(iter(_CONTEXT_CACHE)))
    _CONTEXT_CACHE[key] = value
    return value


def _dedupe(texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    index: dict[str, int] = {}
    ids = np.fromiter((index.setdefault(t, len(index)) for t in texts), dtype=np.int64, count=len(texts))
    return list(index), ids


def _as_text_list(values, n: int, name: str) -> list[str]:
    if values is None:
        return [""] * n
    if isinstance(values, str):
        return [values] * n
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


class Featurizer:
    """Hashed n-gram bag (sparse) + overlap features.  ``transform`` output feeds the ONNX student."""

    def __init__(
        self,
        n_buckets: int = 4096,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] = (3, 5),
        use_reference: bool = True,
        cross_question: bool = False,
    ):
        if n_buckets < 2:
            raise ValueError("n_buckets must be at least 2")
        self.n_buckets = int(n_buckets)
        self.word_ngrams = (int(word_ngrams[0]), int(word_ngrams[1]))
        self.char_ngrams = (int(char_ngrams[0]), int(char_ngrams[1]))
        if not (1 <= self.word_ngrams[0] <= self.word_ngrams[1] <= 2):
            raise ValueError("word_ngrams must be within (1, 2)")
        if not (1 <= self.char_ngrams[0] <= self.char_ngrams[1]) and self.char_ngrams != (0, 0):
            raise ValueError("char_ngrams must be (lo, hi) with 1 <= lo <= hi, or (0, 0) for none")
        self.use_reference = bool(use_reference)
        self.cross_question = bool(cross_question)

    # -- state -----------------------------------------------------------------------------------
    input_names = ("row", "bucket", "weight", "dense")

    @property
    def n_dense(self) -> int:
        return N_DENSE

    def to_state(self) -> dict:
        return {
            "format": FORMAT,
            "n_buckets": self.n_buckets,
            "word_ngrams": list(self.word_ngrams),
            "char_ngrams": list(self.char_ngrams),
            "use_reference": self.use_reference,
            "cross_question": self.cross_question,
            "dense_features": list(DENSE_NAMES),
            "inputs": {"row": ["m"], "bucket": ["m"], "weight": ["m"], "dense": ["n", N_DENSE]},
        }

    @classmethod
    def from_state(cls, state: dict) -> Featurizer:
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            found = state.get("format") if isinstance(state, dict) else None
            raise ValueError(f"not a featuriser state of format {FORMAT!r} (found {found!r}): "
                             "a model version from an older kdgrade; train it again")
        if list(state.get("dense_features", [])) != list(DENSE_NAMES):
            raise ValueError("featuriser state lists other dense features than this code computes")
        return cls(
            n_buckets=state["n_buckets"],
            word_ngrams=tuple(state["word_ngrams"]),
            char_ngrams=tuple(state["char_ngrams"]),
            use_reference=state["use_reference"],
            cross_question=state["cross_question"],
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Featurizer) and self.to_state() == other.to_state()

    def __repr__(self) -> str:
        return f"Featurizer({self.to_state()!r})"

    # -- transform -------------------------------------------------------------------------------
    def transform(self, responses: Sequence[str], questions=None, references=None) -> dict[str, np.ndarray]:
        """Features of ``responses`` (with the item's question and reference answer, one per response
        or one string for all): ``{"row": int64 [m], "bucket": int64 [m], "weight": float32 [m],
        "dense": float32 [n, N_DENSE]}``."""
        with np.errstate(over="ignore"):
            return self._transform(responses, questions, references)

    def to_csr(self, feeds: dict[str, np.ndarray]):
        """The bag of ``feeds`` as a scipy CSR matrix ``[n, n_buckets]`` (float64, duplicates summed)."""
        import scipy.sparse as sp

        n = feeds["dense"].shape[0]
        return sp.csr_matrix((feeds["weight"].astype(np.float64), (feeds["row"], feeds["bucket"])),
                             shape=(n, self.n_buckets))

    def _transform(self, responses, questions, references) -> dict[str, np.ndarray]:
        if isinstance(responses, str):
            raise TypeError("responses must be a sequence of strings, not one string")
        responses = [r if isinstance(r, str) else ("" if r is None else str(r)) for r in responses]
        n = len(responses)
        nb = self.n_buckets
        if n == 0:
            return {"row": np.zeros(0, np.int64), "bucket": np.zeros(0, np.int64),
                    "weight": np.zeros(0, np.float32), "dense": np.zeros((0, N_DENSE), np.float32)}
        questions = _as_text_list(questions, n, "questions")
        references = _as_text_list(references, n, "references")
        t = _Text(responses)

        buckets: list[np.ndarray] = []
        rows: list[np.ndarray] = []
        spaces: list[int] = []
        ns_count = np.zeros((5, n), dtype=np.float64)  # occurrences per namespace and row
        pow2 = nb & (nb - 1) == 0
        modulus = _U64(nb - 1) if pow2 else _U64(nb)

        def add(h: np.ndarray, r: np.ndarray, ns: int) -> None:
            mixed = _mix(h ^ _NS[ns])
            buckets.append(((mixed & modulus) if pow2 else (mixed % modulus)).astype(np.int64))
            rows.append(r)
            spaces.append(ns)
            ns_count[ns] += np.bincount(r, minlength=n)

        lo, hi = self.word_ngrams
        if lo <= 1 <= hi:
            add(t.word_hash, t.word_row, 1)
        bi_h, bi_r = t.word_bigrams()
        if hi >= 2:
            add(bi_h, bi_r, 1)
        c4_h, c4_r = t.char_ngrams(4)
        if self.char_ngrams != (0, 0):
            for k in range(self.char_ngrams[0], self.char_ngrams[1] + 1):
                add(*((c4_h, c4_r) if k == 4 else t.char_ngrams(k)), 2)

        # Relations with the reference answer and the question (texts deduplicated: usually one per item)
        uniq_ref, ref_id = _dedupe(references)
        uniq_q, q_id = _dedupe(questions)
        ctx = _context(tuple(uniq_ref), tuple(uniq_q))
        ref_uni, ref_bi, qh = ctx.ref_uni, ctx.ref_bi, ctx.question_ids

        # response words keyed by their row's reference / question
        if self.use_reference:
            w_in_ref = np.isin(_row_key(ref_id[t.word_row], t.word_hash), ref_uni)
            b_in_ref = np.isin(_row_key(ref_id[bi_r], bi_h), ref_bi)
            add(t.word_hash[w_in_ref], t.word_row[w_in_ref], 3)
            add(bi_h[b_in_ref] * _PAIR, bi_r[b_in_ref], 3)
        if self.cross_question:
            add(_mix(t.word_hash * _PAIR + qh[q_id[t.word_row]]), t.word_row, 4)

        # weight: 1/sqrt(occurrences of the namespace in the row)
        with np.errstate(divide="ignore"):
            inv = (1.0 / np.sqrt(ns_count)).astype(np.float32)
        weight = np.concatenate([inv[ns][r] for r, ns in zip(rows, spaces, strict=True)])
        dense = self._dense(t, ctx, ref_id, q_id, bi_h, bi_r, c4_h, c4_r, n)
        return {"row": np.concatenate(rows), "bucket": np.concatenate(buckets), "weight": weight, "dense": dense}

    @staticmethod
    def _dense(t, ctx, ref_id, q_id, bi_h, bi_r, c4_h, c4_r, n) -> np.ndarray:
        dense = np.zeros((n, N_DENSE), np.float64)
        n_words = np.bincount(t.word_row, minlength=n).astype(np.float64)
        # distinct words per row, and which of them are in the reference / question (keys carry the
        # row in their top bits and 40 bits of hash, as the reference's and question's keys do)
        low = _U64((1 << 40) - 1)
        keys = _unique(_row_key(t.word_row, t.word_hash))
        d_row = (keys >> _U64(40)).astype(np.int64)
        d_ref = np.isin((keys & low) | (ref_id[d_row].astype(np.uint64) << _U64(40)), ctx.ref_uni)
        d_q = np.isin((keys & low) | (q_id[d_row].astype(np.uint64) << _U64(40)), ctx.q_uni)
        n_types = np.bincount(d_row, minlength=n).astype(np.float64)
        shared = np.bincount(d_row[d_ref], minlength=n).astype(np.float64)
        in_q = np.bincount(d_row[d_q], minlength=n).astype(np.float64)
        novel = np.bincount(d_row[~(d_ref | d_q)], minlength=n).astype(np.float64)
        bkeys = _unique(_row_key(bi_r, bi_h))
        b_row = (bkeys >> _U64(40)).astype(np.int64)
        b_shared = np.isin((bkeys & low) | (ref_id[b_row].astype(np.uint64) << _U64(40)), ctx.ref_bi)
        b_shared_n = np.bincount(b_row[b_shared], minlength=n).astype(np.float64)
        n_ref = len(ctx.ref_word_count)
        ref_types = np.bincount((ctx.ref_uni >> _U64(40)).astype(np.int64), minlength=n_ref).astype(np.float64)
        ref_bi_types = np.bincount((ctx.ref_bi >> _U64(40)).astype(np.int64), minlength=n_ref).astype(np.float64)
        ref_c4_types = np.bincount((ctx.ref_c4 >> _U64(40)).astype(np.int64), minlength=n_ref).astype(np.float64)
        rt_n, rb_n, rc_n = ref_types[ref_id], ref_bi_types[ref_id], ref_c4_types[ref_id]
        # distinct character 4-grams of each response, and how many of them the reference has
        ckeys = _unique(_row_key(c4_r, c4_h))
        c_row = (ckeys >> _U64(40)).astype(np.int64)
        c_types = np.bincount(c_row, minlength=n).astype(np.float64)
        c_in_ref = np.isin((ckeys & _U64((1 << 40) - 1)) | (ref_id[c_row].astype(np.uint64) << _U64(40)), ctx.ref_c4)
        c_shared = np.bincount(c_row[c_in_ref], minlength=n).astype(np.float64)
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
        return dense.astype(np.float32)
