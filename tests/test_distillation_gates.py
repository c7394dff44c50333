"""Quality gates: each rule passes, fails or is not applicable from a report entry."""

import math

import pytest

from distillation import gates as g

pytestmark = pytest.mark.ml


def entry(student=0.80, teacher=0.81, hh=0.90, s_smd=0.05, baselines=(0.75, 0.78), groups=None):
    return {
        "human_human_qwk": hh,
        "models": {
            "student": {"qwk": student, "smd": s_smd},
            "teacher": {"qwk": teacher},
            "student_no_kd": {"qwk": baselines[0]},
            "tfidf": {"qwk": baselines[1]},
        },
        "groups": groups or {},
    }


def by_name(gs):
    return {x.name: x for x in gs}


def test_a_good_student_passes_every_applicable_gate():
    gs = by_name(g.evaluate(entry()))
    assert gs["qwk"].passed and gs["human_gap"].passed and gs["smd"].passed
    assert gs["teacher_gap"].passed and gs["baselines"].passed
    assert gs["group_smd"].passed is None  # no group column
    assert g.passed(gs.values())


@pytest.mark.parametrize("kw, gate", [
    ({"student": 0.65, "teacher": 0.66, "baselines": (0.5, 0.5), "hh": 0.7}, "qwk"),
    ({"student": 0.79, "teacher": 0.80, "hh": 0.95}, "human_gap"),
    ({"s_smd": -0.2}, "smd"),
    ({"student": 0.77, "teacher": 0.80, "baselines": (0.5, 0.5), "hh": 0.85}, "teacher_gap"),
    ({"baselines": (0.70, 0.81)}, "baselines"),
])
def test_each_gate_fails_alone(kw, gate):
    gs = g.evaluate(entry(**kw))
    failed = [x.name for x in gs if x.passed is False]
    assert failed == [gate]
    assert not g.passed(gs)
    assert g.failed_messages(gs) and all(isinstance(m, str) and m for m in g.failed_messages(gs))


def test_no_second_rating_makes_the_human_gap_not_applicable():
    gs = by_name(g.evaluate(entry(hh=None)))
    assert gs["human_gap"].passed is None and "second human rating" in gs["human_gap"].message


def test_group_smd_uses_the_worst_group_of_sufficient_size():
    groups = {"school": {"A": {"n": 50, "smd": 0.02}, "B": {"n": 40, "smd": -0.12}, "C": {"n": 5, "smd": 0.9}}}
    gs = by_name(g.evaluate(entry(groups=groups)))
    worst = gs["group_smd"]
    assert worst.passed is False and worst.value == -0.12 and "school = B" in worst.message


def test_active_version_margin():
    gs = by_name(g.evaluate(entry(student=0.80), active_qwk=0.83))
    assert gs["active_gap"].passed is False
    assert by_name(g.evaluate(entry(student=0.80), active_qwk=0.81))["active_gap"].passed


def test_thresholds_round_trip_and_are_adjustable():
    t = g.GateThresholds.from_dict({"min_qwk": 0.6, "unknown": 1})
    assert t.min_qwk == 0.6 and g.GateThresholds.from_dict(t.to_dict()) == t
    gs = by_name(g.evaluate(entry(student=0.65, teacher=0.66, baselines=(0.5, 0.5), hh=None), t))
    assert gs["qwk"].passed


def test_smd_and_group_breakdown():
    assert g.smd([0, 1, 2, 3], [0, 1, 2, 3]) == 0.0
    assert g.smd([0, 1, 2, 3], [1, 2, 3, 4]) > 0.7
    assert math.isinf(g.smd([1, 1], [2, 2]))
    gb = g.group_breakdown([0, 1, 2, 2], [0, 1, 1, 2], {"lang": ["en", "en", "es", "es"]}, [0, 1, 2])
    assert gb["lang"]["en"]["exact"] == 1.0 and gb["lang"]["es"]["exact"] == 0.5 and gb["lang"]["es"]["n"] == 2


def test_a_value_just_over_its_limit_is_not_printed_as_the_limit():
    """An SMD of 0.1503 fails |SMD| <= .15: the message must not read "0.150 ... at most 0.15"."""
    smd = by_name(g.evaluate(entry(s_smd=0.1503)))["smd"]
    assert smd.passed is False and "by 0.1503 standard deviations" in smd.message
    assert "by 0.120 standard deviations" in by_name(g.evaluate(entry(s_smd=0.12)))["smd"].message
