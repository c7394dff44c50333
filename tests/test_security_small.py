"""The smaller rows of issue 14 (roles are issue 13's): course copy only within a platform, rate limits
(resubmission in immediate mode, admin logins, keyset refetch for unknown key ids; API throttling is in
test_security_api.py), DJANGO_DEBUG ignored in production, the tool's private keys encrypted at rest."""

from __future__ import annotations

import hashlib
import importlib
import sys

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core.cache import cache
from jwcrypto.jwk import JWK

from devtools.devplatform import ROLE_LEARNER, DevPlatform, LaunchSpec, register_in_kdgrade
from devtools.testing import Browser, ls_token
from kdgrade.lti import keys
from kdgrade.lti.models import Context, LtiAssignment, ResourceLink, ToolKey
from scoring.models import Assignment, Item, Submission
from tests.test_foundation_config import assert_one_clear_line, manage, run

FERNET_KEY = "yMPW0T9W8l3GQH5wLbTtuWdN8BXCVKzv3qKJ2gq5E0c="
PRODUCTION = {"KDGRADE_MODE": "production", "SECRET_KEY": "kdgrade-test-" + "0123456789abcdef" * 4,
              "ALLOWED_HOSTS": "kd.example.org", "KDGRADE_KEY_ENCRYPTION_KEY": FERNET_KEY}


def _assignment(platform, context_id: str, release: str = "after_review") -> Assignment:
    item = Item.objects.get_or_create(external_id="small-item", defaults={
        "title": "T", "question": "Why?", "score_min": 0, "score_max": 2})[0]
    context = Context.objects.get_or_create(platform=platform, context_id=context_id)[0]
    a = Assignment.objects.create(item=item, title=f"Secret title {context_id}", release=release)
    LtiAssignment.objects.create(assignment=a, context=context)
    return a


@pytest.mark.django_db(transaction=True)
def test_kdgrade_assignment_is_copied_only_from_a_course_of_the_same_platform(live_server):
    with DevPlatform(live_server.url, client_id="a") as lms_a, DevPlatform(live_server.url, client_id="b") as lms_b:
        pa, _pb = register_in_kdgrade(lms_a), register_in_kdgrade(lms_b)
        source = _assignment(pa, "a-course")
        # Another platform naming that assignment gets no copy of it (title and settings stay put).
        page = Browser().launch(lms_b, LaunchSpec("s", [ROLE_LEARNER], context_id="b-course", resource_link_id="l",
                                                  custom={"kdgrade_assignment": str(source.pk)}))
        assert page.status_code == 404 and "Secret title" not in page.text
        assert ResourceLink.objects.get(context__platform=_pb, resource_link_id="l").assignment_id is None
        assert Assignment.objects.count() == 1
        # A course copy on the same platform still gets its own copy.
        page = Browser().launch(lms_a, LaunchSpec("s", [ROLE_LEARNER], context_id="a-copy", resource_link_id="l2",
                                                  custom={"kdgrade_assignment": str(source.pk)}))
        assert page.status_code == 200
        copy = ResourceLink.objects.get(resource_link_id="l2").assignment
        assert copy.pk != source.pk and copy.title == source.title and copy.lti.context.context_id == "a-copy"


@pytest.mark.django_db(transaction=True)
def test_resubmissions_in_immediate_mode_are_limited(live_server, settings):
    settings.KDGRADE_LTI_MAX_SUBMISSIONS_PER_HOUR = 3
    with DevPlatform(live_server.url) as lms:
        platform = register_in_kdgrade(lms)
        a = _assignment(platform, "course-1", release="immediate")
        browser = Browser()
        page = browser.launch(lms, LaunchSpec("student-1", [ROLE_LEARNER], custom={"kdgrade_assignment": str(a.pk)}))
        url, token = page.url.split("?")[0], ls_token(page.url)
        codes = []
        for i in range(4):
            r = browser.post(url, {"ls": token, "response": f"probe {i}"})
            codes.append(r.status_code)
            token = ls_token(r.url) or token
        assert codes == [200, 200, 200, 400]  # the refusal re-renders the page with the text kept
        assert "allowed in one hour" in r.text
        assert Submission.objects.filter(assignment=a).count() == 3
        # After-review mode (no score shown) is not limited.
        Assignment.objects.filter(pk=a.pk).update(release="after_review")
        assert browser.post(url, {"ls": token, "response": "later"}).status_code == 200


