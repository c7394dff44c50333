"""The whole flow with a real platform (lti1p3platform over HTTP) and a real model version (built by the
distillation pipeline): Deep Linking round trip, learners answer and are scored, grades reach the
platform's gradebook through AGS (at once, or after the teacher's review), the NRPS roster shows who
has not answered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devtools.devplatform import ROLE_INSTRUCTOR, ROLE_LEARNER, DevPlatform, LaunchSpec, register_in_kdgrade
from devtools.testing import Browser, ls_token, parse_form
from kdgrade.lti.models import LtiAssignment, ResourceLink
from scoring.models import Assignment, Score
from tests.workers import ROOT, celery_worker, wait_until

pytestmark = pytest.mark.django_db(transaction=True)
FAST = {"KDGRADE_LTI_RETRY_BASE": "0.2", "KDGRADE_LTI_RETRY_MAX": "1", "KDGRADE_LTI_HTTP_TIMEOUT": "2",
        "KDGRADE_LTI_LEASE_SECONDS": "5"}
GOOD_ANSWER = ("Metal is a better conductor of heat than wood, so it takes heat away from my hand faster. They are "
               "the same temperature but the metal pulls heat from my skin quicker so it feels cold.")
_BUILD = """
import sys, warnings
warnings.filterwarnings("ignore")
from distillation.pipeline import distill_csv
distill_csv(sys.argv[2], sys.argv[1], seed=0)
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A real model version of the demo item (distillation's fast path, in a child process: no torch here)."""
    out = tmp_path_factory.mktemp("lti-model")
    done = subprocess.run([sys.executable, "-c", _BUILD, str(out), str(ROOT / "scoring/demo/heat_spoon.csv")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out / "heat-spoon"


@pytest.fixture
def demo_item(model_dir, settings, tmp_path):
    from scoring.demo_data import load_demo
    from scoring.versions import activate_version, register_version

    settings.MODELS_DIR = tmp_path / "models"
    item = load_demo()
    item.confidence_threshold = 0.0  # a tiny test model is unsure of everything; let it score
    item.save()
    activate_version(register_version(item, model_dir))
    return item


def test_deep_linking_answers_gradebook_and_roster(live_server, demo_item):
    with DevPlatform(live_server.url) as lms, celery_worker(extra_env=FAST):
        register_in_kdgrade(lms)
        # 1. Deep Linking: the teacher picks the item inside the LMS.
        teacher = Browser()
        picker = teacher.launch(lms, LaunchSpec("teacher-1", [ROLE_INSTRUCTOR], deep_linking=True, name="T. Eacher"))
        assert picker.status_code == 200 and "/lti/deep-link/" in picker.url
        assert demo_item.title in picker.text
        token = ls_token(picker.url)
        back = teacher.post(picker.url.split("?")[0], {"ls": token, "item": demo_item.pk, "title": "Spoons",
                                                       "release": "immediate", "show_feedback": "on"})
        assert back.status_code == 200
        form = parse_form(back.text)
        assert form["_action"] == f"{lms.base}/deep_link_return"
        # The platform (lti1p3platform) verifies kdgrade's signed response against /lti/jwks/.
        done = teacher.http.post(form["_action"], data={"JWT": form["JWT"]}, timeout=30)
        assert done.status_code == 200, done.text
        (record,) = lms.gradebook.deep_link_items
        item = record["item"]
        assert item["type"] == "ltiResourceLink" and item["url"] == f"{live_server.url}/lti/launch/"
        assert item["lineItem"]["scoreMaximum"] == 2 and item["lineItem"]["label"] == "Spoons"
        assignment = Assignment.objects.get(pk=int(item["custom"]["kdgrade_assignment"]))
        assert assignment.item_id == demo_item.pk and assignment.release == "immediate"
        assert LtiAssignment.objects.get(assignment=assignment).context.context_id == "course-1"
        column = f"{lms.base}/ags/course-1/lineitems/{record['lineitem_id']}"
        assert lms.gradebook.lineitems[column]["label"] == "Spoons"

        def learner_spec(user: str, name: str) -> LaunchSpec:
            return LaunchSpec(user, [ROLE_LEARNER], name=name, resource_link_id=record["resource_link_id"],
                              custom=item["custom"], lineitem_id=record["lineitem_id"])

        # 2. A learner answers; immediate release: the model's score goes to the gradebook.
        ada = Browser()
        page = ada.launch(lms, learner_spec("student-1", "Ada"))
        assert page.status_code == 200 and demo_item.question[:40] in page.text
        after = ada.post(page.url.split("?")[0], {"ls": ls_token(page.url), "response": GOOD_ANSWER})
        assert after.status_code == 200
        score = Score.objects.get(submission__learner_ref="student-1")
        assert score.model_version is not None and score.model_score is not None and not score.needs_review
        assert f'data-score="{score.model_score}"' in after.text
        level = demo_item.rubric_levels.get(score=score.model_score)
        assert level.descriptor in after.text
        got = wait_until(lambda: lms.gradebook.result(column, "student-1"), timeout=60, message="Ada's grade")
        assert got["scoreGiven"] == score.model_score and got["gradingProgress"] == "FullyGraded"
        assert got["comment"] == f"{level.label}: {level.descriptor}"
        assert ResourceLink.objects.get(resource_link_id=record["resource_link_id"]).lineitem_url == column

        # 3. The teacher switches to "after review"; the next answer shows in the LMS as needing grading.
        review = teacher.launch(lms, LaunchSpec("teacher-1", [ROLE_INSTRUCTOR], name="T. Eacher",
                                                resource_link_id=record["resource_link_id"], custom=item["custom"],
                                                lineitem_id=record["lineitem_id"], nrps_query="limit=2"))
        assert "/review/" in review.url
        review_url, t_token = review.url.split("?")[0], ls_token(review.url)
        base = review_url.split("/review/")[0]
        saved = teacher.post(f"{base}/settings/", {"ls": t_token, "back": "overview", "release": "after_review",
                                                   "show_feedback": "on", "resubmission_allowed": "on",
                                                   "max_attempts": "", "counts": "latest"})
        assert "Settings saved" in saved.text
        bob = Browser()
        page = bob.launch(lms, learner_spec("student-2", "Bob"))
        after = bob.post(page.url.split("?")[0], {"ls": ls_token(page.url), "response": GOOD_ANSWER})
        assert 'id="pending"' in after.text and "data-score=" not in after.text
        pending = wait_until(lambda: lms.gradebook.result(column, "student-2"), timeout=60, message="Bob's status")
        assert pending["gradingProgress"] == "PendingManual" and pending["activityProgress"] == "Submitted"
        assert "scoreGiven" not in pending

        # 4. The review page lists both, with model score and confidence; release sends Bob's.
        page = teacher.get(f"{base}/answers/?ls={t_token}")
        assert page.text.count("data-submission=") == 2 and "Ada" in page.text and "Bob" in page.text
        released = teacher.post(f"{base}/release-all/", {"ls": t_token, "back": "overview"})
        assert "1 grade(s) are on their way to the gradebook" in released.text
        bob_score = Score.objects.get(submission__learner_ref="student-2")
        final = wait_until(lambda: (lms.gradebook.result(column, "student-2") or {}).get("gradingProgress")
                           == "FullyGraded" and lms.gradebook.result(column, "student-2"), timeout=60,
                           message="Bob's released grade")
        assert final["scoreGiven"] == bob_score.model_score

        # 5. NRPS: the roster from the platform (in pages of 2, linked by rel="next") shows who has not
        # answered.
        lms.set_members("course-1", [
            {"user_id": "teacher-1", "name": "T. Eacher", "roles": [ROLE_INSTRUCTOR]},
            {"user_id": "student-1", "name": "Ada", "roles": [ROLE_LEARNER]},
            {"user_id": "student-2", "name": "Bob", "roles": [ROLE_LEARNER]},
            {"user_id": "student-3", "name": "Cleo Notyet", "roles": [ROLE_LEARNER]},
        ])
        synced = teacher.post(f"{base}/roster/", {"ls": t_token, "back": "overview"})
        assert "Roster updated: 4 members" in synced.text
        listed = synced.text.split('id="not-answered"')[1].split("</ul>")[0]
        assert "Cleo Notyet" in listed and "Ada" not in listed and "Bob" not in listed
        assert "T. Eacher" not in listed
