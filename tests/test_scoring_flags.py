"""Flags for answers the model should not score on its own (pure Python, no database)."""

from __future__ import annotations

import csv
import json
import time

import pytest

from scoring.flags import ALL_FLAGS, FLAG_MESSAGES, check_batch, check_response, declines
from tests.scoring_support import DEMO_CSV, ROOT

pytestmark = pytest.mark.ml

CRAFTED = json.loads((ROOT / "bench" / "scoring_crafted_non_answers.json").read_text(encoding="utf-8"))
with DEMO_CSV.open(encoding="utf-8", newline="") as _handle:
    DEMO_ROWS = list(csv.DictReader(_handle))
QUESTION = DEMO_ROWS[0]["question"]


@pytest.mark.parametrize("kind", ["empty", "too_short", "too_long", "wrong_language", "copy_of_question",
                                  "gibberish", "keyword_list"])
def test_each_kind_of_crafted_non_answer_is_caught_by_its_flag(kind):
    for text in CRAFTED[kind]:
        flags = check_response(text, question=QUESTION)
        assert kind in flags, (text, flags)
        assert declines(flags)


def test_real_answers_and_controls_are_not_flagged():
    for text in [r["response"] for r in DEMO_ROWS] + CRAFTED["scorable_controls"]:
        assert check_response(text, question=QUESTION) == [], text


def test_short_real_answers_numbers_and_acronyms_pass():
    for text in ["Celsius.", "Evaporation", "DNA and mRNA", "9.8 m/s2", "100", "pH 7", "It's the strength."]:
        assert check_response(text, question=QUESTION) == [], text


def test_the_language_of_the_item_counts():
    spanish = CRAFTED["wrong_language"][0]
    assert check_response(spanish, question=QUESTION, language="es") == []
    assert check_response(spanish, question=QUESTION, language="en") == ["wrong_language"]
    assert "wrong_language" in check_response(DEMO_ROWS[0]["response"], language="es-MX")
    # no letter-shape rules for an item in a non-Latin script: nothing to say about "金属导热"
    assert check_response("金属比木头更容易导热", language="zh") == []


def test_low_confidence_alone_does_not_decline_and_every_flag_has_a_message():
    assert not declines(["low_confidence"]) and declines(["gibberish", "low_confidence"])
    assert set(FLAG_MESSAGES) == set(ALL_FLAGS) and all(FLAG_MESSAGES.values())


def test_flags_are_cheap():
    texts = [r["response"] for r in DEMO_ROWS] * 30
    start = time.perf_counter()
    for text in texts:
        check_response(text, question=QUESTION)
    per_answer = (time.perf_counter() - start) / len(texts)
    assert per_answer < 200e-6, f"{per_answer * 1e6:.0f} µs per answer"


# Edge cases of the shortcuts in check_response (the function-word bound of wrong_language, the
# repetition bound of keyword_list with one-letter words, the known-plausible-words set).  Expected
# values were computed with the unoptimised rules (commit b65d996) and must not change.
_Q = "Explain why the metal spoon feels colder than the wooden spoon at room temperature."
EDGE_CASES = [
    ("x y z heat heat metal metal heat metal heat metal", "en", ["keyword_list"]),
    ("a b c d e f g h heat heat heat heat heat heat", "en", []),
    ("é è ê heat heat heat heat heat heat metal", "en", ["keyword_list"]),
    ("heat heat heat metal metal metal wood wood wood hand", "en", ["keyword_list"]),
    ("the the the the heat heat heat heat heat heat", "en", ["keyword_list"]),
    ("el la los de que en heat metal", "en", ["wrong_language"]),
    ("the metal is cold and the wood is warm de la", "en", []),
    ("el metal es frío y la madera es caliente porque el metal", "es", []),
    ("Metal conducts heat away from the hand faster than wood does.", "es", ["wrong_language"]),
    ("Metal conducts heat away from the hand faster than wood does.", "zh", []),
    ("qwerty asdfgh zxcvbn metal heat", "en", ["gibberish"]),
    ("The spoon is metal asdfghjkl qwertyuiop zxcvbnm poiuytrewq", "en", ["gibberish"]),
    ("anaphasemetaphaseprophasetelophase", "en", ["keyword_list"]),
    ("Metal conductor wood insulator hand heat", "en", ["keyword_list"]),
    ("Metal conductor wood insulator hand heat", "xx", []),
    ("Metal METAL metal MeTaL heat heat", "en", ["keyword_list"]),
    # check_response's plain-answer shortcut (expected values from the rules before it, commit 3e46efb):
    # lower-cased words stand for the words as written, a copy bounded by windows of question words,
    # other languages' function words bounded by the repeats
    ("Asdfg Qwert and the", "en", ["gibberish"]),
    ("ASDFG QWERT and the", "en", []),
    ("AAAA BBBB and the", "en", ["gibberish"]),
    ("the metal spoon feels colder than the wooden spoon at room temperature", "en", ["copy_of_question"]),
    ("Explain why the metal spoon feels colder than the wooden spoon at room temperature because metal conducts",
     "en", []),
    ("the heat the heat the heat the metal the metal the metal", "en", ["keyword_list"]),
    ("de la de la de la the metal is hot", "en", ["wrong_language"]),
    ("de la de la the metal is hot and it is", "en", []),
]


@pytest.mark.parametrize(("text", "language", "expected"), EDGE_CASES)
def test_shortcut_edge_cases_keep_the_rules(text, language, expected):
    for _ in range(2):  # cold, then with the word caches warm
        assert check_response(text, question=_Q, language=language) == expected


def test_a_batch_gets_the_flags_of_single_answers():
    """check_batch with one question for all answers, or one per answer (the question changing between
    rows, or empty), gives each answer check_response's flags."""
    texts = [text for kind in CRAFTED if kind != "_about" for text in CRAFTED[kind]] + [e[0] for e in EDGE_CASES]
    questions = [(_Q, QUESTION, "")[i % 3] for i in range(len(texts))]
    for language in ("en", "es", "zh"):
        expected = [check_response(t, question=q, language=language) for t, q in zip(texts, questions, strict=True)]
        assert check_batch(texts, questions, language) == expected
        assert check_batch(texts, _Q, language) == [check_response(t, question=_Q, language=language) for t in texts]
        if language == "en":  # mostly flagged answers: the rules were exercised
            assert sum(map(bool, expected)) > len(texts) // 2
