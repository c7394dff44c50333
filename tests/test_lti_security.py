"""The security table: what bad input gets.  Every row is refused with a clear 4xx page (never a 500,
never a session), is logged, and changes nothing.  The platform side is lti1p3platform (a real
LTI 1.3 platform library); the bad launches are ones it signs with overridden claims, a key it does
not publish, or a replayed token/state."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
import pytest
import requests

from devtools.devplatform import ROLE_INSTRUCTOR, ROLE_LEARNER, DevPlatform, LaunchSpec, register_in_kdgrade
from devtools.testing import Browser, ls_token
from kdgrade.lti.models import (
    Context,
    GradeOutbox,
    LaunchSession,
    LtiAssignment,
    LtiUser,
    Membership,
    ResourceLink,
)
from scoring.models import Assignment, Item, Score, Submission

pytestmark = pytest.mark.django_db(transaction=True)

MT = "https://purl.imsglobal.org/spec/lti/claim/message_type"
VERSION = "https://purl.imsglobal.org/spec/lti/claim/version"
DEPLOYMENT = "https://purl.imsglobal.org/spec/lti/claim/deployment_id"
TARGET = "https://purl.imsglobal.org/spec/lti/claim/target_link_uri"
DL_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"


@dataclass
class Env:
    lms: DevPlatform
    base: str
    a1: Assignment  # course-1
    a2: Assignment  # course-2

    def spec(self, user: str = "student-1", roles: list[str] | None = None, assignment: Assignment | None = None,
             **kw: object) -> LaunchSpec:
        a = assignment or self.a1
        context = a.lti.context.context_id
        return LaunchSpec(user_id=user, roles=roles or [ROLE_LEARNER], context_id=context,
                          resource_link_id=f"link-{context}", custom={"kdgrade_assignment": str(a.pk)}, **kw)

    def launched(self, **kw: object) -> tuple[Browser, str]:
        """A good launch; returns the browser and its launch token."""
        browser = Browser()
        page = browser.launch(self.lms, self.spec(**kw))
        assert page.status_code == 200, page.text[:300]
        return browser, ls_token(page.url)


@pytest.fixture
def env(live_server):
    with DevPlatform(live_server.url) as lms:
        platform = register_in_kdgrade(lms)
        item = Item.objects.create(external_id="sec-item", title="Item", question="Q?", score_min=0, score_max=2)
        assignments = []
        for ctx in ("course-1", "course-2"):
            context = Context.objects.create(platform=platform, context_id=ctx)
            a = Assignment.objects.create(item=item, title=f"A {ctx}")
            LtiAssignment.objects.create(assignment=a, context=context)
            assignments.append(a)
        yield Env(lms, live_server.url, *assignments)


def _bad_launch(**spec_kw: object) -> Callable[[Env], Callable[[], requests.Response]]:
    def setup(env: Env) -> Callable[[], requests.Response]:
        return lambda: Browser().launch(env.lms, env.spec(**spec_kw))
    return setup


def _login_with(**override: str) -> Callable[[Env], Callable[[], requests.Response]]:
    def setup(env: Env) -> Callable[[], requests.Response]:
        def attack() -> requests.Response:
            url = env.lms.login_url(env.spec())
            parts = urlsplit(url)
            params = dict(parse_qsl(parts.query))
            params.update(override)
            return requests.get(f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(params)}",
                                allow_redirects=False, timeout=30)
        return attack
    return setup


def _replayed_nonce(env: Env) -> Callable[[], requests.Response]:
    first = Browser()
    assert first.launch(env.lms, env.spec()).status_code == 200
    old_form = dict(first.form)

    def attack() -> requests.Response:
        # A fresh login (a new, valid state) carrying the old id_token: its nonce is not this state's.
        attacker = Browser()
        attacker.start_launch(env.lms, env.spec())
        return attacker.post_launch({**old_form, "state": attacker.form["state"]})
    return attack


def _replayed_launch(env: Env) -> Callable[[], requests.Response]:
    first = Browser()
    assert first.launch(env.lms, env.spec()).status_code == 200
    form = dict(first.form)
    return lambda: Browser().post_launch(form)


def _mismatched_state(env: Env) -> Callable[[], requests.Response]:
    browser = Browser()
    browser.start_launch(env.lms, env.spec())
    return lambda: browser.post_launch({**browser.form, "state": secrets.token_urlsafe(32)})


def _state_cookie_of_another_browser(env: Env) -> Callable[[], requests.Response]:
    browser = Browser()
    browser.start_launch(env.lms, env.spec())
    for cookie in browser.http.cookies:
        if cookie.name.startswith("lti1p3-state-"):
            cookie.value = secrets.token_urlsafe(32)
    return lambda: browser.post_launch()


Attack = Callable[[Env], Callable[[], requests.Response]]


def _resigned(*, rogue: bool = False, unsigned: bool = False, spec: dict | None = None,
              edit: Callable[[dict], None] | None = None, **claims: object) -> Attack:
    """The platform's launch (of `spec`) with `claims` changed (or `edit`ed) and signed again, by the
    platform's own key (claims only a test platform would sign) or by another key under the platform's
    key id (`rogue`), or not signed at all (`unsigned`: alg "none")."""
    def setup(env: Env) -> Callable[[], requests.Response]:
        browser = Browser()
        browser.start_launch(env.lms, env.spec(**(spec or {})))
        good = browser.form["id_token"]
        body = {**jwt.decode(good, options={"verify_signature": False}), **claims}
        if edit:
            edit(body)
        key = env.lms.rogue_private_pem if rogue else env.lms.private_pem
        header = jwt.get_unverified_header(good)
        token = (jwt.encode(body, None, algorithm="none", headers={"kid": header["kid"]}) if unsigned
                 else jwt.encode(body, key, algorithm="RS256", headers=header))
        return lambda: browser.post_launch({**browser.form, "id_token": token})
    return setup


def _garbage_token(env: Env) -> Callable[[], requests.Response]:
    browser = Browser()
    browser.start_launch(env.lms, env.spec())
    return lambda: browser.post_launch({**browser.form, "id_token": "not.a-jwt"})


def _as_learner(path: Callable[[Env, dict], str], method: str = "GET",
                data: Callable[[Env, dict], dict] | None = None, user: str = "student-1",
                course: int = 1, roles: list[str] | None = None) -> Callable[[Env], Callable[[], requests.Response]]:
    """A launched user (course-`course`) tries a page; `facts` carries ids made in the setup."""
    def setup(env: Env) -> Callable[[], requests.Response]:
        facts = _answers_in_course_1(env)
        browser, token = env.launched(user=user, roles=roles or [ROLE_LEARNER],
                                      assignment=env.a1 if course == 1 else env.a2)
        facts["ls"] = token

        def attack() -> requests.Response:
            url = env.base + path(env, facts)
            if method == "POST":
                return browser.post(url, {"ls": token, **(data(env, facts) if data else {})})
            return browser.get(url + ("&" if "?" in url else "?") + f"ls={token}")
        return attack
    return setup


def _answers_in_course_1(env: Env) -> dict:
    """Two learners' answers in course 1 (made directly: scoring is not what this table is about)."""
    facts = {}
    for who in ("student-1", "student-2"):
        sub = Submission.objects.create(item=env.a1.item, assignment=env.a1, learner_ref=who, response="metal conducts",
                                        source=Submission.Source.LTI)
        score = Score.objects.create(submission=sub, model_score=1, confidence=0.9)
        facts[who] = (sub.pk, score.pk)
    other = Assignment.objects.create(item=env.a1.item, title="Another activity of course 1")
    LtiAssignment.objects.create(assignment=other, context=env.a1.lti.context)
    facts["other"] = other.pk
    return facts


