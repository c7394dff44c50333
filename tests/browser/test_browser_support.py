"""The browser-test support itself, on real pages: the LMS frames kdgrade cross-site, the launch works
without the tool's cookies, and the checks catch what they are meant to catch."""

from __future__ import annotations

import pytest

from devtools.devplatform import ROLE_LEARNER, LaunchSpec
from kdgrade.lti.models import Context, LtiAssignment, Platform
from scoring.models import Assignment, Item
from tests.browser.support import (
    accessible_controls,
    assert_unique_accessible_names,
    axe_violations,
    check_page,
    horizontal_overflow,
    screenshot,
    tool_frame,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _assignment(lms) -> Assignment:
    item = Item.objects.create(external_id="browser-smoke", title="Heat and the spoon",
                               question="Why does the metal spoon get hot?", score_min=0, score_max=2)
    context, _ = Context.objects.get_or_create(platform=Platform.objects.get(issuer=lms.issuer), context_id="course-1")
    assignment = Assignment.objects.create(item=item, title="Spoon question")
    LtiAssignment.objects.create(assignment=assignment, context=context)
    return assignment


def test_student_launch_inside_a_cross_site_iframe(page, lms, live_server):
    assignment = _assignment(lms)
    spec = LaunchSpec("student-1", [ROLE_LEARNER], custom={"kdgrade_assignment": str(assignment.pk)})
    page.goto(lms.frame_url(spec))
    frame = tool_frame(page)
    frame.wait_for_url(f"{live_server.url}/lti/a/{assignment.pk}/?ls=*")
    assert page.url.startswith("http://127.0.0.1:") and frame.url.startswith("http://localhost:")
    assert "Why does the metal spoon get hot?" in frame.content()
    assert axe_violations(frame) == []
    names = [c["name"] for c in accessible_controls(frame)]
    assert names, "the answer page has controls"
    shots = screenshot(page, "smoke-answer", frame)
    assert all(p.stat().st_size > 1000 for p in shots.values())


def test_error_page_passes_the_page_checks(page, lms, live_server):
    page.goto(lms.frame_url(LaunchSpec("student-1", [ROLE_LEARNER], custom={"kdgrade_assignment": "999999"})))
    frame = tool_frame(page)
    frame.wait_for_load_state()
    assert "not connected" in frame.content() or "not part of" in frame.content()
    check_page(page, frame, "smoke-error")


def test_checks_catch_duplicate_names_nameless_controls_and_overflow(page):
    page.set_content('<!doctype html><html lang="en"><head><title>t</title></head><body><main>'
                     '<button>Save</button><button>Save</button><input id="x">'
                     '<div style="width:2000px">wide</div></main></body></html>')
    with pytest.raises(AssertionError, match="without an accessible name"):
        assert_unique_accessible_names(page)
    page.set_content('<!doctype html><html lang="en"><head><title>t</title></head><body><main>'
                     '<button>Save</button><button>Save</button></main></body></html>')
    with pytest.raises(AssertionError, match="sharing an accessible name"):
        assert_unique_accessible_names(page)
    page.set_content('<!doctype html><html lang="en"><head><title>t</title></head><body><main>'
                     '<button>Save Ada</button><label>Score for Ada <input></label>'
                     '<div style="width:2000px">wide</div></main></body></html>')
    assert [c["name"] for c in assert_unique_accessible_names(page)] == ["Save Ada", "Score for Ada"]
    page.set_viewport_size({"width": 320, "height": 600})
    assert horizontal_overflow(page) > 1500
    page.set_content('<!doctype html><html><body><img src="x.png"></body></html>')
    ids = {v["id"] for v in axe_violations(page)}
    assert {"html-has-lang", "image-alt"} <= ids
