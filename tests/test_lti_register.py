"""LTI Dynamic Registration, the development LMS launcher and the admin's platform presets.

lti1p3platform has no Dynamic Registration: the platform side of it in devtools.devplatform is
hand-written after the IMS specification (a fake, named as such); the launches after it are the
library's."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from devtools.devplatform import ROLE_INSTRUCTOR, DevPlatform, LaunchSpec
from devtools.testing import Browser, parse_form
from kdgrade.lti import config
from kdgrade.lti.config import registration_url
from kdgrade.lti.models import Platform, RegistrationKey
from scoring.models import Item, ModelVersion

pytestmark = pytest.mark.django_db(transaction=True)


def test_dynamic_registration_registers_kdgrade_and_the_platform_then_launches(live_server, settings):
    settings.PUBLIC_URL = live_server.url
    with DevPlatform(live_server.url) as lms:
        start = lms.registration_start_url(registration_url(live_server.url, created_by="test"))
        page = requests.get(start, timeout=30)
        assert page.status_code == 200, page.text[:500]
        assert "org.imsglobal.lti.close" in page.text
        # What kdgrade sent the platform: its stable URLs and the services it needs.
        reg = lms.tool_registration
        assert reg["initiate_login_uri"] == f"{live_server.url}/lti/login/"
        assert reg["redirect_uris"] == [f"{live_server.url}/lti/launch/"]
        platform = Platform.objects.get(issuer=lms.issuer)
        # Its own keyset URL, publishing its own key only.
        assert reg["jwks_uri"] == f"{live_server.url}/lti/jwks/{platform.jwks_id}/" and platform.own_key
        assert "https://purl.imsglobal.org/spec/lti-ags/scope/score" in reg["scope"]
        # What kdgrade recorded: the platform with the client id it was given, and the deployment.
        platform = Platform.objects.get(issuer=lms.issuer)
        assert platform.client_id == lms.client_id and platform.client_id.startswith("dyn-")
        assert platform.token_url == f"{lms.base}/token" and platform.keyset_url == f"{lms.base}/jwks"
        assert list(platform.deployments.values_list("deployment_id", flat=True)) == [lms.deployment_id]
        # And the platform can now launch kdgrade (an instructor adding content: Deep Linking).
        page = Browser().launch(lms, LaunchSpec("teacher-1", [ROLE_INSTRUCTOR], deep_linking=True))
        assert page.status_code == 200 and "/lti/deep-link/" in page.url


def test_dynamic_registration_with_a_wrong_token_registers_nothing(live_server):
    with DevPlatform(live_server.url) as lms:
        lms.registration_token = "not-the-one-in-the-url"
        url = lms.registration_start_url(registration_url(live_server.url, created_by="test")).replace(
            "not-the-one-in-the-url", "forged")
        page = requests.get(url, timeout=30)
        assert page.status_code == 400 and "could not get a usable answer" in page.text
        assert not Platform.objects.exists()


@pytest.mark.parametrize("key", ["", "forged:key:value", "expired", "used"])
def test_dynamic_registration_without_a_valid_key_registers_nothing(live_server, key):
    if key in ("expired", "used"):
        minted = registration_url(live_server.url, created_by="test").split("key=", 1)[1]
        RegistrationKey.objects.update(**({"expires_at": timezone.now() - timedelta(seconds=1)} if key == "expired"
                                          else {"used_at": timezone.now()}))
        key = minted
    with DevPlatform(live_server.url) as lms:
        page = requests.get(lms.registration_start_url(f"{live_server.url}/lti/register/?key={key}"), timeout=30)
        assert page.status_code == 403
        assert "registration URL" in page.text
        assert lms.tool_registration is None or lms.tool_registration == {}, "kdgrade contacted the platform"
        assert not Platform.objects.exists()


def test_admin_makes_a_single_use_registration_url_on_request_only(admin_client):
    page = admin_client.get("/admin/lti/platform/")
    assert page.status_code == 200 and "Create a registration URL" in page.content.decode()
    assert not RegistrationKey.objects.exists(), "opening the list must not mint keys"
    page = admin_client.post("/admin/lti/platform/registration-url/")
    assert page.status_code == 200
    key = page.context["registration_url"].split("key=", 1)[1]
    config.use_registration_key(key)  # good once
    with pytest.raises(config.RegistrationFailed, match="already used"):
        config.use_registration_key(key)


def test_register_without_openid_configuration_explains_itself(client):
    page = client.get("/lti/register/")
    assert page.status_code == 400 and b"Dynamic Registration starts from the LMS" in page.content


def test_development_lms_page_launches_kdgrade_as_teacher_and_student(live_server, settings):
    settings.PUBLIC_URL = live_server.url
    item = Item.objects.create(external_id="dev-item", title="Dev item", question="Why?", score_min=0, score_max=2)
    ModelVersion.objects.create(item=item, version=1, status=ModelVersion.Status.ACTIVE)
    from devtools.devplatform import register_in_kdgrade

    with DevPlatform(live_server.url, client_id="dev-lms") as lms:
        register_in_kdgrade(lms)
        browser = Browser()
        home = browser.get(f"{lms.base}/")
        assert "Add a kdgrade question" in home.text
        # The launcher page's link goes through kdgrade's login to the platform's auto-submitting form.
        picker = browser.post_launch(parse_form(browser.get(f"{lms.base}/launch?as=teacher&dl=1").text))
        assert picker.status_code == 200 and "Dev item" in picker.text
        token = picker.url.split("ls=")[1]
        back = browser.post(picker.url.split("?")[0], {"ls": token, "item": item.pk, "title": "Dev activity",
                                                       "release": "immediate"})
        form = parse_form(back.text)
        assert browser.http.post(form["_action"], data={"JWT": form["JWT"]}, timeout=30).status_code == 200
        home = browser.get(f"{lms.base}/")
        assert "Dev activity" in home.text and "open as student" in home.text
        other = Browser()
        student = other.post_launch(parse_form(other.get(f"{lms.base}/launch?as=student&link=dl-link-1").text))
        assert student.status_code == 200 and 'name="response"' in student.text


def test_admin_canvas_preset_fills_the_canvas_endpoints(admin_client):
    resp = admin_client.post("/admin/lti/platform/add/", {
        "name": "District Canvas", "preset": "canvas", "client_id": "10000000000001", "is_active": "on",
        "deployments-TOTAL_FORMS": "1", "deployments-INITIAL_FORMS": "0", "deployments-0-deployment_id": "1:abc",
        "deployments-0-is_active": "on",
    })
    assert resp.status_code == 302, resp.content[:2000]
    p = Platform.objects.get(client_id="10000000000001")
    assert p.issuer == "https://canvas.instructure.com"
    assert p.auth_url == "https://sso.canvaslms.com/api/lti/authorize_redirect"
    assert p.token_url == "https://sso.canvaslms.com/login/oauth2/token"
    assert p.keyset_url == "https://sso.canvaslms.com/api/lti/security/jwks"
    assert p.deployments.get().deployment_id == "1:abc"


def test_tool_private_keys_are_not_shown_in_the_admin(admin_client):
    from kdgrade.lti.keys import signing_key

    key = signing_key()
    page = admin_client.get(f"/admin/lti/toolkey/{key.pk}/change/")
    assert page.status_code == 200
    assert "PRIVATE KEY" not in page.content.decode()


def test_launch_tokens_are_not_shown_in_the_admin(admin_client):
    from kdgrade.lti.models import Context, LaunchSession, LtiUser
    from kdgrade.lti.sessions import start_session

    platform = Platform.objects.create(name="P", issuer="https://lms.example", client_id="c", auth_url="https://a.example",
                                       token_url="https://t.example", keyset_url="https://k.example")
    session = start_session(platform=platform, user=LtiUser.objects.create(platform=platform, sub="u"),
                            context=Context.objects.create(platform=platform, context_id="c1"))
    assert session.token and LaunchSession.objects.get(pk=session.pk).token_hash != session.token
    for url in ("/admin/lti/launchsession/", f"/admin/lti/launchsession/{session.pk}/change/"):
        page = admin_client.get(url)
        assert page.status_code == 200 and session.token not in page.content.decode()
    assert admin_client.get("/admin/lti/gradeoutbox/add/").status_code == 403
