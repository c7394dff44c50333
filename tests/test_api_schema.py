"""Property-based run of the OpenAPI schema against the live API (schemathesis + hypothesis): no 5xx,
and every response conforms to the schema (status code, content type, body).  Valid and invalid inputs,
on existing items (with and without an active model), unknown ones and real submissions.  Bounded by
MAX_EXAMPLES per operation and mode so the run stays well under a minute."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from scoring import versions
from scoring.api.accounts import integration_token
from scoring.models import Item, Submission
from tests.scoring_support import ANSWERS

pytestmark = pytest.mark.django_db(transaction=True)

MAX_EXAMPLES = 30


def _run(strategy, base_url: str, headers: dict, seen: set[int]) -> None:
    @given(case=strategy)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case):
        response = case.call_and_validate(base_url=base_url, headers=headers)
        seen.add(response.status_code)

    run()


def test_the_live_api_conforms_to_its_schema(live_server, demo_versions, settings):
    # Small limits keep generated bodies small (the schema advertises whatever the settings say).
    settings.KDGRADE_MAX_BATCH = 5
    settings.KDGRADE_MAX_ANSWER_CHARS = 400
    item, v1, _ = demo_versions
    versions.activate_version(v1)
    Item.objects.create(external_id="no-model", title="No model yet", question="Why?", reference_answers=["x"])
    submission = Submission.objects.create(item=item, response=ANSWERS[0])
    token = integration_token("schemathesis", read_submissions=True)
    headers = {"Authorization": f"Token {token}"}
    # Invalid input is refused with a 4xx; 413 is the API's documented answer to an over-long answer or
    # batch (schemathesis' default list of "rejection" codes does not include it).
    # Strings are valid Unicode (codec utf-8): with two lone surrogates side by side the client counts 2
    # characters where JSON (and the server) reads one astral character, so length checks disagree.
    config = schemathesis.Config.from_dict({
        "checks": {"negative_data_rejection": {
            "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422]}},
        "generation": {"codec": "utf-8"},
    })
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/schema/?format=json", config=config,
                                           headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 6
    calls: dict[str, set[int]] = {}

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            free_form_get = operation.method.upper() == "GET" and "{submission_id}" not in operation.path
            if mode == GenerationMode.NEGATIVE and free_form_get:
                continue  # nothing to make invalid: a free-form string item_id, or no input at all
            strategies = [operation.as_strategy(mode)]
            params = {p.name for p in operation.path_parameters}
            if "item_id" in params:
                strategies += [operation.as_strategy(mode, path_parameters={"item_id": i})
                               for i in ("heat-spoon", "no-model")]
            if "submission_id" in params:
                strategies.append(operation.as_strategy(mode, path_parameters={"submission_id": submission.pk}))

            _run(st.one_of(strategies), live_server.url, headers, calls.setdefault(operation.label, set()))

    # the run reached the success paths, not only errors
    assert 201 in calls["POST /api/v1/items/{item_id}/score/"], calls
    assert 200 in calls["GET /api/v1/submissions/{submission_id}/"], calls
    assert all(code < 500 for codes in calls.values() for code in codes), calls
    assert 413 in calls["POST /api/v1/items/{item_id}/score-batch/"], calls  # the limits were exercised
