"""Least privilege in the REST API (issue 14): scoring-only tokens for integrations, students' answers
readable only with the Django permission, the schema and docs not anonymous, request throttling."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import caches
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from scoring.api.accounts import integration_token
from scoring.api.throttling import UserThrottle
from scoring.models import Item, Submission

pytestmark = pytest.mark.django_db

ANON, PLAIN, STAFF, SCORING, READER, SUPER = "anonymous", "plain", "staff", "scoring-only", "reader", "superuser"


def _client(who: str) -> APIClient:
    client = APIClient()
    if who == ANON:
        return client
    if who in (SCORING, READER):
        client.credentials(HTTP_AUTHORIZATION=f"Token {integration_token(who, read_submissions=who == READER)}")
    elif who == SUPER:
        client.force_login(User.objects.create_superuser("root", "root@example.org", "pw-root-1"))
    else:
        user = User.objects.create_user(who, password="pw-plain-1", is_staff=who == STAFF)
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def answers():
    item = Item.objects.create(external_id="sec-api", title="T", question="Why?", score_min=0, score_max=2)
    subs = [Submission.objects.create(item=item, response=f"private answer {i}", learner_ref=f"student-{i}",
                                      source=Submission.Source.LTI if i % 2 else Submission.Source.API)
            for i in range(5)]
    return item, subs


# (method, path, allowed status) x who may call it; everyone else gets 401 (anonymous) or 403.
MATRIX = [
    ("post", "/api/v1/items/sec-api/score/", 409, {SCORING, READER, SUPER}),  # 409: no active model
    ("post", "/api/v1/items/sec-api/score-batch/", 409, {SCORING, READER, SUPER}),
    ("get", "/api/v1/items/", 200, {SCORING, READER, SUPER}),
    ("get", "/api/v1/items/sec-api/", 200, {SCORING, READER, SUPER}),
    ("get", "/api/v1/items/sec-api/model-versions/", 200, {SCORING, READER, SUPER}),
    ("get", "/api/v1/submissions/{sub}/", 200, {READER, SUPER}),
    ("get", "/api/v1/schema/", 200, {PLAIN, STAFF, SCORING, READER, SUPER}),
    ("get", "/api/v1/docs/", 200, {PLAIN, STAFF, SCORING, READER, SUPER}),
]


@pytest.mark.parametrize("who", [ANON, PLAIN, STAFF, SCORING, READER, SUPER])
def test_permission_matrix(answers, who):
    _, subs = answers
    client = _client(who)
    bodies = {"/api/v1/items/sec-api/score/": {"response": "metal conducts heat"},
              "/api/v1/items/sec-api/score-batch/": {"responses": [{"response": "metal conducts heat"}]}}
    for method, path, allowed_status, allowed in MATRIX:
        url = path.format(sub=subs[0].pk)
        kwargs = {"format": "json", "data": bodies[path]} if method == "post" else {}
        r = getattr(client, method)(url, **kwargs)
        expected = allowed_status if who in allowed else (401 if who == ANON else 403)
        assert r.status_code == expected, (who, method, url, r.status_code, r.content[:200])
        if r.status_code in (401, 403):
            assert b"private answer" not in r.content


def test_enumerating_submission_ids_as_a_scoring_only_client_yields_nothing(answers):
    _, subs = answers
    client = _client(SCORING)
    seen = set()
    for sid in range(1, max(s.pk for s in subs) + 20):
        r = client.get(f"/api/v1/submissions/{sid}/")
        assert r.status_code == 403, (sid, r.status_code)
        assert b"private answer" not in r.content and b"student-" not in r.content
        seen.add(r.content)
    assert len(seen) == 1, "existing and missing ids must answer alike"
    # The same account scores (its purpose) - here 409, as the item has no active model version.
    assert client.post("/api/v1/items/sec-api/score/", {"response": "x"}, format="json").status_code == 409


def test_the_permission_is_what_opens_submissions(answers):
    _, subs = answers
    user = User.objects.create_user("auditor", password="pw-auditor-1")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert client.get(f"/api/v1/submissions/{subs[1].pk}/").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_submission"))
    from scoring.api.auth import CachedTokenAuthentication

    CachedTokenAuthentication.clear_cache()
    r = client.get(f"/api/v1/submissions/{subs[1].pk}/")
    assert r.status_code == 200 and r.json()["response"] == "private answer 1"


def test_api_calls_are_throttled_per_account(answers, monkeypatch):
    caches["throttle"].clear()
    monkeypatch.setattr(UserThrottle, "THROTTLE_RATES", {"user": "3/minute", "anon": "3/minute"})
    client = _client(SCORING)
    codes = [client.get("/api/v1/items/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = client.get("/api/v1/items/")
    assert r.status_code == 429 and r.json()["error"] == "throttled" and "Retry-After" in r.headers
    # Another account has its own allowance.
    assert _client(READER).get("/api/v1/items/").status_code == 200
    caches["throttle"].clear()
