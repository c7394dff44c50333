"""LTI 1.3 launches from a real platform implementation (lti1p3platform, served over HTTP on 127.0.0.1)
into kdgrade served over HTTP (pytest-django's live server): learner and instructor, cookies or none,
key rotation with a launch in flight, the configuration endpoints and the admin command."""

from __future__ import annotations

import json

import pytest
import requests
from django.core.management import call_command

from devtools.devplatform import (
    ROLE_ADMIN,
    ROLE_INSTRUCTOR,
    ROLE_LEARNER,
    DevPlatform,
    LaunchSpec,
    register_in_kdgrade,
)
from devtools.testing import Browser, ls_token
from kdgrade.lti.keys import rotate_keys
from kdgrade.lti.models import Context, LtiAssignment, LtiUser, Membership, Platform, ResourceLink
from kdgrade.lti.sessions import session_for
from scoring.models import Assignment, Item

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def lms(live_server):
    with DevPlatform(live_server.url) as platform:
        register_in_kdgrade(platform)
        yield platform


def make_assignment(lms: DevPlatform, context_id: str = "course-1", release: str = "after_review") -> Assignment:
    item = Item.objects.get_or_create(external_id="heat-spoon-lti", defaults={
        "title": "Heat and the spoon", "question": "Why does the metal spoon get hot?", "score_min": 0,
        "score_max": 2})[0]
    platform = Platform.objects.get(issuer=lms.issuer)
    context, _ = Context.objects.get_or_create(platform=platform, context_id=context_id)
    assignment = Assignment.objects.create(item=item, title="Spoon question", release=release)
    LtiAssignment.objects.create(assignment=assignment, context=context)
    return assignment


def spec(user: str, roles: list[str], assignment: Assignment, **kw: object) -> LaunchSpec:
    return LaunchSpec(user_id=user, roles=roles, custom={"kdgrade_assignment": str(assignment.pk)}, **kw)


def test_learner_launch_lands_on_the_answer_page_and_records_course_link_and_user(lms, live_server):
    assignment = make_assignment(lms)
    browser = Browser()
    page = browser.launch(lms, spec("student-1", [ROLE_LEARNER], assignment, name="Ada Learner"))
    assert page.status_code == 200, page.text[:500]
    assert page.url.startswith(f"{live_server.url}/lti/a/{assignment.pk}/?ls=")
    assert "Why does the metal spoon get hot?" in page.text
    assert 'name="response"' in page.text
    session = session_for(ls_token(page.url))
    assert not session.is_instructor
    assert session.context.context_id == "course-1" and session.context.title == "Physics 7B"
    assert session.user.sub == "student-1" and session.user.name == "Ada Learner"
    link = ResourceLink.objects.get(resource_link_id="link-1")
    assert link.assignment_id == assignment.pk
    assert link.lineitems_url == f"{lms.base}/ags/course-1/lineitems"
    assert "https://purl.imsglobal.org/spec/lti-ags/scope/score" in link.ags_scopes
    assert session.context.memberships_url == f"{lms.base}/nrps/course-1/memberships"
    assert Membership.objects.get(user__sub="student-1").is_learner
    # The launch token is required on every request: the same browser (cookies and all) without ?ls=
    # is refused, so no other site can frame a logged-in kdgrade page.
    again = browser.get(f"{live_server.url}/lti/a/{assignment.pk}/")
    assert again.status_code == 401 and 'name="response"' not in again.text


@pytest.mark.parametrize("roles", [[ROLE_INSTRUCTOR], [ROLE_ADMIN, ROLE_INSTRUCTOR], [ROLE_LEARNER, ROLE_INSTRUCTOR]])
def test_instructor_launch_lands_on_the_review_page(lms, live_server, roles):
    assignment = make_assignment(lms)
    page = Browser().launch(lms, spec("teacher-1", roles, assignment))
    assert page.status_code == 200, page.text[:500]
    assert page.url.startswith(f"{live_server.url}/lti/a/{assignment.pk}/review/?ls=")
    assert "Review: Spoon question" in page.text
    assert session_for(ls_token(page.url)).is_instructor


def test_launch_in_a_cross_site_iframe_that_drops_every_cookie_still_works(lms, live_server):
    """The state is checked on the server: no cookie is needed for the launch nor for the pages."""
    assignment = make_assignment(lms)
    browser = Browser(drop_cookies=True)
    page = browser.launch(lms, spec("student-2", [ROLE_LEARNER], assignment))
    assert page.status_code == 200, page.text[:500]
    assert not browser.http.cookies, "the test browser should have kept no cookie"
    assert 'name="response"' in page.text
    # Without the cookie and without the token, the page refuses (it does not guess who you are).
    bare = browser.get(f"{live_server.url}/lti/a/{assignment.pk}/")
    assert bare.status_code == 401


def test_a_burst_of_logins_does_not_push_out_a_login_in_progress(lms, settings):
    """Login states live in a table, not in a cache that evicts entries (Django's database cache keeps
    300): hundreds of logins (a school starting at 9:00, or someone hammering /lti/login/) while one
    student's launch is in flight do not make it fail."""
    from django.test import RequestFactory

    from kdgrade.lti import login as login_service

    assignment = make_assignment(lms)
    browser = Browser()
    browser.start_launch(lms, spec("student-1", [ROLE_LEARNER], assignment))
    assert browser.form.get("id_token")
    burst = {"iss": lms.issuer, "client_id": lms.client_id, "login_hint": "someone",
             "target_link_uri": f"{settings.PUBLIC_URL}/lti/launch/"}
    for _ in range(400):
        login_service.login(RequestFactory().get("/lti/login/"), burst)
    page = browser.post_launch()
    assert page.status_code == 200 and 'name="response"' in page.text, page.text[:300]


