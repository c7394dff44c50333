"""One platform can never act for another (issue 14): per-platform keys, client ids held by one issuer,
token endpoints on the issuer's host; and the Dynamic Registration key (single use, short, minted only
by users allowed to add platforms; a deactivated platform stays off).

Both platforms are lti1p3platform LMSs on 127.0.0.1 (devtools.devplatform); the "rogue" one is the
same library claiming, in Dynamic Registration or in an older registration row, the district's client
id and token audience."""

from __future__ import annotations

import html

import jwt
import pytest
import requests
from django.contrib.auth.models import Permission, User

from devtools.devplatform import ROLE_LEARNER, DevPlatform, register_in_kdgrade
from kdgrade.lti import ags, config, roster
from kdgrade.lti.models import Context, Deployment, Platform, RegistrationKey

pytestmark = pytest.mark.django_db(transaction=True)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _register_via_dr(lms: DevPlatform, base: str) -> requests.Response:
    return requests.get(lms.registration_start_url(config.registration_url(base, created_by="test")), timeout=30)


def _text(page: requests.Response) -> str:
    return html.unescape(page.text)


def test_a_rogue_platform_claiming_another_platforms_client_id_and_audience_gets_nothing_usable(
        live_server, settings):
    settings.PUBLIC_URL = live_server.url
    with DevPlatform(live_server.url, client_id="district-canvas-10000001") as district, \
            DevPlatform(live_server.url) as rogue:
        home = register_in_kdgrade(district, name="District LMS")
        district_token_url = f"{district.base}/token"
        # Control: what kdgrade signs for the district does get a token there.
        assert ags.access_token(home, [ags.SCOPE_NRPS])

        # 1. Dynamic Registration claiming the district's token audience: refused before registering.
        rogue.claimed_client_id = district.client_id
        rogue.claimed_token_audience = district_token_url
        page = _register_via_dr(rogue, live_server.url)
        assert page.status_code == 400 and "not on its issuer's host" in _text(page)
        assert rogue.tool_registration is None
        # ... and claiming only the district's client id: refused once the client id is known.
        rogue.claimed_token_audience = None
        page = _register_via_dr(rogue, live_server.url)
        assert page.status_code == 400 and "already registered for another platform" in _text(page)
        assert list(Platform.objects.values_list("pk", flat=True)) == [home.pk]
        # The admin's and the command's path refuse it too.
        with pytest.raises(config.RegistrationFailed, match="must be on the issuer"):
            config.add_platform(issuer=rogue.issuer, client_id="other", deployment_ids=["d"],
                                auth_url=f"{rogue.base}/auth", token_url=district_token_url,
                                keyset_url=f"{rogue.base}/jwks")
        with pytest.raises(config.RegistrationFailed, match="already registered for another platform"):
            register_in_kdgrade(rogue)

        # 2. Even a rogue row that got in (written before these checks existed) gets nothing usable: the
        # roster update of its course makes kdgrade sign an assertion with exactly the district's client
        # id and audience, but with the rogue platform's own key, which the district never trusts.
        bad = Platform.objects.create(name="Rogue", issuer=rogue.issuer, client_id=district.client_id,
                                      auth_url=f"{rogue.base}/auth", token_url=f"{rogue.base}/token",
                                      keyset_url=f"{rogue.base}/jwks", token_audience=district_token_url)
        Deployment.objects.create(platform=bad, deployment_id=rogue.deployment_id)
        course = Context.objects.create(platform=bad, context_id="rogue-course",
                                        memberships_url=f"{rogue.base}/nrps/rogue-course/memberships")
        rogue.set_members("rogue-course", [{"user_id": "x", "name": "X", "roles": [ROLE_LEARNER]}])
        with pytest.raises(ags.ServiceError):
            roster.sync_roster(course.pk)  # the rogue LMS does not know kdgrade's key for it either
        assertion = rogue.gradebook.token_forms[-1]["client_assertion"]
        claims = jwt.decode(assertion, options={"verify_signature": False})
        assert claims["iss"] == claims["sub"] == district.client_id and claims["aud"] == district_token_url
        # Not verifiable with the keys kdgrade publishes for the district ...
        district_keys = requests.get(district.tool_jwks_url, timeout=10).json()["keys"]
        kid = jwt.get_unverified_header(assertion)["kid"]
        assert kid not in {k["kid"] for k in district_keys}
        # ... nor on the shared keyset of older registrations ...
        assert kid not in {k["kid"] for k in requests.get(f"{live_server.url}/lti/jwks/", timeout=10).json()["keys"]}
        # ... and the district's token endpoint refuses it.
        before = district.gradebook.token_requests
        replay = requests.post(district_token_url, data={
            "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion, "scope": ags.SCOPE_NRPS}, timeout=30)
        assert district.gradebook.token_requests == before + 1
        assert replay.status_code == 400 and "access_token" not in replay.text


def test_each_platform_has_its_own_keyset_url_and_the_shared_one_stays_for_older_registrations(live_server):
    with DevPlatform(live_server.url, client_id="a") as one, DevPlatform(live_server.url, client_id="b") as two:
        p1, p2 = register_in_kdgrade(one), register_in_kdgrade(two)
        assert ags.access_token(p1, [ags.SCOPE_SCORE]) and ags.access_token(p2, [ags.SCOPE_SCORE])
        k1 = {k["kid"] for k in requests.get(one.tool_jwks_url, timeout=10).json()["keys"]}
        k2 = {k["kid"] for k in requests.get(two.tool_jwks_url, timeout=10).json()["keys"]}
        assert k1 and k2 and not k1 & k2
        # An older registration (own_key off) signs with the shared set on /lti/jwks/ and still works.
        Platform.objects.filter(pk=p2.pk).update(own_key=False)
        p2.refresh_from_db()
        two.tool_jwks_url = f"{live_server.url}/lti/jwks/"
        assert ags.access_token(p2, [ags.SCOPE_LINEITEM], refresh=True)
        shared = {k["kid"] for k in requests.get(two.tool_jwks_url, timeout=10).json()["keys"]}
        assert not shared & k1
        assert requests.get(f"{live_server.url}/lti/jwks/not-a-platform/", timeout=10).status_code == 404


def test_registration_key_is_single_use_and_short_lived(live_server, settings):
    settings.PUBLIC_URL = live_server.url
    url = config.registration_url(live_server.url, created_by="test")
    row = RegistrationKey.objects.get()
    minutes = (row.expires_at - row.created_at).total_seconds() / 60
    assert 59 <= minutes <= 61
    with DevPlatform(live_server.url) as first, DevPlatform(live_server.url) as second:
        assert requests.get(first.registration_start_url(url), timeout=30).status_code == 200
        again = requests.get(second.registration_start_url(url), timeout=30)
        assert again.status_code == 403 and "already used" in _text(again)
        assert second.tool_registration is None, "kdgrade contacted the platform with a spent key"
    assert Platform.objects.count() == 1


def test_only_users_allowed_to_add_platforms_mint_registration_urls(client):
    viewer = User.objects.create_user("viewer", password="pw-viewer-1", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_platform"))
    client.force_login(viewer)
    page = client.get("/admin/lti/platform/")
    assert page.status_code == 200 and "Create a registration URL" not in page.content.decode()
    assert client.post("/admin/lti/platform/registration-url/").status_code == 403
    assert not RegistrationKey.objects.exists()
    viewer.user_permissions.add(Permission.objects.get(codename="add_platform"))
    page = client.post("/admin/lti/platform/registration-url/")
    assert page.status_code == 200 and "/lti/register/?key=" in page.content.decode()
    assert RegistrationKey.objects.get().created_by == "viewer"


def test_re_registering_a_deactivated_platform_leaves_it_off_and_unchanged(live_server, settings):
    settings.PUBLIC_URL = live_server.url
    with DevPlatform(live_server.url) as lms:
        assert _register_via_dr(lms, live_server.url).status_code == 200
        platform = Platform.objects.get()
        Platform.objects.filter(pk=platform.pk).update(is_active=False, auth_url=f"{lms.base}/auth?kept=1")
        lms.claimed_client_id = platform.client_id  # the LMS registers the same client again
        page = _register_via_dr(lms, live_server.url)
        assert page.status_code == 400 and "deactivated" in _text(page)
        platform.refresh_from_db()
        assert not platform.is_active and platform.auth_url == f"{lms.base}/auth?kept=1"
        assert Platform.objects.count() == 1
