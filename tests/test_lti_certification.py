"""The 1EdTech LTI 1.3 core certification launch cases, played by a real platform library (lti1p3platform
over HTTP): the valid teacher and student launches in their variants land on the right page; the
known-bad payloads get a 4xx page and no session.  Also the Moodle roster (NRPS) with short role names."""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt
import pytest

from devtools.devplatform import ROLE_INSTRUCTOR, ROLE_LEARNER, DevPlatform, LaunchSpec, register_in_kdgrade
from devtools.testing import Browser, ls_token
from kdgrade.lti.claims import NO_CONTEXT_PREFIX
from kdgrade.lti.models import Context, LaunchSession, LtiAssignment, LtiUser, Membership, ResourceLink
from kdgrade.lti.sessions import session_for
from scoring.models import Assignment, Item, Score, Submission

pytestmark = pytest.mark.django_db(transaction=True)

C = "https://purl.imsglobal.org/spec/lti/claim/"
INST = "http://purl.imsglobal.org/vocab/lis/v2/institution/person"
SYS = "http://purl.imsglobal.org/vocab/lis/v2/system/person"
UNKNOWN = "http://purl.imsglobal.org/vocab/lis/v2/unknown/unknown#Unknown"


@pytest.fixture
def lms(live_server):
    with DevPlatform(live_server.url) as platform:
        register_in_kdgrade(platform)
        yield platform


@pytest.fixture
def assignment(lms) -> Assignment:
    from kdgrade.lti.models import Platform

    item = Item.objects.create(external_id="cert-item", title="Item", question="Why does the spoon get hot?",
                               score_min=0, score_max=2)
    context = Context.objects.create(platform=Platform.objects.get(issuer=lms.issuer), context_id="course-1")
    a = Assignment.objects.create(item=item, title="Spoon question")
    LtiAssignment.objects.create(assignment=a, context=context)
    return a


def _spec(assignment: Assignment, user: str, roles: list[str], **kw: object) -> LaunchSpec:
    return LaunchSpec(user_id=user, roles=roles, custom={"kdgrade_assignment": str(assignment.pk)}, **kw)


STUDENT = "student"
TEACHER = "teacher"
VALID = {
    # name: (who lands, roles, other LaunchSpec fields)
    "student, multiple roles": (STUDENT, [ROLE_LEARNER, f"{INST}#Student", f"{SYS}#User"], {}),
    "teacher, multiple roles": (TEACHER, [ROLE_INSTRUCTOR, f"{INST}#Faculty", f"{SYS}#User"], {}),
    "student, short role": (STUDENT, ["Learner"], {}),
    "teacher, short role": (TEACHER, ["Instructor"], {}),
    "student, unknown role": (STUDENT, [ROLE_LEARNER, UNKNOWN], {}),
    "teacher, unknown role": (TEACHER, [ROLE_INSTRUCTOR, UNKNOWN], {}),
    "only an unknown role (as a student)": (STUDENT, [UNKNOWN], {}),
    "no role (as a student)": (STUDENT, [""], {}),
    "student, only email": (STUDENT, [ROLE_LEARNER], {"email": "ada@school.example"}),
    "teacher, only email": (TEACHER, [ROLE_INSTRUCTOR], {"email": "t@school.example"}),
    "student, only names": (STUDENT, [ROLE_LEARNER], {"given_name": "Ada", "family_name": "Lovelace"}),
    "teacher, only names": (TEACHER, [ROLE_INSTRUCTOR], {"given_name": "Tom", "family_name": "Eacher"}),
    "student, no personal data": (STUDENT, [ROLE_LEARNER], {}),
    "teacher, no personal data": (TEACHER, [ROLE_INSTRUCTOR], {}),
    "student, no context": (STUDENT, [ROLE_LEARNER], {"drop_claims": (C + "context",)}),
    "teacher, no context": (TEACHER, [ROLE_INSTRUCTOR], {"drop_claims": (C + "context",)}),
}