CASES: dict[str, tuple[Callable[[Env], Callable[[], requests.Response]], int, str]] = {
    # name: (setup returning the attack, expected status, words the page must say)
    "signed by a key the platform does not publish": (_bad_launch(rogue_key=True), 403, "public key"),
    "signed by another key under the platform's key id": (_resigned(rogue=True), 403,
                                                          "Signature verification failed"),
    "not signed (alg none) under the platform's key id": (_resigned(unsigned=True), 403,
                                                           "Unable to find public key"),
    "for another audience (client id)": (_bad_launch(extra_claims={"aud": "another-tool"}), 403, "audience (aud)"),
    "issued to another tool (azp) as well as to kdgrade": (
        _bad_launch(extra_claims={"aud": ["kdgrade-client", "another-tool"], "azp": "another-tool"}), 403,
        "authorized party (azp)"),
    "expired id_token": (_bad_launch(expiration=-120), 403, "expired"),
    "id_token not yet valid (nbf)": (_bad_launch(extra_claims={"nbf": int(time.time()) + 3600}), 403,
                                     "not yet valid (nbf)"),
    "id_token issued in the future (iat)": (_resigned(iat=int(time.time()) + 3600), 403,
                                            "not yet valid (iat)"),
    "replayed nonce under a fresh state": (_replayed_nonce, 403, "Nonce"),
    "replayed launch (same state and token)": (_replayed_launch, 400, "does not match a login"),
    "state that no login issued": (_mismatched_state, 400, "does not match a login"),
    "state cookie that does not match": (_state_cookie_of_another_browser, 400, "does not match this browser"),
    "unknown issuer at login": (_login_with(iss="https://unknown-lms.example"), 403, "not registered"),
    "unknown issuer in the id_token": (_bad_launch(extra_claims={"iss": "https://unknown-lms.example"}), 403,
                                       "issuer (iss) is not a platform registered"),
    "unknown deployment at login": (_login_with(lti_deployment_id="no-such-deployment"), 403, "deployment"),
    "unknown deployment in the id_token": (_bad_launch(extra_claims={DEPLOYMENT: "no-such-deployment"}), 403,
                                           "deployment"),
    "missing message type": (_bad_launch(extra_claims={MT: None}), 403, "message type"),
    "wrong message type": (_bad_launch(extra_claims={MT: "LtiSomethingElseRequest"}), 403, "message type"),
    "wrong LTI version": (_bad_launch(extra_claims={VERSION: "1.1.0"}), 403, "version"),
    "target link outside kdgrade (login)": (_login_with(target_link_uri="https://evil.example/lti/launch/"), 400,
                                            "not a kdgrade page"),
    "target link in the id_token other than the login's": (
        _bad_launch(extra_claims={TARGET: "https://evil.example/lti/launch/"}), 400, "target link"),
    "id_token that is not a JWT": (_garbage_token, 403, "JWT must contain 3 parts"),
    "learner sends a Deep Linking request (adding content)": (_bad_launch(deep_linking=True), 403,
                                                               "Only instructors"),
    "Deep Linking request whose return URL is not http(s)": (
        _resigned(spec={"user": "teacher-1", "roles": [ROLE_INSTRUCTOR], "deep_linking": True},
                  edit=lambda body: body[DL_SETTINGS].update(deep_link_return_url="javascript:alert(1)")), 400,
        "no usable return URL"),
    "learner opens the instructor's review page": (
        _as_learner(lambda e, f: f"/lti/a/{e.a1.pk}/review/"), 403, "instructors"),
    "learner posts an override": (
        _as_learner(lambda e, f: f"/lti/a/{e.a1.pk}/score/", "POST",
                    lambda e, f: {"score_id": f["student-2"][1], "value": 2, "release": "on"}), 403,
        "instructors"),
    "learner opens another learner's submission": (
        _as_learner(lambda e, f: f"/lti/submission/{f['student-2'][0]}/"), 403, "your own"),
    "learner answers an activity of the course other than the one launched (id in the URL)": (
        _as_learner(lambda e, f: f"/lti/a/{f['other']}/", "POST", lambda e, f: {"response": "hi"}), 403,
        "not the activity you opened"),
    "learner of another course answers this course's assignment": (
        _as_learner(lambda e, f: f"/lti/a/{e.a1.pk}/", "POST", lambda e, f: {"response": "hi"}, user="student-x",
                    course=2), 404, "not part of the course"),
    "instructor of another course opens this course's review page": (
        _as_learner(lambda e, f: f"/lti/a/{e.a1.pk}/review/", user="teacher-x", course=2, roles=[ROLE_INSTRUCTOR]),
        404, "not part of the course"),
    "instructor of another course opens a submission of this course": (
        _as_learner(lambda e, f: f"/lti/submission/{f['student-1'][0]}/", user="teacher-x", course=2,
                    roles=[ROLE_INSTRUCTOR]), 404, "No such answer"),
    "instructor of another course overrides a score of this course (id in the form)": (
        _as_learner(lambda e, f: f"/lti/a/{e.a2.pk}/score/", "POST",
                    lambda e, f: {"score_id": f["student-1"][1], "value": 2, "release": "on"},
                    user="teacher-x", course=2, roles=[ROLE_INSTRUCTOR]), 404, "No such score"),
    "page form posted without the launch token": (
        _as_learner(lambda e, f: f"/lti/a/{e.a1.pk}/", "POST", lambda e, f: {"ls": "", "response": "x"}), 401,
        "session has ended"),
}

