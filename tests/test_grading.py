"""The grading app's services, selectors and views against the real database: attempts, the attempt
that counts, accept/override/comment with their audit rows, bulk accept, groups, the overview, the CSV
export, passback in words, and post/redirect/get (a reload repeats nothing)."""

from __future__ import annotations

import csv
import io

import pytest

from grading import selectors, services
from grading.errors import AccessDenied, Invalid
from grading.models import AttemptPolicy, CountingAttempt, ReviewEvent, TeacherComment
from grading.passback import describe
from kdgrade.lti.models import GradeOutbox, GradeSlot
from scoring.models import Score, Submission
from tests.grading_support import make_course

pytestmark = pytest.mark.django_db


@pytest.fixture
def course():
    return make_course()


def _state() -> tuple:
    return (Submission.objects.count(), ReviewEvent.objects.count(), TeacherComment.objects.count(),
            CountingAttempt.objects.count(), GradeOutbox.objects.count(),
            sorted(Score.objects.values_list("pk", "override_score", "passback_state")))


def test_attempt_limits_and_the_answer_limit_refuse_without_saving(course):
    ada = course.learner("ada", "Ada")
    AttemptPolicy.objects.create(assignment=course.assignment, max_attempts=2)
    with pytest.raises(Invalid) as too_long:
        services.submit_answer(ada, course.assignment, "x" * (selectors.answer_limit() + 1))
    assert too_long.value.code == "too_long" and Submission.objects.count() == 0
    with pytest.raises(Invalid):
        services.submit_answer(ada, course.assignment, "   ")
    services.submit_answer(ada, course.assignment, "Metal conducts heat.")
    services.submit_answer(ada, course.assignment, "Metal conducts heat away from the hand.")
    with pytest.raises(Invalid) as used:
        services.submit_answer(ada, course.assignment, "A third try.")
    assert used.value.code == "no_attempts_left" and Submission.objects.filter(learner_ref="ada").count() == 2
    AttemptPolicy.objects.filter(assignment=course.assignment).update(resubmission_allowed=False)
    bob = course.learner("bob", "Bob")
    services.submit_answer(bob, course.assignment, "Wood insulates.")
    with pytest.raises(Invalid) as closed:
        services.submit_answer(bob, course.assignment, "Again")
    assert closed.value.code == "resubmission_closed"
    assert selectors.student_view(bob, course.assignment).attempts_left == 0


def test_the_answer_limit_is_the_models(settings):
    from scoring.flags import MAX_CHARS

    settings.KDGRADE_MAX_ANSWER_CHARS = 5000
    assert selectors.answer_limit() == MAX_CHARS == 2500
    settings.KDGRADE_MAX_ANSWER_CHARS = 1000
    assert selectors.answer_limit() == 1000


def test_latest_attempt_counts_unless_the_policy_or_the_teacher_says_otherwise(course):
    first = course.answer("ada", "Metal conducts heat away.", 2)
    second = course.answer("ada", "It is colder.", 0)
    (row,) = selectors.answer_rows(course.teacher, course.assignment)
    assert row.counting.submission.pk == second.submission_id and [a.number for a in row.attempts] == [1, 2]
    ada = course.learner("ada")
    assert selectors.student_view(ada, course.assignment).counts_words == "Your latest attempt counts."
    AttemptPolicy.objects.create(assignment=course.assignment, counts="highest")
    (row,) = selectors.answer_rows(course.teacher, course.assignment)
    assert row.counting.submission.pk == first.submission_id
    AttemptPolicy.objects.filter(assignment=course.assignment).update(counts="latest")
    services.choose_attempt(course.teacher, course.assignment, first.submission_id)
    (row,) = selectors.answer_rows(course.teacher, course.assignment)
    assert row.chosen and row.counting.submission.pk == first.submission_id
    assert selectors.student_view(ada, course.assignment).counts_words == "Your teacher chose attempt 1 to count."
    assert ReviewEvent.objects.get(action="chosen").submission_id == first.submission_id
    with pytest.raises(AccessDenied):
        services.choose_attempt(ada, course.assignment, first.submission_id)


def test_accept_override_and_comment_leave_audit_rows_and_reach_the_student(course):
    s = course.answer("ada", "Metal conducts heat away from the hand.", 1, name="Ada")
    services.accept(course.teacher, course.assignment, s.pk)
    s.refresh_from_db()
    assert s.override_score == 1 and s.model_score == 1
    services.set_score(course.teacher, course.assignment, s.pk, 2, comment="Say where the heat goes.")
    s.refresh_from_db()
    assert (s.model_score, s.override_score, s.final_score) == (1, 2, 2)
    events = list(ReviewEvent.objects.order_by("pk").values_list("action", "old_score", "new_score", "actor_name"))
    assert events == [("accepted", None, 1, "Tess Teacher"), ("commented", None, None, "Tess Teacher"),
                      ("changed", 1, 2, "Tess Teacher")]
    view = selectors.student_view(course.learner("ada"), course.assignment)
    assert view.comment.text == "Say where the heat goes."
    # No gradebook column here: the teacher's score is the final word, shown at once.
    assert view.from_teacher and view.show_score and view.status == "Set by your teacher."
    assert services._feedback(s, course.assignment).endswith("Teacher: Say where the heat goes.")