@pytest.mark.parametrize("case", list(VALID))
def test_certification_valid_launches_land_on_the_right_page(lms, live_server, assignment, case):
    who, roles, extra = VALID[case]
    page = Browser().launch(lms, _spec(assignment, f"{who}-1", roles, **extra))
    assert page.status_code == 200, page.text[:400]
    session = session_for(ls_token(page.url))
    shown = session.resource_link.assignment
    assert session.is_instructor == (who == TEACHER)
    suffix = "review/" if who == TEACHER else ""
    assert page.url.startswith(f"{live_server.url}/lti/a/{shown.pk}/{suffix}?ls="), page.url
    assert ("Review: Spoon question" if who == TEACHER else 'name="response"') in page.text
    user = LtiUser.objects.get(sub=f"{who}-1")
    assert user.name == ("Ada Lovelace" if case == "student, only names" else
                         "Tom Eacher" if case == "teacher, only names" else "")
    if "no context" in case:
        assert session.context.context_id.startswith(NO_CONTEXT_PREFIX)
        assert shown.pk != assignment.pk and shown.lti.context_id == session.context_id  # its own copy
    else:
        assert session.context.context_id == "course-1" and shown.pk == assignment.pk


def test_launches_without_a_course_share_their_placement(lms, live_server, assignment):
    """Without a context claim, the activity is scoped to platform + deployment + resource link: a
    student's answer there is on the teacher's review page of the same link, not of another link."""
    drop = (C + "context",)
    student = Browser()
    page = student.launch(lms, _spec(assignment, "student-1", [ROLE_LEARNER], drop_claims=drop,
                                     resource_link_id="link-A"))
    token = ls_token(page.url)
    answered = student.post(page.url.split("?")[0], {"ls": token, "response": "metal conducts heat"})
    assert answered.status_code == 200, answered.text[:300]
    teacher = Browser().launch(lms, _spec(assignment, "teacher-1", [ROLE_INSTRUCTOR], drop_claims=drop,
                                          resource_link_id="link-A"))
    assert teacher.status_code == 200 and "metal conducts heat" in teacher.text
    other = Browser().launch(lms, _spec(assignment, "teacher-1", [ROLE_INSTRUCTOR], drop_claims=drop,
                                        resource_link_id="link-B"))
    assert other.status_code == 200 and "metal conducts heat" not in other.text
    assert ResourceLink.objects.filter(context__context_id__startswith=NO_CONTEXT_PREFIX).count() == 2


# --- known-bad payloads ----------------------------------------------------------------------------


def _resign(edit: Callable[[dict], None] | None = None, header: Callable[[dict], None] | None = None,
            **spec: object) -> Callable[[DevPlatform, Assignment], Callable]:
    """The platform's launch with its claims `edit`ed and its JWT header changed, signed again with
    the platform's own key (what a faulty platform would send)."""
    def setup(lms: DevPlatform, assignment: Assignment) -> Callable:
        browser = Browser()
        roles = spec.pop("roles", [ROLE_LEARNER])
        browser.start_launch(lms, _spec(assignment, "student-1", roles, **spec))
        good = browser.form["id_token"]
        body = jwt.decode(good, options={"verify_signature": False})
        if edit:
            edit(body)
        head = jwt.get_unverified_header(good)
        if header:
            header(head)
        token = jwt.encode(body, lms.private_pem, algorithm="RS256", headers=head)
        return lambda: browser.post_launch({**browser.form, "id_token": token})
    return setup


def _drop(*claims: str) -> Callable[[dict], None]:
    def edit(body: dict) -> None:
        for c in claims:
            body.pop(c, None)
    return edit


def _set(**claims: object) -> Callable[[dict], None]:
    return lambda body: body.update({k.replace("__", "/"): v for k, v in claims.items()})


def _not_lti(body: dict) -> None:
    for key in [k for k in body if k.startswith("https://purl.imsglobal.org/")]:
        body.pop(key)


def _no_kid(head: dict) -> None:
    head.pop("kid", None)


def _wrong_kid(head: dict) -> None:
    head["kid"] = "no-such-key-id"