def test_rotating_the_tool_key_during_a_deep_link_does_not_break_it(lms, live_server):
    """A Deep Linking response signed just before a rotation still verifies at the platform (the old key
    stays published); once the old key is retired, such a response no longer would."""
    from devtools.testing import parse_form
    from kdgrade.lti import keys
    from scoring.models import ModelVersion

    item = Item.objects.create(external_id="rot-item", title="Rotation item", question="Q?", score_min=0,
                               score_max=2)
    ModelVersion.objects.create(item=item, version=1, status=ModelVersion.Status.ACTIVE)
    platform = Platform.objects.get(issuer=lms.issuer)
    old = keys.signing_key_for(platform)
    browser = Browser()
    picker = browser.launch(lms, LaunchSpec("teacher-1", [ROLE_INSTRUCTOR], deep_linking=True))
    back = browser.post(picker.url.split("?")[0], {"ls": ls_token(picker.url), "item": item.pk, "title": "T",
                                                   "release": "immediate"})
    form = parse_form(back.text)  # signed with the old key; the browser has not posted it yet
    new = rotate_keys(platform=platform)
    assert keys.signing_key_for(platform).kid == new.kid != old.kid
    done = browser.http.post(form["_action"], data={"JWT": form["JWT"]}, timeout=30)
    assert done.status_code == 200, done.text
    assert len(lms.gradebook.deep_link_items) == 1
    # After the grace period the old key leaves the JWKS: the same response is then refused.
    assert keys.retire_keys(older_than_hours=0, platform=platform) == 1
    published = {k["kid"] for k in requests.get(lms.tool_jwks_url, timeout=10).json()["keys"]}
    assert published == {new.kid}
    late = browser.http.post(form["_action"], data={"JWT": form["JWT"]}, timeout=30)
    assert late.status_code == 400 and len(lms.gradebook.deep_link_items) == 1


def test_jwks_publishes_public_keys_only(live_server):
    jwks = requests.get(f"{live_server.url}/lti/jwks/", timeout=10).json()
    assert jwks["keys"] and all(set(k) >= {"kty", "n", "e", "kid", "alg", "use"} for k in jwks["keys"])
    assert not any("d" in k or "p" in k for k in jwks["keys"])


def test_canvas_configuration_json_has_the_urls_placements_and_scopes(client, settings):
    settings.PUBLIC_URL = "https://kdgrade.school.org"
    conf = client.get("/lti/canvas.json").json()
    assert conf["oidc_initiation_url"] == "https://kdgrade.school.org/lti/login/"
    assert conf["target_link_uri"] == "https://kdgrade.school.org/lti/launch/"
    assert conf["public_jwk_url"] == "https://kdgrade.school.org/lti/jwks/"
    placements = {p["placement"]: p for p in conf["extensions"][0]["settings"]["placements"]}
    assert set(placements) == {"assignment_selection", "link_selection"}
    assert all(p["message_type"] == "LtiDeepLinkingRequest" for p in placements.values())
    assert "https://purl.imsglobal.org/spec/lti-ags/scope/score" in conf["scopes"]
    assert "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly" in conf["scopes"]


def test_lti_add_platform_command_registers_a_platform_that_can_launch(live_server, capsys):
    with DevPlatform(live_server.url, client_id="cli-client") as lms:
        u = lms.urls
        call_command("lti_add_platform", "--issuer", u["issuer"], "--client-id", u["client_id"],
                     "--deployment-id", u["deployment_id"], "--auth-url", u["auth_url"], "--token-url",
                     u["token_url"], "--keyset-url", u["keyset_url"])
        assert "client cli-client" in capsys.readouterr().out
        assignment = make_assignment(lms)
        page = Browser().launch(lms, spec("student-9", [ROLE_LEARNER], assignment))
        assert page.status_code == 200 and 'name="response"' in page.text


def test_moodle_preset_fills_the_moodle_endpoints(capsys):
    call_command("lti_add_platform", "--preset", "moodle", "--issuer", "https://moodle.school.org",
                 "--client-id", "abc", "--deployment-id", "3")
    p = Platform.objects.get(client_id="abc")
    assert p.auth_url == "https://moodle.school.org/mod/lti/auth.php"
    assert p.token_url == "https://moodle.school.org/mod/lti/token.php"
    assert p.keyset_url == "https://moodle.school.org/mod/lti/certs.php"
    assert list(p.deployments.values_list("deployment_id", flat=True)) == ["3"]


def test_course_copy_gets_its_own_assignment(lms):
    """A link copied into another course carries the assignment id; that course gets its own copy,
    so neither course sees the other's answers."""
    assignment = make_assignment(lms)
    page = Browser().launch(lms, spec("teacher-2", [ROLE_INSTRUCTOR], assignment, context_id="course-copy",
                                      resource_link_id="link-copy"))
    assert page.status_code == 200
    link = ResourceLink.objects.get(resource_link_id="link-copy")
    assert link.assignment_id != assignment.pk
    assert link.assignment.item_id == assignment.item_id
    assert link.assignment.lti.context.context_id == "course-copy"
    assert LtiUser.objects.filter(sub="teacher-2").count() == 1
    assert json.dumps(link.ags_scopes)