def test_bad_input_changes_nothing(course):
    s = course.answer("ada", "gibberish qwzx", None, flags=["gibberish"])
    before = _state()
    for call, code in [
        (lambda: services.accept(course.teacher, course.assignment, s.pk), "nothing_to_accept"),
        (lambda: services.set_score(course.teacher, course.assignment, s.pk, 7), "score_range"),
        (lambda: services.set_score(course.teacher, course.assignment, s.pk, 1, comment="x" * 2001),
         "comment_too_long"),
        (lambda: services.add_comment(course.teacher, course.assignment, s.submission_id, "  "), "comment_empty"),
        (lambda: services.accept_many(course.teacher, course.assignment, [], confident_only=True), "none_selected"),
        (lambda: services.release(course.teacher, course.assignment, s.pk), "no_gradebook"),
        (lambda: services.save_settings(course.teacher, course.assignment, release="whenever", show_feedback=True,
                                        resubmission_allowed=True, max_attempts="", counts="latest"),
         "release_mode"),
        (lambda: services.save_settings(course.teacher, course.assignment, release="immediate", show_feedback=True,
                                        resubmission_allowed=True, max_attempts="-1", counts="latest"),
         "max_attempts"),
    ]:
        with pytest.raises(Invalid) as exc:
            call()
        assert exc.value.code == code
    assert _state() == before
    with pytest.raises(AccessDenied):
        services.accept(course.learner("ada"), course.assignment, s.pk)
    foreign = make_course().answer("x", "Metal.", 1)
    before = _state()
    with pytest.raises(AccessDenied):
        services.accept(course.teacher, course.assignment, foreign.pk)
    assert _state() == before


def test_bulk_accept_takes_only_confident_unflagged_unreviewed_answers(course):
    ok1 = course.answer("a", "Metal conducts heat.", 2)
    ok2 = course.answer("b", "Wood insulates.", 1)
    flagged = course.answer("c", "heat heat heat heat heat heat", 1, flags=["keyword_list"])
    unsure = course.answer("d", "Maybe metal.", 1, flags=["low_confidence"])
    declined = course.answer("e", "qwzx", None, flags=["gibberish"])
    ids = [s.pk for s in (ok1, ok2, flagged, unsure, declined)]
    assert services.accept_many(course.teacher, course.assignment, ids, confident_only=True) == 2
    assert set(Score.objects.filter(override_score__isnull=False).values_list("pk", flat=True)) == {ok1.pk, ok2.pk}
    assert services.accept_many(course.teacher, course.assignment, ids, confident_only=True) == 0
    # A group confirmed by the teacher takes flagged and unsure answers too, never a declined one.
    assert services.accept_many(course.teacher, course.assignment, ids, confident_only=False) == 2
    assert Score.objects.get(pk=declined.pk).override_score is None


def test_groups_gather_near_duplicates_of_the_same_score(course):
    course.answer("a", "Both spoons are at room temperature but metal conducts heat away from the skin.", 2)
    course.answer("b", "Both spoons are at room temperature but metal conducts the heat away from skin.", 2)
    course.answer("c", "Wood is an insulator.", 2)
    course.answer("d", "Both spoons are at room temperature but metal conducts heat away from the skin.", 1)
    groups = selectors.groups(selectors.answer_rows(course.teacher, course.assignment))
    similar = [g for g in groups if g.similar]
    assert len(similar) == 1 and {r.learner_ref for r in similar[0].rows} == {"a", "b"}
    assert similar[0].model_score == 2
    assert sorted((g.model_score, len(g.rows)) for g in groups) == [(1, 1), (2, 1), (2, 2)]


def test_queue_order_and_next(course):
    course.answer("sure", "Metal conducts heat.", 2, confidence=0.95)
    course.answer("flagged", "heat heat heat heat", 1, flags=["keyword_list"])
    course.answer("declined", "qwzx", None, flags=["gibberish"])
    course.answer("unsure", "Metal maybe.", 1, confidence=0.55)
    rows = selectors.answer_rows(course.teacher, course.assignment)
    assert [r.learner_ref for r in rows][:2] in (["flagged", "declined"], ["declined", "flagged"])
    assert [r.learner_ref for r in rows][2:] == ["unsure", "sure"]
    services.accept(course.teacher, course.assignment, rows[2].score.pk)
    rows = selectors.answer_rows(course.teacher, course.assignment)
    assert rows[-1].learner_ref == "unsure" and rows[-1].reviewed
    nxt = selectors.next_to_review(rows, rows[0].submission.pk)
    assert nxt is not None and nxt.learner_ref != rows[0].learner_ref and not nxt.reviewed