MODELS = [LaunchSession, Context, LtiUser, Membership, ResourceLink, Submission, Score, GradeOutbox]


def _snapshot() -> dict:
    state = {m.__name__: m.objects.count() for m in MODELS}
    state["scores"] = sorted(Score.objects.values_list("pk", "final_score", "override_score", "passback_state"))
    return state


@pytest.mark.parametrize("case", list(CASES))
def test_refused_with_a_clear_4xx_logged_and_nothing_changes(env, case, caplog):
    setup, status, words = CASES[case]
    attack = setup(env)
    before = _snapshot()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kdgrade.lti"):
        resp = attack()
    assert resp.status_code == status, f"{case}: got {resp.status_code}: {resp.text[:400]}"
    assert words.lower() in resp.text.lower(), resp.text[:400]
    assert "kdgrade cannot open this" in resp.text
    assert "sessionid" not in resp.cookies and not any(r.cookies.get("sessionid") for r in resp.history)
    assert _snapshot() == before, "a refused request changed data"
    refusals = [r for r in caplog.records if r.name == "kdgrade.lti.views" and "refused" in r.getMessage()]
    assert refusals and refusals[-1].levelno == logging.WARNING


@pytest.mark.parametrize(("method", "path", "data", "status"), [
    ("GET", "/lti/launch/", None, 405),
    ("POST", "/lti/launch/", {}, 400),
    ("POST", "/lti/launch/", {"state": "x", "id_token": "y"}, 400),
    ("GET", "/lti/login/", None, 400),
    ("POST", "/lti/login/", {"iss": "https://x.example", "login_hint": "u", "target_link_uri": "/lti/launch/"}, 403),
    ("GET", "/lti/a/1/", None, 401),
    ("GET", "/lti/a/1/review/?ls=forged", None, 401),
    ("POST", "/lti/a/1/release-all/", {"ls": "forged"}, 401),
    ("POST", "/lti/a/1/review/", {"ls": "forged"}, 405),
    ("GET", "/lti/submission/1/?ls=forged", None, 401),
    ("GET", "/lti/deep-link/", None, 401),
])
def test_odd_requests_get_a_4xx_never_a_500(client, method, path, data, status):
    resp = client.get(path) if method == "GET" else client.post(path, data or {})
    assert resp.status_code == status
    assert not LaunchSession.objects.exists()


