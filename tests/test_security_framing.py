"""Framing and launch tokens (issue 14): in production only 'self' and the registered platforms may frame
kdgrade; every request must carry the launch token; the token is stored hashed, lives 2 hours at most
and is replaced every 15 minutes (the previous one good for a short grace period)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from devtools.devplatform import ROLE_LEARNER, DevPlatform, LaunchSpec, register_in_kdgrade
from devtools.testing import Browser, ls_token
from kdgrade.lti.models import Context, LaunchSession, LtiAssignment, Platform
from scoring.models import Assignment, Item

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def launched(live_server):
    with DevPlatform(live_server.url) as lms:
        platform = register_in_kdgrade(lms)
        item = Item.objects.create(external_id="frame-item", title="T", question="Why?", score_min=0, score_max=2)
        context = Context.objects.create(platform=platform, context_id="course-1")
        assignment = Assignment.objects.create(item=item, title="Q")
        LtiAssignment.objects.create(assignment=assignment, context=context)
        browser = Browser()
        page = browser.launch(lms, LaunchSpec("student-1", [ROLE_LEARNER],
                                              custom={"kdgrade_assignment": str(assignment.pk)}))
        assert page.status_code == 200
        yield lms, platform, browser, page


def test_production_frame_ancestors_are_the_registered_platforms(launched, settings):
    lms, _platform, browser, page = launched
    settings.FRAME_ANCESTORS = None  # production's default: derived from the platforms
    cache.delete("lti:frame-ancestors")
    Platform.objects.create(name="Canvas", issuer="https://canvas.instructure.com", client_id="170000000000042",
                            auth_url="https://sso.canvaslms.com/api/lti/authorize_redirect",
                            token_url="https://sso.canvaslms.com/login/oauth2/token",
                            keyset_url="https://sso.canvaslms.com/api/lti/security/jwks",
                            frame_origins="https://district.instructure.com")
    Platform.objects.create(name="Old Moodle", issuer="https://old-moodle.example.org", client_id="m",
                            auth_url="https://old-moodle.example.org/mod/lti/auth.php",
                            token_url="https://old-moodle.example.org/mod/lti/token.php",
                            keyset_url="https://old-moodle.example.org/mod/lti/certs.php", is_active=False)
    csp = browser.get(page.url).headers["Content-Security-Policy"]
    sources = csp.removeprefix("frame-ancestors ").split()
    assert sources[0] == "'self'"
    assert {"https://canvas.instructure.com", "https://sso.canvaslms.com", "https://district.instructure.com",
            lms.base} <= set(sources)
    assert "https:" not in sources and "*" not in sources
    assert not any("old-moodle" in s for s in sources), "a deactivated platform may not frame kdgrade"
    # The admin and the API are never framed.
    assert browser.get(f"{lms.tool_base}/admin/login/").headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert browser.get(f"{lms.tool_base}/api/v1/items/").headers["Content-Security-Policy"] == \
        "frame-ancestors 'none'"


def test_production_settings_no_longer_allow_any_https_site(settings):
    from kdgrade.lti.framing import origin

    assert origin("https://lms.example.org/path?x=1") == "https://lms.example.org"
    assert origin("https://evil.example.org; script-src *") is None
    settings.PRODUCTION = True
    assert origin("http://lms.example.org/") is None


def test_launch_token_is_stored_hashed_and_lives_two_hours_at_most(launched):
    _, _, _, page = launched
    token = ls_token(page.url)
    session = LaunchSession.objects.get()
    assert session.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert session.expires_at - session.created_at <= timedelta(hours=2, seconds=5)
    # Nowhere in the table in plain text.
    with connection.cursor() as cur:
        cur.execute("SELECT * FROM lti_launchsession")
        rows = cur.fetchall()
    assert token not in repr(rows)


def test_launch_token_is_rotated_and_the_old_one_expires_after_a_grace_period(launched, settings):
    _, _, browser, page = launched
    old = ls_token(page.url)
    url = page.url.split("?")[0]
    LaunchSession.objects.update(token_issued_at=timezone.now() - timedelta(minutes=16))
    rotated = browser.get(f"{url}?ls={old}")
    assert rotated.status_code == 200
    new = rotated.text.split('name="ls" value="', 1)[1].split('"', 1)[0]
    assert new and new != old
    assert browser.get(f"{url}?ls={new}").status_code == 200
    assert browser.get(f"{url}?ls={old}").status_code == 200  # another tab, within the grace period
    LaunchSession.objects.update(previous_valid_until=timezone.now() - timedelta(seconds=1))
    assert browser.get(f"{url}?ls={old}").status_code == 401
    assert browser.get(f"{url}?ls={new}").status_code == 200
    # And no token outlives the session.
    LaunchSession.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert browser.get(f"{url}?ls={new}").status_code == 401