@pytest.mark.django_db
def test_admin_logins_are_throttled_after_repeated_failures(client, settings):
    settings.KDGRADE_ADMIN_LOGIN_FAILURES = 3
    cache.clear()
    User.objects.create_superuser("boss", "boss@example.org", "right-password-1")
    codes = [client.post("/admin/login/", {"username": "boss", "password": f"wrong-{i}"}).status_code
             for i in range(3)]
    assert codes == [200, 200, 200]
    blocked = client.post("/admin/login/", {"username": "boss", "password": "right-password-1"})
    assert blocked.status_code == 429 and "Too many failed logins" in blocked.content.decode()
    cache.clear()
    ok = client.post("/admin/login/", {"username": "boss", "password": "right-password-1"})
    assert ok.status_code == 302


@pytest.mark.django_db(transaction=True)
def test_forged_launches_with_unknown_key_ids_do_not_refetch_the_keyset_each_time(live_server):
    cache.clear()
    with DevPlatform(live_server.url) as lms:
        platform = register_in_kdgrade(lms)
        a = _assignment(platform, "course-1")
        spec = {"custom": {"kdgrade_assignment": str(a.pk)}}
        assert Browser().launch(lms, LaunchSpec("s", [ROLE_LEARNER], **spec)).status_code == 200
        assert lms.gradebook.jwks_requests == 1
        for _ in range(4):
            page = Browser().launch(lms, LaunchSpec("s", [ROLE_LEARNER], rogue_key=True, **spec))
            assert page.status_code == 403
        assert lms.gradebook.jwks_requests == 2, "one refetch for an unknown key id, then none for a while"
        # A genuine key rotation at the platform is still picked up once the throttle window is over.
        lms.rotate_keys()
        cache.delete("lti:keyset-refetch:" + hashlib.sha256(platform.keyset_url.encode()).hexdigest())
        assert Browser().launch(lms, LaunchSpec("s", [ROLE_LEARNER], **spec)).status_code == 200


@pytest.mark.ml
def test_django_debug_is_ignored_in_production():
    code = "import kdgrade.settings as s; print(s.DEBUG, s.FRAME_ANCESTORS)"
    result = run([sys.executable, "-c", code], DJANGO_DEBUG="true", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "None"]
    dev = run([sys.executable, "-c", code], DJANGO_DEBUG="true", KDGRADE_MODE="development")
    assert dev.stdout.split()[0] == "True"


@pytest.mark.ml
def test_production_needs_a_key_encryption_key_and_refuses_the_loopback_allowance():
    without = {k: v for k, v in PRODUCTION.items() if k != "KDGRADE_KEY_ENCRYPTION_KEY"}
    assert_one_clear_line(manage("check", **without), "KDGRADE_KEY_ENCRYPTION_KEY")
    assert_one_clear_line(manage("check", **PRODUCTION, KDGRADE_OUTBOUND_ALLOW_PRIVATE="true"),
                          "KDGRADE_OUTBOUND_ALLOW_PRIVATE")
    assert_one_clear_line(manage("check", **{**PRODUCTION, "KDGRADE_KEY_ENCRYPTION_KEY": "short"}),
                          "KDGRADE_KEY_ENCRYPTION_KEY")


@pytest.mark.django_db
def test_tool_private_keys_are_encrypted_at_rest(settings):
    key = keys.signing_key()
    stored = ToolKey.objects.get(pk=key.pk).private_pem
    assert stored.startswith("fernet:") and "PRIVATE KEY" not in stored
    pem = keys.private_pem(key)
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert JWK.from_pem(pem.encode()).thumbprint() == key.kid
    # With another encryption key, it cannot be read.
    settings.KDGRADE_KEY_ENCRYPTION_KEY = "M2cTfHhS7p2M2Q7t3xS3bHqDqZkZt8cZfQ1r8T0Zb1E="
    with pytest.raises(RuntimeError, match="cannot be decrypted"):
        keys.private_pem(key)


@pytest.mark.django_db
def test_the_migration_encrypts_keys_stored_in_plain_text():
    jwk = JWK.generate(kty="RSA", size=2048)
    pem = jwk.export_to_pem(private_key=True, password=None).decode()
    row = ToolKey.objects.create(kid="legacy", private_pem=pem, public_jwk={})
    migration = importlib.import_module(
        "kdgrade.lti.migrations.0004_per_platform_keys_single_use_registration_keys_hashed_launch_tokens")
    migration.encrypt_private_keys(apps, None)
    row.refresh_from_db()
    assert row.private_pem.startswith("fernet:") and keys.private_pem(row) == pem