NOW = int(time.time())
BAD = {
    "no kid in the JWT header": (_resign(header=_no_kid), "KID"),
    "wrong kid": (_resign(header=_wrong_kid), "public key"),
    "wrong LTI version": (_resign(_set(**{C + "version": "1.2.0"})), "version"),
    "no LTI version": (_resign(_drop(C + "version")), "version"),
    "not an LTI message (no LTI claims)": (_resign(_not_lti), "deployment_id is not set"),
    "no aud": (_resign(_drop("aud")), "audience (aud)"),
    "no iss": (_resign(_drop("iss")), "iss"),
    "no sub": (_resign(_drop("sub")), "sub"),
    "no deployment id": (_resign(_drop(C + "deployment_id")), "deployment"),
    "no roles claim": (_resign(_drop(C + "roles")), "Roles"),
    "expired (exp in the past)": (_resign(_set(exp=NOW - 3600, iat=NOW - 7200)), "expired"),
    "issued in the future (iat)": (_resign(_set(iat=NOW + 3600, exp=NOW + 7200)), "iat"),
    "no exp": (_resign(_drop("exp")), "exp"),
    "no message type": (_resign(_drop(C + "message_type")), "message type"),
    "no resource link": (_resign(_drop(C + "resource_link")), "Resource Link"),
    "resource link without id": (_resign(_set(**{C + "resource_link": {"title": "x"}})), "Resource Link"),
    "teacher, no message type": (_resign(_drop(C + "message_type"), roles=[ROLE_INSTRUCTOR]), "message type"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_certification_bad_payloads_get_a_4xx_page_and_no_session(lms, assignment, case):
    setup, words = BAD[case]
    attack = setup(lms, assignment)
    sessions, users, links = LaunchSession.objects.count(), LtiUser.objects.count(), ResourceLink.objects.count()
    resp = attack()
    assert 400 <= resp.status_code < 500, f"{case}: {resp.status_code} {resp.text[:300]}"
    assert "kdgrade cannot open this" in resp.text
    assert words.lower() in resp.text.lower(), resp.text[:500]
    assert "sessionid" not in resp.cookies
    assert (LaunchSession.objects.count(), LtiUser.objects.count(), ResourceLink.objects.count()) == (
        sessions, users, links)


# --- roster (NRPS) with short role names, as Moodle 5.0 sends them ----------------------------------


def test_moodle_roster_with_short_role_names_marks_learners_and_lists_who_has_not_answered(lms, assignment):
    teacher = Browser()
    page = teacher.launch(lms, _spec(assignment, "teacher-1", [ROLE_INSTRUCTOR]))
    token = ls_token(page.url)
    student = Browser()
    student.launch(lms, _spec(assignment, "student-1", [ROLE_LEARNER], name="Ada"))
    sub = Submission.objects.create(item=assignment.item, assignment=assignment, learner_ref="student-1",
                                    response="metal conducts", source=Submission.Source.LTI)
    Score.objects.create(submission=sub, model_score=1, confidence=0.9)
    lms.set_members("course-1", [  # Moodle 5.0's NRPS: short names
        {"user_id": "teacher-1", "name": "T. Eacher", "roles": ["Instructor"], "status": "Active"},
        {"user_id": "student-1", "name": "Ada", "roles": ["Learner"], "status": "Active"},
        {"user_id": "student-2", "name": "Bo Notyet", "roles": ["Learner"], "status": "Active"},
        {"user_id": "student-3", "name": "Cy Noroles", "roles": [], "status": "Active"},
        {"user_id": "dev-1", "name": "Dee Signer", "roles": ["ContentDeveloper"], "status": "Active"},
    ])
    roster_url = page.url.split("?")[0].replace("/review/", "/roster/")
    synced = teacher.post(roster_url, {"ls": token, "back": "overview"})
    assert "Roster updated: 5 members" in synced.text, synced.text[:500]
    listed = synced.text.split('id="not-answered"')[1].split("</ul>")[0]
    assert "Bo Notyet" in listed and "Cy Noroles" in listed
    assert "Ada" not in listed and "T. Eacher" not in listed and "Dee Signer" not in listed
    flags = {m.user.sub: (m.is_learner, m.is_instructor) for m in Membership.objects.select_related("user")}
    assert flags["student-1"] == (True, False), "the sync must keep the flags the launch recorded"
    assert flags["teacher-1"] == (False, True)
    assert flags["student-2"] == (True, False) and flags["dev-1"] == (False, False)


def test_opening_the_launch_url_directly_explains_what_it_is(client):
    page = client.get("/lti/launch/")
    assert page.status_code == 405 and page["Allow"] == "POST"
    text = page.content.decode()
    assert "kdgrade cannot open this" in text and "Open the activity from your course" in text
    assert LaunchSession.objects.count() == 0


def test_deep_linking_without_a_course_opens_the_picker(lms, live_server, assignment):
    page = Browser().launch(lms, LaunchSpec("teacher-1", [ROLE_INSTRUCTOR], deep_linking=True,
                                            drop_claims=(C + "context",)))
    assert page.status_code == 200 and "/lti/deep-link/" in page.url, page.text[:300]
    session = session_for(ls_token(page.url))
    assert session.context.context_id.startswith(NO_CONTEXT_PREFIX) and session.is_instructor
