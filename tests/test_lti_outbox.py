"""Grade passback through AGS into the platform's own gradebook (lti1p3platform's AGS service over HTTP):
the outbox, real Celery worker processes (one SIGKILLed mid-post) and a real beat, order, failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone

from devtools.devplatform import ROLE_INSTRUCTOR, DevPlatform, Fault, LaunchSpec, register_in_kdgrade
from devtools.testing import Browser, ls_token
from grading import selectors, services
from kdgrade.lti import outbox
from kdgrade.lti.models import Context, GradeOutbox, LaunchSession, LtiAssignment, Platform, ResourceLink
from scoring.models import Assignment, Item, RubricLevel, Score, Submission
from tests.workers import ROOT, celery_worker, child_env, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

# Short timings for the worker and beat processes (the same settings, read from the environment).
FAST = {"KDGRADE_LTI_RETRY_BASE": "0.2", "KDGRADE_LTI_RETRY_MAX": "1", "KDGRADE_LTI_HTTP_TIMEOUT": "1",
        "KDGRADE_LTI_LEASE_SECONDS": "3", "KDGRADE_LTI_SWEEP_SECONDS": "0.5"}


@contextmanager
def celery_beat():
    """A real `celery beat` process (its schedule holds the outbox sweep, every 0.5 s here)."""
    data = Path(os.environ.get("KDGRADE_DATA_DIR", ROOT / "var"))
    data.mkdir(parents=True, exist_ok=True)
    sched = data / f"beat-{os.getpid()}-{time.monotonic_ns()}"
    log = open(data / "beat-lti.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "kdgrade", "beat", "-s", str(sched),
                             "--loglevel", "INFO"], cwd=ROOT, env=child_env(**FAST), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()


@pytest.fixture
def lms(live_server):
    with DevPlatform(live_server.url) as platform:
        register_in_kdgrade(platform)
        yield platform


@pytest.fixture
def course(lms):
    """An assignment in course-1, launched once by its teacher (so the link and its AGS claim exist)."""
    item = Item.objects.create(external_id="ags-item", title="Spoon", question="Why?", score_min=0, score_max=2)
    for s, label in ((0, "Missing"), (1, "Partial"), (2, "Complete")):
        RubricLevel.objects.create(item=item, score=s, label=label, descriptor=f"descriptor of level {s}")
    context = Context.objects.create(platform=Platform.objects.get(issuer=lms.issuer), context_id="course-1")
    assignment = Assignment.objects.create(item=item, title="Spoon question", release="after_review")
    LtiAssignment.objects.create(assignment=assignment, context=context)
    browser = Browser()
    page = browser.launch(lms, LaunchSpec("teacher-1", [ROLE_INSTRUCTOR],
                                          custom={"kdgrade_assignment": str(assignment.pk)}))
    assert page.status_code == 200
    return assignment, browser, page.url


def answer(assignment: Assignment, learner: str, model_score: int, confidence: float = 0.9) -> Score:
    sub = Submission.objects.create(item=assignment.item, assignment=assignment, learner_ref=learner,
                                    response="the metal conducts heat", source=Submission.Source.LTI)
    return Score.objects.create(submission=sub, model_score=model_score, confidence=confidence)


def teacher_session() -> LaunchSession:
    return LaunchSession.objects.filter(is_instructor=True).latest("pk")


def release(score: Score, value: int) -> None:
    assignment = score.submission.assignment
    services.set_score(teacher_session(), assignment, score.pk, value, release=True)


def test_teacher_release_reaches_the_platform_gradebook_through_a_real_worker(lms, course, live_server):
    assignment, browser, review_url = course
    s1 = answer(assignment, "student-1", 1)
    token = ls_token(review_url)
    with celery_worker(extra_env=FAST):
        base = review_url.split("/review/")[0]
        resp = browser.post(f"{base}/score/", {"ls": token, "score_id": s1.pk, "value": 2, "release": "on"})
        assert resp.status_code == 200 and "Score saved" in resp.text and "/review/" in resp.url
        link = ResourceLink.objects.get(resource_link_id="link-1")
        result = wait_until(lambda: link.__class__.objects.get(pk=link.pk).lineitem_url
                            and lms.gradebook.result(ResourceLink.objects.get(pk=link.pk).lineitem_url, "student-1"),
                            timeout=60, message="the score in the platform's gradebook")
    link.refresh_from_db()
    # kdgrade created the gradebook column for the link (no line item in the launch), then posted.
    column = lms.gradebook.lineitems[link.lineitem_url]
    assert column["label"] == "Spoon question" and column["scoreMaximum"] == 2
    assert column["resourceLinkId"] == "link-1"
    assert result["scoreGiven"] == 2 and result["scoreMaximum"] == 2
    assert result["gradingProgress"] == "FullyGraded" and result["activityProgress"] == "Completed"
    assert result["comment"] == "Complete: descriptor of level 2"
    assert result["timestamp"].endswith("Z")
    s1.refresh_from_db()
    assert s1.passback_state == Score.Passback.SENT and s1.final_score == 2
    row = GradeOutbox.objects.get(score=s1)
    assert row.state == GradeOutbox.State.SENT and row.last_status == 200


def test_outbox_row_is_written_in_the_score_transaction_or_not_at_all(lms, course):
    assignment, _, _ = course
    s1 = answer(assignment, "student-1", 1)
    link = ResourceLink.objects.get(resource_link_id="link-1")
    with pytest.raises(RuntimeError), transaction.atomic():
        s1.override_score = 2
        s1.save()
        outbox.enqueue(s1, link, "student-1", fully_graded=True)
        raise RuntimeError("the request failed after the score was saved")
    s1.refresh_from_db()
    assert s1.override_score is None and not GradeOutbox.objects.exists()


def test_worker_killed_mid_post_with_a_failing_platform_loses_and_duplicates_nothing_newest_wins(lms, course):
    assignment, _, _ = course
    gate = threading.Event()
    killed_post: dict = {}

    def faults(payload: dict, n: int) -> Fault | None:
        if n < 4:
            return Fault(status=500)
        if n < 6:
            return Fault(status=200, delay=1.6)  # answered after the client's 1 s timeout
        if n == 6:
            killed_post.update(payload)
            return Fault(status=500, block=gate, apply=True)  # it lands, then the worker dies
        if n == 7:
            return Fault(status=429, headers={"Retry-After": "1"})
        return None

    lms.gradebook.score_fault = faults
    learners = [f"student-{i}" for i in range(1, 5)]
    first = {who: answer(assignment, who, 0) for who in learners}
    t0 = time.monotonic()
    with celery_worker(extra_env=FAST) as worker, celery_beat():
        for who in learners:
            release(first[who], 1)
        # student-1 and student-2 answer again (and the teacher releases the new scores) while the
        # platform is failing: the newer score must win, the older never overwrite it.
        newer = {who: answer(assignment, who, 2) for who in learners[:2]}
        for who in learners[:2]:
            release(newer[who], 2)
        assert lms.gradebook.in_score_post.wait(60), "no post reached the hanging endpoint"
        wait_until(lambda: len(lms.gradebook.requests) >= 7, timeout=30, message="the 7th score post")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        gate.set()
        with celery_worker(extra_env=FAST):
            link = ResourceLink.objects.get(resource_link_id="link-1")

            def all_in() -> bool:
                lid = ResourceLink.objects.get(pk=link.pk).lineitem_url
                got = {w: (lms.gradebook.result(lid, w) or {}).get("scoreGiven") for w in learners} if lid else {}
                return got == {"student-1": 2, "student-2": 2, "student-3": 1, "student-4": 1} and not \
                    GradeOutbox.objects.filter(state=GradeOutbox.State.PENDING).exists()

            wait_until(all_in, timeout=90, message="every learner's newest grade in the gradebook")
    elapsed = time.monotonic() - t0
    applied = lms.gradebook.applied
    for who in learners:
        mine = [a for a in applied if a["userId"] == who]
        stamps = [a["timestamp"] for a in mine]
        assert len(stamps) == len(set(stamps)), f"{who}: a grade was applied twice: {stamps}"
        assert stamps == sorted(stamps), f"{who}: an older grade was applied after a newer one"
        assert mine[-1]["scoreGiven"] == (2 if who in ("student-1", "student-2") else 1)
    assert not GradeOutbox.objects.filter(state=GradeOutbox.State.FAILED).exists()
    newest = Score.objects.filter(submission__learner_ref__in=learners).order_by("submission__learner_ref", "-pk")
    latest = {}
    for s in newest:
        latest.setdefault(s.submission.learner_ref, s)
    assert {w: s.passback_state for w, s in latest.items()} == dict.fromkeys(learners, Score.Passback.SENT)
    assert len(lms.gradebook.requests) >= 8  # the failures really happened
    # The post the killed worker was making landed once and was made again by the next worker (same
    # AGS timestamp): the gradebook took it once.
    again = [r for r in lms.gradebook.requests if r["userId"] == killed_post["userId"]
             and r["timestamp"] == killed_post["timestamp"]]
    assert len(again) >= 2
    assert sum(1 for a in applied if a["timestamp"] == killed_post["timestamp"]) == 1
    assert elapsed < 120


def _in_process(lms: DevPlatform, settings, course) -> tuple[Assignment, ResourceLink]:
    settings.KDGRADE_LTI_RETRY_BASE = 30.0
    settings.KDGRADE_LTI_HTTP_TIMEOUT = 0.5
    assignment, _, _ = course
    return assignment, ResourceLink.objects.get(resource_link_id="link-1")


def _deliver(score: Score) -> GradeOutbox:
    row = GradeOutbox.objects.filter(score=score).latest("pk")
    outbox.deliver_slot(row.slot_id)
    row.refresh_from_db()
    return row


def test_a_score_older_than_the_platforms_409_counts_as_done(lms, course, settings):
    assignment, link = _in_process(lms, settings, course)
    s = answer(assignment, "student-1", 1)
    release(s, 1)
    row = GradeOutbox.objects.get(score=s)
    lid = outbox.ags.ensure_lineitem(link, outbox._lineitem_spec(row))
    # Meanwhile a teacher typed a grade in the LMS (newer than kdgrade's).
    later = (timezone.now() + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    lms.gradebook.results[(lid, "student-1")] = {"userId": "student-1", "scoreGiven": 0, "timestamp": later}
    row = _deliver(s)
    assert row.state == GradeOutbox.State.SENT and row.last_status == 409
    assert "newer" in row.last_error
    assert lms.gradebook.result(lid, "student-1")["scoreGiven"] == 0


def test_canvas_400_for_a_score_older_than_it_holds_counts_as_done(lms, course, settings):
    assignment, _link = _in_process(lms, settings, course)
    canvas = ('{"errors":[{"type":"bad_request","message":"Provided timestamp of 2026-01-01T00:00:00.000Z before '
              'last updated timestamp of 2026-01-01T00:05:00.000Z"}]}')
    lms.gradebook.score_fault = lambda payload, n: Fault(status=400, body=canvas)
    s = answer(assignment, "student-1", 1)
    release(s, 1)
    row = _deliver(s)
    assert row.state == GradeOutbox.State.SENT and row.last_status == 400 and "newer" in row.last_error
    # Any other 400 is a failure.
    lms.gradebook.score_fault = lambda payload, n: Fault(status=400, body='{"errors":[{"message":"bad userId"}]}')
    release(s, 2)
    row = _deliver(s)
    assert row.state == GradeOutbox.State.FAILED and row.last_status == 400
    # What the platform said is never echoed (the reason reaches teachers' pages and the admin).
    assert "bad userId" not in row.last_error and "HTTP 400" in row.last_error


def test_permanent_4xx_fails_visibly_with_its_reason_and_can_be_retried_by_hand(lms, course, settings):
    assignment, link = _in_process(lms, settings, course)
    browser_t, token = Browser(), None
    s = answer(assignment, "student-1", 1)
    release(s, 2)
    row = GradeOutbox.objects.get(score=s)
    lid = outbox.ags.ensure_lineitem(link, outbox._lineitem_spec(row))
    column = lms.gradebook.lineitems.pop(lid)  # the column was deleted in the LMS
    row = _deliver(s)
    assert row.state == GradeOutbox.State.FAILED and row.last_status == 404
    assert "HTTP 404" in row.last_error
    s.refresh_from_db()
    assert s.passback_state == Score.Passback.FAILED
    # The teacher sees it with its reason and a retry button.
    page = browser_t.launch(lms, LaunchSpec("teacher-1", [ROLE_INSTRUCTOR],
                                            custom={"kdgrade_assignment": str(assignment.pk)}))
    token = ls_token(page.url)
    assert "The LMS no longer has this grade column" in page.text and "Retry sending" in page.text
    lms.gradebook.lineitems[lid] = column  # the admin restored the column
    resp = browser_t.post(page.url.split("?")[0].replace("/review/", "/retry/"), {"ls": token, "outbox_id": row.pk})
    assert resp.status_code == 200 and "will be sent again" in resp.text
    row.refresh_from_db()
    assert row.state == GradeOutbox.State.PENDING
    row = _deliver(s)
    assert row.state == GradeOutbox.State.SENT
    assert lms.gradebook.result(lid, "student-1")["scoreGiven"] == 2


def test_a_failure_made_moot_by_a_newer_grade_sent_leaves_the_failure_list(lms, course, settings):
    assignment, link = _in_process(lms, settings, course)
    old = answer(assignment, "student-1", 1)
    release(old, 1)
    row = GradeOutbox.objects.get(score=old)
    lid = outbox.ags.ensure_lineitem(link, outbox._lineitem_spec(row))
    column = lms.gradebook.lineitems.pop(lid)
    assert _deliver(old).state == GradeOutbox.State.FAILED
    assert [f.pk for f in selectors.failures(teacher_session(), assignment)] == [row.pk]
    lms.gradebook.lineitems[lid] = column
    newer = answer(assignment, "student-1", 2)
    release(newer, 2)
    assert _deliver(newer).state == GradeOutbox.State.SENT
    row.refresh_from_db()
    assert row.state == GradeOutbox.State.SUPERSEDED and "HTTP 404" in row.last_error
    assert selectors.failures(teacher_session(), assignment) == []
    assert lms.gradebook.result(lid, "student-1")["scoreGiven"] == 2


def test_a_line_item_answer_that_is_not_json_is_retried_not_a_crash(lms, course, settings, monkeypatch):
    assignment, _link = _in_process(lms, settings, course)
    s = answer(assignment, "student-1", 1)
    release(s, 1)

    class NotJson:
        status_code = 200
        headers: dict = {}
        text = "<html>maintenance</html>"

        def json(self) -> object:
            raise ValueError("not json")

    monkeypatch.setattr(outbox.ags, "_authorized", lambda *a, **k: NotJson())
    row = _deliver(s)
    assert row.state == GradeOutbox.State.PENDING and "not JSON" in row.last_error and row.attempts == 1


@pytest.mark.parametrize(("fault", "retry_in", "reason"), [
    (Fault(status=503), (24, 30), "HTTP 503"),
    (Fault(status=429, headers={"Retry-After": "7"}), (6.5, 7.5), "HTTP 429"),
    (Fault(status=200, delay=1.2), (24, 30), "no answer within"),
])
def test_transient_failures_are_retried_with_backoff(lms, course, settings, fault, retry_in, reason):
    assignment, _link = _in_process(lms, settings, course)
    lms.gradebook.score_fault = lambda payload, n: fault
    s = answer(assignment, "student-1", 1)
    release(s, 1)
    row = _deliver(s)
    assert row.state == GradeOutbox.State.PENDING and row.attempts == 1
    assert reason in row.last_error
    wait = (row.next_attempt_at - timezone.now()).total_seconds()
    assert retry_in[0] <= wait <= retry_in[1], wait
    # Not due yet: a second delivery does not post.
    before = len(lms.gradebook.requests)
    assert outbox.deliver_slot(row.slot_id).outcome == "waiting"
    assert len(lms.gradebook.requests) == before


def test_network_error_is_retried(lms, course, settings):
    assignment, link = _in_process(lms, settings, course)
    s = answer(assignment, "student-1", 1)
    release(s, 1)
    ResourceLink.objects.filter(pk=link.pk).update(lineitem_url="http://127.0.0.1:9/ags/course-1/lineitems/1")
    row = _deliver(s)
    assert row.state == GradeOutbox.State.PENDING and "could not connect" in row.last_error


def test_access_token_is_cached_and_refreshed_on_401(lms, course, settings):
    assignment, _link = _in_process(lms, settings, course)
    a, b = answer(assignment, "student-1", 1), answer(assignment, "student-2", 1)
    release(a, 1)
    assert _deliver(a).state == GradeOutbox.State.SENT
    tokens = lms.gradebook.token_requests
    release(b, 2)
    assert _deliver(b).state == GradeOutbox.State.SENT
    assert lms.gradebook.token_requests == tokens, "the cached token should have been reused"
    lms.rotate_keys()  # the platform no longer accepts the tokens it issued
    release(a, 2)
    assert _deliver(a).state == GradeOutbox.State.SENT
    assert lms.gradebook.token_requests == tokens + 1


def test_an_existing_line_item_of_the_link_is_found_not_duplicated(lms, course, settings):
    assignment, link = _in_process(lms, settings, course)
    n = lms.add_lineitem("course-1", "Made by the LMS", 2, resource_link_id="link-1")
    s = answer(assignment, "student-1", 1)
    release(s, 1)
    assert _deliver(s).state == GradeOutbox.State.SENT
    link.refresh_from_db()
    assert link.lineitem_url == f"{lms.base}/ags/course-1/lineitems/{n}"
    assert len(lms.gradebook.lineitems) == 1
    assert lms.gradebook.result(link.lineitem_url, "student-1")["scoreGiven"] == 1