def test_overview_counts_and_agreement(course):
    a = course.answer("a", "Metal conducts heat.", 2)
    b = course.answer("b", "Wood.", 1)
    course.answer("c", "qwzx", None, flags=["gibberish"])
    services.accept(course.teacher, course.assignment, a.pk)
    services.set_score(course.teacher, course.assignment, b.pk, 0)
    ov = selectors.overview(course.teacher, course.assignment)
    assert ov.counts["answered"] == 3 and ov.counts["reviewed"] == 2 and ov.counts["needs_review"] == 1
    assert ov.distribution == [(0, 1), (1, 0), (2, 1)] and ov.unscored == 1
    assert ov.agreement == [(0, 0, 0), (1, 1, 0), (2, 1, 1)]
    course.learner("zoe", "Zoe Notyet")
    assert "Zoe Notyet" in selectors.overview(course.teacher, course.assignment).not_answered


def test_export_marks_teacher_labels_and_defuses_formulas(course):
    a = course.answer("a", "=HYPERLINK(\"http://evil\")", 2, name="Ada")
    course.answer("b", "Wood insulates.", 1, name="Bob")
    services.set_score(course.teacher, course.assignment, a.pk, 1)
    rows = selectors.export_rows(course.teacher, course.assignment)
    text = io.StringIO()
    csv.writer(text).writerows([selectors.EXPORT_COLUMNS, *rows])
    parsed = list(csv.DictReader(io.StringIO(text.getvalue())))
    by = {r["learner_ref"]: r for r in parsed}
    assert by["a"]["label_source"] == "teacher" and by["a"]["teacher_score"] == "1" and by["a"]["model_score"] == "2"
    assert by["b"]["label_source"] == "model" and by["b"]["teacher_score"] == ""
    assert by["a"]["answer"].startswith("'=")


def test_passback_in_a_teachers_words(course):
    s = course.answer("a", "Metal.", 2)
    slot = GradeSlot.objects.create(resource_link=course.link, user_sub="a")
    row = GradeOutbox(slot=slot, score=s, payload={}, timestamp=s.created_at, next_attempt_at=s.created_at,
                      state=GradeOutbox.State.FAILED, last_status=404, last_error="HTTP 404 {\"error\": ...}")
    row.save()
    s.passback_state = Score.Passback.FAILED
    words = describe(s, row, True)
    assert "no longer has this grade column" in words.detail and words.retry_id == row.pk and "404" not in words.detail
    row.state, row.attempts, row.last_status = GradeOutbox.State.PENDING, 3, 503
    s.passback_state = Score.Passback.PENDING
    assert describe(s, row, True).detail == "The LMS is not reachable; kdgrade will keep trying."
    assert describe(s, None, False).label == "Kept in kdgrade"


def test_every_teacher_action_redirects_and_a_reload_repeats_nothing(client, course):
    s = course.answer("ada", "Metal conducts heat.", 2, name="Ada")
    t = course.teacher.token
    base = f"/lti/a/{course.assignment.pk}"
    resp = client.post(f"{base}/accept/", {"ls": t, "score_id": s.pk, "back": "queue", "s": s.submission_id})
    assert resp.status_code == 302
    assert resp["Location"].startswith(f"{base}/review/?ls={t}") and "done=accepted" in resp["Location"]
    before = _state()
    page = client.get(resp["Location"])
    assert page.status_code == 200 and "Score accepted" in page.content.decode()
    client.get(resp["Location"])
    assert _state() == before
    bad = client.post(f"{base}/score/", {"ls": t, "score_id": s.pk, "value": "9", "back": "table", "q": "heat"})
    assert bad.status_code == 302 and "error=score_range" in bad["Location"] and "q=heat" in bad["Location"]
    assert "Choose one of the rubric levels" in client.get(bad["Location"]).content.decode()
    assert _state() == before
    assert client.post(f"{base}/accept/", {"ls": "forged", "score_id": s.pk}).status_code == 401
    assert client.get(f"{base}/accept/?ls={t}").status_code == 405
    evil = client.post(f"{base}/comment/", {"ls": t, "submission_id": s.submission_id, "comment": "Good.",
                                            "back": "https://evil.example/"})
    assert evil["Location"].startswith(f"{base}/review/")


def test_pages_name_each_control_after_its_student(client, course):
    for i, name in enumerate(["Ada Lovelace", "Bob Brown"]):
        course.answer(f"s{i}", "Metal conducts heat.", 2, name=name)
    html = client.get(f"/lti/a/{course.assignment.pk}/answers/?ls={course.teacher.token}").content.decode()
    assert 'aria-label="Select Ada Lovelace\'s answer"' in html and "Select Bob Brown's answer" in html
    queue = client.get(f"/lti/a/{course.assignment.pk}/review/?ls={course.teacher.token}").content.decode()
    assert "Rubric level for " in queue and "Accept 2 for " in queue
    export = client.get(f"/lti/a/{course.assignment.pk}/export.csv?ls={course.teacher.token}")
    assert export.status_code == 200 and export["Content-Type"].startswith("text/csv")
    assert client.get(f"/lti/a/{course.assignment.pk}/export.csv?ls={course.learner('s0').token}").status_code == 403
