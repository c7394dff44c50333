"""The REST API: scoring one answer and a batch, items and versions, submissions, and its errors."""

from __future__ import annotations

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from scoring import versions
from scoring.api.accounts import integration_token
from scoring.models import Item, Submission
from tests.scoring_support import ANSWERS

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(demo_versions):
    item, v1, v2 = demo_versions
    versions.activate_version(v1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {integration_token('integrator', read_submissions=True)}")
    return client, item, v1, v2


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == code and body["message"]
    return body


def test_score_one_answer_stores_a_submission_that_can_be_read_back(api):
    client, item, v1, _ = api
    r = client.post("/api/v1/items/heat-spoon/score/", {"response": ANSWERS[0], "learner_ref": "s-7"}, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["item"] == "heat-spoon" and body["model_version"] == {"id": v1.pk, "version": 1}
    assert set(body["probabilities"]) == {"0", "1", "2"}
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    if body["score"] is not None:
        # confidence: the probability of the level the version's cut-points decode
        assert body["confidence"] == pytest.approx(body["probabilities"][str(body["score"])])
        assert body["label"] == item.rubric_levels.get(score=body["score"]).label
    assert body["needs_review"] == bool(body["flags"])
    sub = client.get(f"/api/v1/submissions/{body['submission_id']}/")
    assert sub.status_code == 200
    data = sub.json()
    assert data["response"] == ANSWERS[0] and data["learner_ref"] == "s-7" and data["source"] == "api"
    assert data["scores"][0]["model_version"] == {"id": v1.pk, "version": 1}
    assert data["scores"][0]["probabilities"] == body["probabilities"]


def test_store_false_scores_without_keeping_the_answer(api):
    client, *_ = api
    before = Submission.objects.count()
    r = client.post("/api/v1/items/heat-spoon/score/", {"response": ANSWERS[1], "store": False}, format="json")
    assert r.status_code == 200 and r.json()["submission_id"] is None
    assert Submission.objects.count() == before


def test_batch_is_scored_by_one_version_and_flags_non_answers(api):
    client, _, v1, _ = api
    answers = [{"response": a, "learner_ref": f"s{i}"} for i, a in enumerate(ANSWERS)] + [{"response": "  "}]
    r = client.post("/api/v1/items/heat-spoon/score-batch/", {"responses": answers}, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["model_version"]["id"] == v1.pk and len(body["results"]) == len(answers)
    assert body["results"][-1]["flags"] == ["empty"] and body["results"][-1]["score"] is None
    ids = [res["submission_id"] for res in body["results"]]
    assert len(set(ids)) == len(ids) and Submission.objects.filter(pk__in=ids).count() == len(ids)


def test_items_and_model_versions_are_listed(api):
    client, _, v1, v2 = api
    items = client.get("/api/v1/items/").json()
    demo = next(i for i in items if i["item_id"] == "heat-spoon")
    assert demo["active_version"] == {"id": v1.pk, "version": 1}
    assert [lv["score"] for lv in demo["levels"]] == [0, 1, 2]
    detail = client.get("/api/v1/items/heat-spoon/").json()
    assert [v["version"] for v in detail["model_versions"]] == [2, 1]
    listed = client.get("/api/v1/items/heat-spoon/model-versions/").json()
    assert [(v["id"], v["status"]) for v in listed] == [(v2.pk, "ready"), (v1.pk, "active")]
    assert listed[1]["checksum"] == v1.checksum


def test_errors_are_json_with_the_right_status(api):
    client, item, _, _ = api
    url = "/api/v1/items/heat-spoon/score/"
    _error(client.post("/api/v1/items/no-such-item/score/", {"response": "x"}, format="json"), 404, "item_not_found")
    _error(client.get("/api/v1/items/no-such-item/"), 404, "item_not_found")
    _error(client.get("/api/v1/submissions/999999/"), 404, "submission_not_found")
    _error(client.get("/api/v1/nothing/here/"), 404, "not_found")
    _error(client.post(url, "{not json", content_type="application/json"), 400, "malformed_body")
    body = _error(client.post(url, {"answer": "wrong field"}, format="json"), 400, "invalid_request")
    assert "response" in body["fields"]
    _error(client.post(url, {"response": 42}, format="json"), 400, "invalid_request")
    _error(client.post(url, [1, 2], format="json"), 400, "invalid_request")
    _error(client.post(url, "response=x", content_type="text/plain"), 415, "unsupported_media_type")
    _error(client.get(url), 405, "method_not_allowed")
    with override_settings(KDGRADE_MAX_ANSWER_CHARS=50):
        body = _error(client.post(url, {"response": "a" * 51}, format="json"), 413, "answer_too_long")
        assert "limit is 50" in body["message"]
        batch = {"responses": [{"response": "ok"}, {"response": "b" * 60}]}
        r = client.post("/api/v1/items/heat-spoon/score-batch/", batch, format="json")
        body = _error(r, 413, "answer_too_long")
        assert "Answer 1" in body["message"]
    with override_settings(KDGRADE_MAX_BATCH=3):
        batch = {"responses": [{"response": a} for a in ANSWERS[:4]]}
        body = _error(client.post("/api/v1/items/heat-spoon/score-batch/", batch, format="json"),
                      413, "batch_too_large")
        assert "limit is 3" in body["message"]
    _error(client.post("/api/v1/items/heat-spoon/score-batch/", {"responses": []}, format="json"),
           400, "invalid_request")
    versions.retire_version(item.model_versions.get(status="active"))
    _error(client.post(url, {"response": ANSWERS[0]}, format="json"), 409, "no_active_model")
    _error(client.post("/api/v1/items/heat-spoon/score-batch/", {"responses": [{"response": "x"}]}, format="json"),
           409, "no_active_model")
    assert Submission.objects.filter(source="api").count() == 0  # nothing half-stored


def test_token_authentication_is_required(api):
    anonymous = APIClient()
    r = anonymous.post("/api/v1/items/heat-spoon/score/", {"response": "x"}, format="json")
    _error(r, 401, "not_authenticated")
    assert r["WWW-Authenticate"] == "Token"
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    _error(bad.get("/api/v1/items/"), 401, "not_authenticated")


def test_the_openapi_schema_is_served(api):
    client, *_ = api
    assert APIClient().get("/api/v1/schema/").status_code == 401  # not for anonymous callers
    r = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert r.status_code == 200
    schema = r.json()
    assert {"/api/v1/items/{item_id}/score/", "/api/v1/items/{item_id}/score-batch/",
            "/api/v1/submissions/{submission_id}/"} <= set(schema["paths"])
    score = schema["paths"]["/api/v1/items/{item_id}/score/"]["post"]["responses"]
    assert {"201", "404", "409", "413", "400"} <= set(score)
    assert client.get("/api/v1/docs/").status_code == 200


def test_an_item_without_model_versions_answers_409_and_score_submission_flags(api):
    client, *_ = api
    Item.objects.create(external_id="no-model", title="t", question="Why?", reference_answers=["Because."])
    _error(client.post("/api/v1/items/no-model/score/", {"response": "Because."}, format="json"),
           409, "no_active_model")


def test_an_active_version_whose_files_vanished_answers_503_not_500(api):
    import shutil

    from scoring.scorer import clear_cache

    client, _, v1, _ = api
    shutil.rmtree(v1.artifact_path)
    clear_cache()
    r = client.post("/api/v1/items/heat-spoon/score/", {"response": ANSWERS[0]}, format="json")
    body = _error(r, 503, "model_unavailable")
    assert "cannot be served" in body["message"]


BATCH_PAYLOADS = [
    {"responses": [{"response": "Metal conducts heat.", "learner_ref": "s-1"}]},
    {"responses": [{"response": ""}, {"response": "  spaces kept  ", "learner_ref": "  trimmed\t"}]},
    {"responses": [{"response": "nul\x00 and \ud800 lone surrogate", "learner_ref": "\x00"}], "store": False},
    {"responses": [{"response": "é ü 中文 🙂", "learner_ref": "   ", "extra": 1}], "store": True, "other": "x"},
    {"responses": [{"response": "a" * 50, "learner_ref": "r" * 255}]},
    # not plain: the serializer decides (and words the error)
    {"responses": [{"response": "x"}], "store": "false"},
    {"responses": [{"response": "x", "learner_ref": None}]},
    {"responses": [{"response": "x", "learner_ref": "r" * 256}]},
    {"responses": [{"response": 42}]},
    {"responses": [{"learner_ref": "no answer"}]},
    {"responses": ["not an object"]},
    {"responses": []},
    {"responses": {"response": "x"}},
    [{"response": "x"}],
]


@pytest.mark.parametrize("payload", BATCH_PAYLOADS)
def test_a_batch_is_read_as_the_serializer_reads_it(payload):
    """The batch view's parse (a fast path for plain requests) gives the serializer's answers, store flag
    and errors, whichever path reads the request."""
    from rest_framework.exceptions import ValidationError

    from scoring.api import serializers as s

    with override_settings(KDGRADE_MAX_ANSWER_CHARS=50, KDGRADE_MAX_BATCH=3):
        req = s.BatchScoreRequest(data=payload)
        if req.is_valid():
            v = req.validated_data
            expected = ([(a["response"], a["learner_ref"]) for a in v["responses"]], v["store"])
            assert s.parse_batch(payload) == expected
        else:
            with pytest.raises(ValidationError) as caught:
                s.parse_batch(payload)
            assert caught.value.detail == req.errors
        plain = BATCH_PAYLOADS.index(payload) < 5
        assert (s._plain_batch(payload) is not None) == plain  # which path read it
