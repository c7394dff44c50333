"""Students' data (issue 14): answers linked to the LMS user (deleting the user deletes them), erasing a
student, a course or a platform (command and admin action, saying what stays in the LMS), exporting a
student's data, and the retention purge run by beat.  Launches and answers go through the real LTI
flow (lti1p3platform as the LMS)."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.utils import timezone

from devtools.devplatform import ROLE_INSTRUCTOR, ROLE_LEARNER, DevPlatform, LaunchSpec, register_in_kdgrade
from devtools.testing import Browser, ls_token
from kdgrade.lti import privacy, tasks
from kdgrade.lti.models import (
    Context,
    GradeOutbox,
    GradeSlot,
    LaunchSession,
    LtiAssignment,
    LtiUser,
    Membership,
    Platform,
)
from scoring.models import Assignment, Item, Score, Submission

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def school(live_server):
    """Two courses on one LMS; in course-1 two students answered through real launches, a third is on the
    roster only; in course-2 one student answered."""
    with DevPlatform(live_server.url) as lms:
        platform = register_in_kdgrade(lms)
        item = Item.objects.create(external_id="priv-item", title="T", question="Why?", score_min=0, score_max=2)
        assignments = {}
        for ctx in ("course-1", "course-2"):
            context = Context.objects.create(platform=platform, context_id=ctx)
            a = Assignment.objects.create(item=item, title=f"Q {ctx}")
            LtiAssignment.objects.create(assignment=a, context=context)
            assignments[ctx] = a
        for ctx, sub in (("course-1", "student-1"), ("course-1", "student-2"), ("course-2", "student-3")):
            a = assignments[ctx]
            browser = Browser()
            page = browser.launch(lms, LaunchSpec(sub, [ROLE_LEARNER], name=f"Name of {sub}", context_id=ctx,
                                                  resource_link_id=f"link-{ctx}",
                                                  custom={"kdgrade_assignment": str(a.pk)}))
            assert page.status_code == 200, page.text[:300]
            done = browser.post(page.url.split("?")[0], {"ls": ls_token(page.url), "response": f"answer of {sub}"})
            assert done.status_code == 200, done.text[:300]
        lms.set_members("course-1", [{"user_id": "roster-only", "name": "Never Launched", "roles": [ROLE_LEARNER]}])
        Browser().launch(lms, LaunchSpec("teacher-1", [ROLE_INSTRUCTOR], context_id="course-1",
                                         resource_link_id="link-course-1",
                                         custom={"kdgrade_assignment": str(assignments["course-1"].pk)}))
        from kdgrade.lti import roster

        roster.sync_roster(Context.objects.get(context_id="course-1").pk)
        yield platform, assignments


def _user(sub: str) -> LtiUser:
    return LtiUser.objects.get(sub=sub)


def test_answers_are_linked_to_the_lms_user_and_go_with_them(school):
    student = _user("student-1")
    sub = Submission.objects.get(response="answer of student-1")
    assert sub.lti_user_id == student.pk and sub.scores.exists()
    assert GradeOutbox.objects.filter(score__submission=sub).exists()
    student.delete()
    assert not Submission.objects.filter(pk=sub.pk).exists()
    assert not Score.objects.filter(submission_id=sub.pk).exists()
    assert not GradeOutbox.objects.filter(score__submission_id=sub.pk).exists()


def test_erase_one_student_by_command_leaves_the_others_and_says_what_stays_in_the_lms(school):
    platform, _ = school
    out = StringIO()
    call_command("lti_erase", student=f"{platform.pk}:student-1", stdout=out)
    assert "Would erase" in out.getvalue() and LtiUser.objects.filter(sub="student-1").exists()
    out = StringIO()
    call_command("lti_erase", student=f"{platform.pk}:student-1", yes=True, stdout=out)
    text = out.getvalue()
    assert "The LMS keeps" in text and "gradebook" in text
    assert not LtiUser.objects.filter(sub="student-1").exists()
    assert not Submission.objects.filter(response="answer of student-1").exists()
    assert not GradeSlot.objects.filter(user_sub="student-1").exists()
    assert not Membership.objects.filter(user__sub="student-1").exists()
    # Nothing of anyone else went.
    assert Submission.objects.filter(response__in=["answer of student-2", "answer of student-3"]).count() == 2
    assert GradeSlot.objects.filter(user_sub="student-2").exists()
    assert LaunchSession.objects.filter(user__sub="student-2").exists()


def test_erase_a_course_in_the_admin_after_a_confirmation(school, admin_client):
    course1 = Context.objects.get(context_id="course-1")
    form = {"action": "erase_courses", "_selected_action": [course1.pk]}
    page = admin_client.post("/admin/lti/context/", form)
    assert page.status_code == 200 and "What stays in the LMS" in page.content.decode()
    assert Context.objects.filter(pk=course1.pk).exists(), "nothing is erased before the confirmation"
    page = admin_client.post("/admin/lti/context/", {**form, "confirm": "yes"}, follow=True)
    assert page.status_code == 200 and "The LMS keeps the course" in page.content.decode()
    assert not Context.objects.filter(pk=course1.pk).exists()
    assert not Submission.objects.filter(response__in=["answer of student-1", "answer of student-2"]).exists()
    # Users who had nothing else (the roster-only student, course-1's students and teacher) are gone with
    # their names; course-2 and its student stay.
    assert set(LtiUser.objects.values_list("sub", flat=True)) == {"student-3"}
    assert Submission.objects.filter(response="answer of student-3").exists()


def test_erase_a_platform_by_command(school):
    platform, _ = school
    out = StringIO()
    call_command("lti_erase", platform=platform.pk, yes=True, stdout=out)
    assert "remove that registration in the LMS" in out.getvalue()
    assert not Platform.objects.exists() and not LtiUser.objects.exists()
    assert not Submission.objects.filter(source=Submission.Source.LTI).exists()
    assert not Assignment.objects.exists() and Item.objects.filter(external_id="priv-item").exists()


def test_export_one_students_data(school, admin_client):
    platform, _ = school
    out = StringIO()
    call_command("lti_export_student", platform.pk, "student-1", stdout=out)
    data = json.loads(out.getvalue())
    assert data["lms_user_id"] == "student-1" and data["name"] == "Name of student-1"
    assert [a["answer"] for a in data["answers"]] == ["answer of student-1"]
    assert data["courses"] and data["grade_posts"]
    assert "student-2" not in out.getvalue()
    page = admin_client.post("/admin/lti/ltiuser/", {"action": "export",
                                                     "_selected_action": [_user("student-2").pk]})
    assert page.status_code == 200 and "attachment" in page["Content-Disposition"]
    assert json.loads(page.content)["answers"][0]["answer"] == "answer of student-2"


def test_retention_purge_deletes_old_data_but_never_a_grade_still_waiting(school, settings):
    settings.KDGRADE_RETENTION_DAYS = 30
    old = timezone.now() - timedelta(days=31)
    s1 = Submission.objects.get(response="answer of student-1")
    s2 = Submission.objects.get(response="answer of student-2")
    s3 = Submission.objects.get(response="answer of student-3")
    Submission.objects.filter(pk__in=[s1.pk, s2.pk]).update(created_at=old)
    GradeOutbox.objects.filter(score__submission=s1).update(state=GradeOutbox.State.SENT)
    # s2's post is still pending: its answer stays until the grade is delivered.
    assert GradeOutbox.objects.filter(score__submission=s2, state=GradeOutbox.State.PENDING).exists()
    Membership.objects.filter(user__sub="roster-only").update(updated_at=old)
    counts = tasks.purge_expired_data()
    assert counts
    assert not Submission.objects.filter(pk=s1.pk).exists()
    assert Submission.objects.filter(pk__in=[s2.pk, s3.pk]).count() == 2
    assert not LtiUser.objects.filter(sub="roster-only").exists()  # a name kept only by an old roster sync
    assert LtiUser.objects.filter(sub="student-1").exists()  # still in the course (a recent launch)
    # Retention 0 keeps everything; beat runs the purge daily.
    settings.KDGRADE_RETENTION_DAYS = 0
    assert privacy.purge_expired() == {}
    entry = django_settings.CELERY_BEAT_SCHEDULE["privacy-purge"]
    assert entry["task"] == "kdgrade.lti.purge_expired_data" and entry["schedule"] <= 24 * 3600
