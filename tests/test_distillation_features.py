"""The featuriser: deterministic, batch-independent, state round trip, and free of torch/transformers."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distillation.features import DENSE_NAMES, N_DENSE, N_NAMESPACES, QUESTION_SEEN, Featurizer, question_key

pytestmark = pytest.mark.ml

ROOT = Path(__file__).resolve().parent.parent
RESPONSES = [
    "Metal is a good CONDUCTOR of heat, so the heat moves fast!",
    "because the soup is hot",
    "",
    "Wood is an insulator; métal conducts heat (thermal energy) quickly.",
    "i dont know",
]
QUESTION = "Why does a metal spoon in hot soup get hot faster than a wooden spoon?"
REFERENCE = "Metal is a good conductor of heat; wood is an insulator."


def bag(fz, out):
    return fz.to_csr(out).toarray()


def test_shapes_dtypes_and_names():
    fz = Featurizer(n_buckets=1024)
    out = fz.transform(RESPONSES, QUESTION, REFERENCE)
    assert tuple(out) == fz.input_names == ("bucket", "segment", "segment_weight", "dense")
    m = len(out["bucket"])
    assert out["segment"].shape == (m,) and m > 0
    assert out["segment"].dtype == out["bucket"].dtype == np.int64 and out["segment_weight"].dtype == np.float32
    # buckets in range, plus the sink (index n_buckets) for character windows that cross two answers
    assert out["bucket"].min() >= 0 and out["bucket"].max() == 1024
    assert out["segment"].max() < len(RESPONSES) * N_NAMESPACES
    assert out["segment_weight"].shape == (len(RESPONSES) * N_NAMESPACES,)
    assert out["dense"].shape == (5, N_DENSE) and out["dense"].dtype == np.float32
    assert np.all(np.isfinite(out["segment_weight"])) and np.all(np.isfinite(out["dense"]))
    b = bag(fz, out)
    assert b[2].sum() == 0  # the empty answer has no n-grams
    assert b[0].sum() > 0
    # the answer that copies the reference shares more of it than "i dont know", in words and characters
    assert out["dense"][0, 0] > out["dense"][4, 0] and out["dense"][0, 8] > out["dense"][4, 8]


def test_buckets_need_not_be_a_power_of_two():
    fz = Featurizer(n_buckets=49152)
    out = fz.transform(RESPONSES, QUESTION, REFERENCE)
    used = out["bucket"][out["bucket"] < 49152]
    assert used.max() >= 32768  # the upper third is used too


def test_rows_do_not_depend_on_the_batch():
    fz = Featurizer(n_buckets=2048, cross_question=True)
    questions = [QUESTION, "What do plants need light for?"] * 2 + [QUESTION]
    refs = [REFERENCE, ["Photosynthesis.", "To make food."]] * 2 + [REFERENCE]
    whole = fz.transform(RESPONSES, questions, refs)
    wb = bag(fz, whole)
    for i in range(len(RESPONSES)):
        one = fz.transform(RESPONSES[i : i + 1], questions[i : i + 1], refs[i : i + 1])
        np.testing.assert_array_equal(bag(fz, one)[0], wb[i])
        np.testing.assert_array_equal(one["dense"][0], whole["dense"][i])
    rev = fz.transform(RESPONSES[::-1], questions[::-1], refs[::-1])
    np.testing.assert_array_equal(bag(fz, rev)[::-1], wb)


def test_state_round_trip_and_serving_copy_are_identical():
    fz = Featurizer(n_buckets=512, word_ngrams=(1, 1), char_ngrams=(2, 4), cross_question=True)
    state = json.loads(json.dumps(fz.to_state()))
    served = Featurizer.from_state(state)
    assert served == fz
    a, b = fz.transform(RESPONSES, QUESTION, REFERENCE), served.transform(RESPONSES, QUESTION, REFERENCE)
    for k in a:
        assert a[k].tobytes() == b[k].tobytes()
    with pytest.raises(ValueError):
        Featurizer.from_state({**state, "format": "other"})
    with pytest.raises(ValueError, match="older kdgrade"):
        Featurizer.from_state({**state, "format": "kdgrade-featurizer/1"})
    with pytest.raises(ValueError):
        Featurizer(n_buckets=1)


def test_a_pooled_featuriser_says_which_questions_it_was_trained_on():
    """With known questions the dense features end with question_seen: 1.0 for a known question (case and
    spacing aside), 0.0 for any other; the rest of the feeds are those of a featuriser without them."""
    known = [question_key("Why does metal feel cold?"), question_key("What do plants need light for?")]
    fz = Featurizer(n_buckets=512, cross_question=True, known_questions=known)
    assert fz.dense_features == (*DENSE_NAMES, QUESTION_SEEN) and fz.seen_column == N_DENSE
    questions = ["why does  METAL feel cold?", "What do plants need light for?", "Why is the sky blue?", ""]
    out = fz.transform(RESPONSES[:4], questions, REFERENCE)
    assert out["dense"].shape == (4, N_DENSE + 1)
    assert out["dense"][:, -1].tolist() == [1.0, 1.0, 0.0, 0.0]
    plain = Featurizer(n_buckets=512, cross_question=True).transform(RESPONSES[:4], questions, REFERENCE)
    assert np.array_equal(out["dense"][:, :-1], plain["dense"])
    assert all(np.array_equal(out[k], plain[k]) for k in ("bucket", "segment", "segment_weight"))
    state = json.loads(json.dumps(fz.to_state()))
    assert state["known_questions"] == sorted(known) and state["inputs"]["dense"] == ["n", N_DENSE + 1]
    assert Featurizer.from_state(state) == fz
    assert "known_questions" not in Featurizer(n_buckets=512).to_state()  # single items: unchanged state
    with pytest.raises(ValueError, match="question_key"):
        Featurizer(known_questions=["not a key"])
    with pytest.raises(ValueError, match="last dense feature"):
        Featurizer.from_state({**state, "known_questions": None})
    with pytest.raises(ValueError, match="last dense feature"):
        Featurizer(dense_features=(*DENSE_NAMES, QUESTION_SEEN))


def _digest(fz: Featurizer) -> str:
    out = fz.transform(RESPONSES, QUESTION, REFERENCE)
    return hashlib.sha256(b"".join(out[k].tobytes() for k in fz.input_names)).hexdigest()


def test_hash_is_stable_across_versions():
    """Fixed fingerprints: a change here silently breaks every deployed model version.  A version trained
    before the content-word features existed lists 11 dense features and still gets exactly its feeds."""
    assert _digest(Featurizer(n_buckets=4096)) == FINGERPRINT
    before = Featurizer(n_buckets=4096, dense_features=DENSE_NAMES[:11])
    assert _digest(before) == FINGERPRINT_11_DENSE
    state = before.to_state()
    assert state["dense_features"] == list(DENSE_NAMES[:11]) and state["inputs"]["dense"] == ["n", 11]
    assert _digest(Featurizer.from_state(state)) == FINGERPRINT_11_DENSE


def test_content_word_overlap_ignores_function_words_and_what_the_question_already_says():
    fz = Featurizer(n_buckets=64)
    recall, new_recall = DENSE_NAMES.index("ref_content_recall"), DENSE_NAMES.index("ref_new_content_recall")
    question = "Why does the metal spoon get hot?"
    reference = "The metal conducts heat from the soup to the spoon."  # content: metal conducts heat soup spoon
    d = fz.transform(["It is the metal of the spoon.", "Metal conducts heat.", "the of to from"],
                     question, reference)["dense"]
    # 2 of the 5 content words; the 3 new to the question (conducts, heat, soup): none of them
    assert d[0, recall] == pytest.approx(2 / 5) and d[0, new_recall] == 0.0
    assert d[1, recall] == pytest.approx(3 / 5) and d[1, new_recall] == pytest.approx(2 / 3)
    assert d[2, recall] == 0.0 and d[2, new_recall] == 0.0  # function words alone share nothing that counts
    with pytest.raises(ValueError, match="no dense feature named 'nope'"):
        Featurizer(dense_features=["nope"])


def test_key_set_answers_exactly_what_isin_answers():
    from distillation.features import _KEY_FLAG, _KeySet

    rng = np.random.default_rng(0)
    keys = np.unique(rng.integers(0, 2**40, 3000, dtype=np.uint64)) | _KEY_FLAG
    # queries: every key, keys with one bit flipped, and random misses; the table is an eighth full,
    # so many queries land on an occupied slot of another key and have to probe on
    queries = np.concatenate([keys, keys ^ np.uint64(1), rng.integers(0, 2**40, 20000, dtype=np.uint64) | _KEY_FLAG])
    table = _KeySet(keys)
    got = table.contains(queries)
    np.testing.assert_array_equal(got, np.isin(queries, keys))
    assert got[: len(keys)].all() and not _KeySet(keys[:0]).contains(queries).any()
    # a small query (one answer's words) takes the set path: the same answers
    for part in (queries[:0], queries[:1], queries[2990:3010], queries[-200:], queries[::100][:256]):
        np.testing.assert_array_equal(table.contains(part), np.isin(part, keys))
    assert table.contains(queries[2990:3010]).sum() == 10  # 10 keys, then 10 with a bit flipped


def test_question_and_reference_change_the_features():
    fz = Featurizer(n_buckets=1024, cross_question=True)
    a = fz.transform(RESPONSES, QUESTION, REFERENCE)
    b = fz.transform(RESPONSES, "What do plants need light for?", "Photosynthesis makes food.")
    assert not np.array_equal(bag(fz, a), bag(fz, b)) and not np.array_equal(a["dense"], b["dense"])
    with pytest.raises(ValueError):
        fz.transform(RESPONSES, [QUESTION], REFERENCE)
    with pytest.raises(TypeError):
        fz.transform("one string")


def test_serving_modules_import_no_training_stack():
    code = (
        "import sys, distillation.features, distillation.artifact, distillation.onnx_contract, scoring.scorer;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'sklearn', 'django'));"
        "print(','.join(bad))"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert res.stdout.strip() == ""
    # and the check itself can fail: the teacher does pull torch in
    res = subprocess.run(
        [sys.executable, "-c", "import sys, distillation.teacher; print('torch' in sys.modules)"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    assert res.stdout.strip() == "True"


FINGERPRINT = "091a5b6f7f2ae573854118ef92d64c59cc7d8537d98f8c8639a62b288fc01edc"
FINGERPRINT_11_DENSE = "84f371af740fe2c711fe1c0a489fa4bd6463cfe3ddaa71a220f63359f68e31fd"  # before 2026-12-03


def test_word_ids_read_the_vocabulary_and_do_not_depend_on_the_batch():
    from distillation.features import FORMAT, OTHER_WORD, PAD_WORD, word_vocabulary

    texts = ["The metal spoon conducts heat.", "metal conducts", "Heat, heat and METAL!", "wood"]
    vocab, spelled = word_vocabulary(texts, max_size=3, min_count=2)
    assert vocab == sorted(vocab) and sorted(spelled) == ["conducts", "heat", "metal"]  # "wood": seen once
    assert word_vocabulary(texts, max_size=2, min_count=2)[1] == [w for w in spelled if w != "conducts"]
    fz = Featurizer(n_buckets=64, vocabulary=vocab, max_words=4)
    ids = {w: vocab.index(h) + 2 for h, w in zip(vocab, spelled, strict=True)}
    out = fz.transform([*texts, ""], "q", "r")
    assert tuple(out) == fz.input_names == ("bucket", "segment", "segment_weight", "dense", "word")
    assert out["word"].tolist() == [
        [OTHER_WORD, ids["metal"], OTHER_WORD, ids["conducts"]],  # the first max_words words only
        [ids["metal"], ids["conducts"], PAD_WORD, PAD_WORD],
        [ids["heat"], ids["heat"], OTHER_WORD, ids["metal"]],
        [OTHER_WORD, PAD_WORD, PAD_WORD, PAD_WORD],
        [PAD_WORD] * 4,
    ]
    alone = fz.transform(["metal conducts"], "q", "r")["word"]
    assert alone.tolist() == [[ids["metal"], ids["conducts"]]]  # the same ids, less padding
    # every other feed is what the featuriser without a vocabulary gives
    plain = Featurizer(n_buckets=64).transform([*texts, ""], "q", "r")
    assert all(np.array_equal(plain[k], out[k]) for k in plain)
    state = fz.to_state()
    assert state["format"] != FORMAT and state["vocabulary"] == vocab and Featurizer.from_state(state) == fz
    assert Featurizer(n_buckets=64).to_state()["format"] == FORMAT  # no vocabulary: the old format, unchanged
    with pytest.raises(ValueError, match="strictly increasing"):
        Featurizer(vocabulary=vocab[::-1])
