"""The grading pages in headless Chromium, inside the development LMS's cross-site iframe, against the
real LTI platform library and a real Celery worker: a student answers and sees the automatic-scoring
notice; the teacher reviews with the keyboard alone, bulk-accepts, overrides with a comment, releases,
and the grade reaches the platform's gradebook; a reload after each action changes nothing.  Every page
passes axe-core with zero violations and the unique-accessible-name check, and is photographed at 320
and 1280 px (var/screenshots/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.devplatform import ROLE_INSTRUCTOR, ROLE_LEARNER, LaunchSpec
from grading.models import AttemptPolicy, ReviewEvent, TeacherComment
from kdgrade.lti.models import Context, GradeOutbox, LtiAssignment, LtiUser, Membership, Platform
from scoring.models import Assignment, Score, Submission
from tests.browser.support import SCREENSHOTS, assert_no_axe_violations, check_page, ready, tool_frame
from tests.workers import ROOT, celery_worker, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
FAST = {"KDGRADE_LTI_RETRY_BASE": "0.2", "KDGRADE_LTI_RETRY_MAX": "1", "KDGRADE_LTI_HTTP_TIMEOUT": "2",
        "KDGRADE_LTI_LEASE_SECONDS": "5"}
GOOD = ("Metal is a better conductor of heat than wood, so it takes heat away from my hand faster. They are "
        "the same temperature but the metal pulls heat from my skin quicker so it feels cold.")
OTHERS = [
    ("student-2", "Bob Brown", "Metal conducts heat."),
    ("student-3", "Cleo Clark", "Wood is an insulator."),
    ("student-4", "Dan Dale", "qwpoeiru zmxncbvasd lkjhgfd poiuytrewq mnbvcxz"),
    ("student-5", "Eve Evans", "Both spoons are at room temperature but metal conducts heat away from the skin."),
    ("student-6", "Finn Ford", "Both spoons are at room temperature but metal conducts the heat away from skin."),
]
_BUILD = """
import sys, warnings
warnings.filterwarnings("ignore")
from distillation.pipeline import distill_csv
distill_csv(sys.argv[2], sys.argv[1], seed=0)
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser-model")
    done = subprocess.run([sys.executable, "-c", _BUILD, str(out), str(ROOT / "scoring/demo/heat_spoon.csv")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out / "heat-spoon"


@pytest.fixture
def course(lms, model_dir, settings, tmp_path):
    from scoring.demo_data import load_demo
    from scoring.services import score_submission
    from scoring.versions import activate_version, register_version

    settings.MODELS_DIR = tmp_path / "models"
    item = load_demo()
    item.confidence_threshold = 0.0  # the tiny test model is unsure of everything; let it score
    item.save()
    activate_version(register_version(item, model_dir))
    platform = Platform.objects.get(issuer=lms.issuer)
    context, _ = Context.objects.get_or_create(platform=platform, context_id="course-1")
    assignment = Assignment.objects.create(item=item, title="Spoons in the kitchen", release="after_review")
    LtiAssignment.objects.create(assignment=assignment, context=context)
    AttemptPolicy.objects.create(assignment=assignment, resubmission_allowed=True, max_attempts=2)
    lineitem = lms.add_lineitem("course-1", "Spoons in the kitchen", 2, resource_link_id="link-1")
    for sub, name, text in OTHERS:
        user = LtiUser.objects.create(platform=platform, sub=sub, name=name)
        Membership.objects.create(context=context, user=user, is_learner=True)
        score_submission(Submission.objects.create(item=item, assignment=assignment, learner_ref=sub, response=text,
                                                   source=Submission.Source.LTI))
    return assignment, lineitem, context


def spec(user: str, roles: list[str], assignment: Assignment, lineitem: str, name: str) -> LaunchSpec:
    return LaunchSpec(user, roles, name=name, custom={"kdgrade_assignment": str(assignment.pk)},
                      lineitem_id=lineitem, context_title="Physics 7B")


def counts() -> tuple[int, ...]:
    return (Submission.objects.count(), Score.objects.count(), ReviewEvent.objects.count(),
            TeacherComment.objects.count(), GradeOutbox.objects.count(),
            tuple(Score.objects.order_by("pk").values_list("override_score", flat=True)))


def reload_changes_nothing(page, frame) -> None:
    """Reload the tool's frame (the browser's reload of the page a POST redirected to)."""
    before = counts()
    url = frame.url
    with frame.expect_navigation():
        frame.evaluate("location.reload()")
    frame.wait_for_load_state()
    assert frame.url == url and "ls=" in url
    assert counts() == before, "a reload repeated an action"
    # The page dropped the one-time message from its address: the reload does not show it again.
    assert "done=" not in frame.url and "after=" not in frame.url
    assert frame.query_selector("#status .notice") is None


def focus_frame_by_keyboard(page, frame) -> None:
    for _ in range(8):
        if frame.evaluate("document.hasFocus()"):
            return
        page.keyboard.press("Tab")
    raise AssertionError("Tab never reached the tool's frame")


def server_ms(frame) -> float:
    """Time from request start to the first byte of the frame's document (the server's time on localhost)."""
    return frame.evaluate("() => { const n = performance.getEntriesByType('navigation')[0];"
                          " return n.responseStart - n.requestStart; }")


def test_student_and_teacher_through_the_lms(page, lms, course, live_server):
    assignment, lineitem, context = course
    timings: dict[str, float] = {}
    student = spec("student-1", [ROLE_LEARNER], assignment, lineitem, "Ada Lovelace")
    Membership.objects.create(context=context, is_learner=True, user=LtiUser.objects.create(
        platform=context.platform, sub="student-1", name="Ada Lovelace"))

    # --- the student: notice, counter, a refused long answer keeps its text, then an answer -------------
    page.goto(lms.frame_url(student, "Spoons in the kitchen"))
    frame = tool_frame(page)
    ready(frame, "#response")
    assert "automatic scorer reads your answer" in frame.inner_text("#scoring-notice")
    assert "You have 2 attempts" in frame.inner_text("#attempts")
    check_page(page, frame, "student-answer")
    # The tool asked the LMS to fit the frame to its content (lti.frameResize), and the LMS did.
    asked = page.evaluate("window.ltiResizes")
    assert asked and asked[-1] == frame.evaluate("Math.ceil(document.documentElement.getBoundingClientRect().height)")
    assert page.evaluate("document.getElementById('tool').getBoundingClientRect().height") == max(200, asked[-1])
    too_long = "Metal takes heat away from the hand. " * 70  # 2,590 characters: over the 2,500 limit
    frame.fill("#response", too_long)
    assert "over the limit of 2,500" in frame.inner_text("#counter")
    assert frame.get_attribute("#response", "aria-invalid") == "true"
    frame.focus("#response")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the send button, from the keyboard
    ready(frame, "#answer-error")
    assert frame.input_value("#response") == too_long.strip() or frame.input_value("#response") == too_long
    assert Submission.objects.filter(learner_ref="student-1").count() == 0
    check_page(page, frame, "student-refused")
    frame.fill("#response", GOOD)
    frame.focus("#response")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    ready(frame, "#pending")
    ready(frame, "#status .notice")  # the outcome of the redirect, announced in the live region
    assert "Your answer was received" in frame.inner_text("#status")
    assert "will review your answer" in frame.inner_text("#pending")
    assert "You have used 1 of 2 attempts" in frame.inner_text("#attempts")
    assert Submission.objects.filter(learner_ref="student-1").count() == 1
    reload_changes_nothing(page, frame)
    frame = tool_frame(page)
    check_page(page, frame, "student-result")

    # --- the teacher: the queue, keyboard only ----------------------------------------------------------
    teacher = spec("teacher-1", [ROLE_INSTRUCTOR], assignment, lineitem, "Tess Teacher")
    page.goto(lms.frame_url(teacher, "Spoons in the kitchen"))
    frame = tool_frame(page)
    ready(frame, "#review")
    timings["queue (6 answers)"] = server_ms(frame)
    assert "Dan Dale" in frame.inner_text("#student-name"), "the answer the scorer declined comes first"
    assert "the scorer declined" in frame.inner_text(".card")
    check_page(page, frame, "teacher-queue")
    focus_frame_by_keyboard(page, frame)
    page.keyboard.press("0")
    assert frame.is_checked('input[name="value"][value="0"]')
    page.keyboard.press("Enter")  # save 0 for Dan, on to the next answer
    frame.wait_for_function("() => !document.getElementById('student-name').textContent.includes('Dan')")
    timings["score-and-next"] = server_ms(frame)
    dan = Score.objects.get(submission__learner_ref="student-4")
    assert dan.override_score == 0
    assert ReviewEvent.objects.filter(submission=dan.submission, action="changed").count() == 1
    ready(frame, "#status .notice")
    assert "Score saved" in frame.inner_text("#status")
    reload_changes_nothing(page, frame)
    frame = tool_frame(page)
    first = frame.inner_text("#student-name")
    focus_frame_by_keyboard(page, frame)
    page.keyboard.press("j")
    frame.wait_for_function(f"() => document.getElementById('student-name').textContent !== {json.dumps(first)}")
    focus_frame_by_keyboard(page, frame)
    page.keyboard.press("k")
    frame.wait_for_function(f"() => document.getElementById('student-name').textContent === {json.dumps(first)}")
    focus_frame_by_keyboard(page, frame)
    page.keyboard.press("Enter")  # accept the scorer's score of this one
    frame.wait_for_function(f"() => document.getElementById('student-name').textContent !== {json.dumps(first)}")
    timings["accept-and-next"] = server_ms(frame)
    assert ReviewEvent.objects.filter(action="accepted").count() == 1
    reload_changes_nothing(page, frame)

    # --- the table and the groups: bulk accept of confident, unflagged answers ---------------------------
    frame = tool_frame(page)
    frame.focus("nav.tabs a >> text=All answers")
    page.keyboard.press("Enter")
    ready(frame, "#answers")
    check_page(page, frame, "teacher-table")
    frame.focus("nav.tabs a >> text=Similar answers")
    page.keyboard.press("Enter")
    ready(frame, "nav.tabs a[aria-current=page][href*=groups]")
    check_page(page, frame, "teacher-groups")
    frame.focus("nav.tabs a >> text=All answers")
    page.keyboard.press("Enter")
    ready(frame, "#answers")
    waiting = Score.objects.filter(override_score__isnull=True, model_score__isnull=False, flags=[]).count()
    assert waiting >= 2
    frame.focus("#bulk-confident button")
    page.keyboard.press("Enter")
    ready(frame, "#status .notice")
    assert f"Accepted the scorer's score of {waiting} answer(s)" in frame.inner_text("#status")
    assert Score.objects.filter(override_score__isnull=True, model_score__isnull=False, flags=[]).count() == 0
    reload_changes_nothing(page, frame)

    # --- override Ada's score with a comment, and send it -------------------------------------------------
    ada = Score.objects.get(submission__learner_ref="student-1")
    new_level = 1 if ada.final_score != 1 else 2
    frame = tool_frame(page)
    frame.focus('#answers a:has-text("Ada Lovelace")')
    page.keyboard.press("Enter")
    ready(frame, "#review")
    assert "Ada Lovelace" in frame.inner_text("#student-name")
    focus_frame_by_keyboard(page, frame)
    page.keyboard.press(str(new_level))
    page.keyboard.press("c")
    page.keyboard.type("Good idea about conduction; say where the heat goes.")
    page.keyboard.press("Tab")  # the "send to the gradebook" box
    page.keyboard.press("Space")
    page.keyboard.press("Tab")  # "Save chosen level for Ada Lovelace"
    page.keyboard.press("Enter")
    ready(frame, "#status .notice")
    ada.refresh_from_db()
    assert ada.override_score == new_level and ada.model_score is not None, (
        frame.inner_text("main")[:1500], list(ReviewEvent.objects.values_list("action", "old_score", "new_score")))
    assert TeacherComment.objects.get(submission=ada.submission).text.startswith("Good idea")
    assert set(ReviewEvent.objects.filter(submission=ada.submission).values_list("action", flat=True)) >= {
        "commented", "released"}
    reload_changes_nothing(page, frame)

    # --- release the rest, with a real worker; the grades reach the platform's gradebook -------------
    with celery_worker(extra_env=FAST):
        frame = tool_frame(page)
        frame.focus("nav.tabs a >> text=Overview and settings")
        page.keyboard.press("Enter")
        ready(frame, "#settings-h")
        frame.focus("text=Send ready scores to the gradebook")
        page.keyboard.press("Enter")
        ready(frame, "#status .notice")
        assert "on their way to the gradebook" in frame.inner_text("#status")
        reload_changes_nothing(page, frame)
        column = f"{lms.base}/ags/course-1/lineitems/{lineitem}"
        got = wait_until(lambda: (lms.gradebook.result(column, "student-1") or {}).get("gradingProgress")
                         == "FullyGraded" and lms.gradebook.result(column, "student-1"), timeout=60,
                         message="Ada's grade in the platform's gradebook")
        assert got["scoreGiven"] == new_level and "say where the heat goes" in got["comment"]
        wait_until(lambda: all((lms.gradebook.result(column, s) or {}).get("gradingProgress") == "FullyGraded"
                               for s, _, _ in OTHERS), timeout=60, message="every grade in the gradebook")
        wait_until(lambda: not Score.objects.filter(passback_state__in=["pending", "held"]).exists(), timeout=30,
                   message="kdgrade to record the grades as sent")
    frame = tool_frame(page)
    with frame.expect_navigation():
        frame.evaluate("location.reload()")
    ready(frame, "#settings-h")
    assert "Not sent" not in frame.inner_text("main")
    check_page(page, frame, "teacher-overview")
    page.goto(f"{lms.base}/")
    assert "student-1" in page.inner_text("table") and str(float(new_level)) in page.inner_text("table")

    # --- the answer's page: history, audit rows ------------------------------------------------------------
    page.goto(lms.frame_url(teacher, "Spoons in the kitchen"))
    frame = tool_frame(page)
    ready(frame, "#review")
    frame.goto(f"{live_server.url}/lti/submission/{ada.submission_id}/?ls={frame.url.split('ls=')[1].split('&')[0]}")
    ready(frame, "#audit")
    audit = frame.inner_text("#audit")
    assert "Tess Teacher changed the score" in audit and "released the score" in audit
    check_page(page, frame, "teacher-submission")

    # --- the student again: the teacher's score, final, with the comment -------------------------------------
    page.goto(lms.frame_url(student, "Spoons in the kitchen"))
    frame = tool_frame(page)
    ready(frame, "#score-source")
    assert frame.inner_text("#score-source") == "Score from your teacher"
    assert frame.inner_text("#score-status").startswith("Final")
    assert "say where the heat goes" in frame.inner_text("#teacher-comment")
    check_page(page, frame, "student-final")

    # --- the error page ----------------------------------------------------------------------------------
    page.goto(lms.frame_url(LaunchSpec("student-1", [ROLE_LEARNER], resource_link_id="link-unset",
                                       custom={"kdgrade_assignment": "999999"}), "A missing activity"))
    frame = tool_frame(page)
    ready(frame, "h1")
    assert "cannot open this" in frame.inner_text("h1")
    check_page(page, frame, "error")
    assert_no_axe_violations(page, "the development LMS frame page")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "timings.json").write_text(json.dumps(timings, indent=1))
    print("server time in the browser (ms):", json.dumps(timings))