def test_bad_form_values_on_the_review_page_are_a_message_not_a_500(env):
    browser, token = env.launched(user="teacher-1", roles=[ROLE_INSTRUCTOR])
    url = f"{env.base}/lti/a/{env.a1.pk}"
    before = _snapshot()
    for action, data, message in (
            ("score", {"score_id": "abc", "value": "1"}, "A number was expected"),
            ("score", {"score_id": "1", "value": "99"}, "Choose one of the rubric levels"),
            ("accept-many", {}, "Select at least one answer"),
            ("comment", {"submission_id": "1", "comment": "  "}, "Write a comment first"),
            ("retry", {"outbox_id": "999999"}, "No such grade post"),
            ("settings", {"release": "whenever", "counts": "latest"}, "Unknown release mode"),
            ("settings", {"release": "immediate", "counts": "latest", "max_attempts": "0"}, "whole number")):
        resp = browser.post(f"{url}/{action}/", {"ls": token, **data})
        assert resp.status_code in (200, 404), (action, data, resp.status_code)
        assert message in resp.text, (action, data, resp.text[:300])
    assert _snapshot() == before


def test_the_resigned_launch_unchanged_is_accepted(env):
    """Control for the re-signed rows: re-signing alone is not what gets them refused."""
    resp = _resigned()(env)()
    assert resp.status_code == 200 and 'name="response"' in resp.text, resp.text[:400]
    dl = _resigned(spec={"user": "teacher-1", "roles": [ROLE_INSTRUCTOR], "deep_linking": True})(env)()
    assert dl.status_code == 200 and "/lti/deep-link/" in dl.url, dl.text[:400]
