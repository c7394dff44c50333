"""API views: parse, call a service, render.  Errors: see scoring/api/errors.py."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scoring import services
from scoring.api import errors
from scoring.api import serializers as s
from scoring.api.auth import CachedTokenAuthentication
from scoring.api.permissions import CanReadItems, CanReadSubmissions, CanScore
from scoring.models import Item, ModelVersion, Score, Submission

MAX_ID = 2**63 - 1

ERRORS = {
    400: OpenApiResponse(s.ErrorOut, description="Malformed JSON or invalid fields (malformed_body, invalid_request)."),
    401: OpenApiResponse(s.ErrorOut, description="No or bad token (not_authenticated)."),
    403: OpenApiResponse(s.ErrorOut, description="The account lacks the permission (permission_denied): scoring "
                         "needs scoring.add_submission, reading submissions scoring.view_submission."),
    404: OpenApiResponse(s.ErrorOut, description="Unknown item (item_not_found) or submission."),
    405: OpenApiResponse(s.ErrorOut, description="method_not_allowed"),
    406: OpenApiResponse(s.ErrorOut, description="not_acceptable"),
    409: OpenApiResponse(s.ErrorOut, description="The item has no active model version (no_active_model)."),
    413: OpenApiResponse(s.ErrorOut, description="answer_too_long, batch_too_large or body_too_large."),
    415: OpenApiResponse(s.ErrorOut, description="unsupported_media_type"),
    503: OpenApiResponse(s.ErrorOut, description="The active version's files cannot be served (model_unavailable)."),
}


def errors_for(*codes: int) -> dict:
    return {c: ERRORS[c] for c in (401, 403, 405, 406, *codes)}


ITEM_ID = OpenApiParameter(
    "item_id", str, OpenApiParameter.PATH, description="The item's id (Item.external_id), e.g. heat-spoon.",
    examples=[OpenApiExample("demo item", value="heat-spoon")],
)


class ApiView(APIView):
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser]
    authentication_classes = [CachedTokenAuthentication, SessionAuthentication]

    def get_exception_handler(self):
        return errors.exception_handler


def get_item(item_id: str) -> Item:
    item = Item.objects.filter(external_id=item_id).first() if len(item_id) <= 100 else None
    if item is None:
        raise errors.ItemNotFound(f"No item with id {item_id!r}.")
    return item


def _version_ref(version: ModelVersion) -> dict:
    return {"id": version.pk, "version": version.version}


def _result_dict(result: services.AnswerScore, submission_id: int | None) -> dict:
    return {
        "submission_id": submission_id,
        "score": result.score,
        "label": result.label,
        "descriptor": result.descriptor,
        "probabilities": result.probabilities_json(),
        "confidence": result.confidence,
        "flags": result.flags,
        "needs_review": result.needs_review,
    }


def _check_answer_length(answers: list[tuple[str, str]]) -> None:
    limit = settings.KDGRADE_MAX_ANSWER_CHARS
    for i, (text, _) in enumerate(answers):
        if len(text) > limit:
            where = "The answer" if len(answers) == 1 else f"Answer {i}"
            raise errors.AnswerTooLong(f"{where} has {len(text)} characters; the limit is {limit}.")


def get_item_and_version(item_id: str) -> tuple[Item, ModelVersion | None]:
    found = services.item_with_active_version(item_id) if len(item_id) <= 100 else None
    if found is None:
        raise errors.ItemNotFound(f"No item with id {item_id!r}.")
    return found


def _score(
    item: Item, version: ModelVersion | None, answers: list[tuple[str, str]], store: bool
) -> tuple[services.BatchScore, list[int | None]]:
    """The batch's scores and, per answer, its new submission's id (None each when not stored)."""
    _check_answer_length(answers)
    try:
        if store:
            return services.create_scored_submissions(item, answers, source=Submission.Source.API, version=version)
        batch = services.score_answers(item, [a[0] for a in answers], require_model=True, version=version)
        return batch, [None] * len(answers)
    except services.ScoringUnavailable as exc:
        if version is None:
            raise errors.NoActiveModel(
                f"Item {item.external_id!r} has no active model version; an admin must activate one."
            ) from exc
        raise errors.ModelUnavailable(str(exc)) from exc


class ScoreView(ApiView):
    permission_classes = [CanScore]

    @extend_schema(
        operation_id="score_answer",
        summary="Score one answer",
        parameters=[ITEM_ID],
        request=s.ScoreRequest,
        responses={200: s.ScoreResponse, 201: s.ScoreResponse, **errors_for(400, 404, 409, 413, 415, 503)},
        examples=[OpenApiExample("answer", request_only=True, value={
            "response": "Metal conducts heat away from my hand faster than wood.", "learner_ref": "s-42"})],
        description="Scores the answer with the item's active model version. 201 with a submission id "
        "when stored (default), 200 with `store: false`.",
    )
    def post(self, request: Request, item_id: str) -> Response:
        item, version = get_item_and_version(item_id)
        data = request.data
        if isinstance(data, dict) and isinstance(data.get("response"), str):
            _check_answer_length([(data["response"], "")])  # before any other validation
        req = s.ScoreRequest(data=data)
        req.is_valid(raise_exception=True)
        v = req.validated_data
        batch, ids = _score(item, version, [(v["response"], v["learner_ref"])], v["store"])
        body = _result_dict(batch.results[0], ids[0])
        body["item"] = item.external_id
        body["model_version"] = _version_ref(batch.version)
        return Response(body, status=status.HTTP_201_CREATED if v["store"] else status.HTTP_200_OK)


class BatchScoreView(ApiView):
    permission_classes = [CanScore]

    @extend_schema(
        operation_id="score_batch",
        summary="Score a batch of answers",
        parameters=[ITEM_ID],
        request=s.BatchScoreRequest,
        responses={200: s.BatchScoreResponse, 201: s.BatchScoreResponse,
                   **errors_for(400, 404, 409, 413, 415, 503)},
        examples=[OpenApiExample("two answers", request_only=True, value={
            "responses": [{"response": "Metal is a conductor.", "learner_ref": "s-1"},
                          {"response": "The metal is colder.", "learner_ref": "s-2"}]})],
        description="Up to KDGRADE_MAX_BATCH answers (the schema's maxItems), all scored by one model "
        "version. 201 when stored (default), 200 with `store: false`.",
    )
    def post(self, request: Request, item_id: str) -> Response:
        item, version = get_item_and_version(item_id)
        data = request.data
        raw = data.get("responses") if isinstance(data, dict) else None
        limit = settings.KDGRADE_MAX_BATCH
        if isinstance(raw, list):
            if len(raw) > limit:
                raise errors.BatchTooLarge(f"The batch has {len(raw)} answers; the limit is {limit}.")
            _check_answer_length([(a["response"], "") for a in raw
                                  if isinstance(a, dict) and isinstance(a.get("response"), str)])
        answers, store = s.parse_batch(data)
        batch, ids = _score(item, version, answers, store)
        body = {
            "item": item.external_id,
            "model_version": _version_ref(batch.version),
            "results": [_result_dict(r, sub_id) for r, sub_id in zip(batch.results, ids, strict=True)],
        }
        return Response(body, status=status.HTTP_201_CREATED if store else status.HTTP_200_OK)


def _items():
    return Item.objects.prefetch_related(
        "rubric_levels", Prefetch("model_versions", queryset=ModelVersion.objects.order_by("-version"))
    )


class ItemListView(ApiView):
    permission_classes = [CanReadItems]

    @extend_schema(operation_id="list_items", summary="List items", responses={200: s.ItemOut(many=True),
                                                                              **errors_for()})
    def get(self, request: Request) -> Response:
        return Response(s.ItemOut(_items(), many=True).data)


class ItemDetailView(ApiView):
    permission_classes = [CanReadItems]

    @extend_schema(operation_id="get_item", summary="An item with its rubric and model versions",
                   parameters=[ITEM_ID], responses={200: s.ItemDetailOut, **errors_for(404)})
    def get(self, request: Request, item_id: str) -> Response:
        item = _items().filter(external_id=item_id).first() if len(item_id) <= 100 else None
        if item is None:
            raise errors.ItemNotFound(f"No item with id {item_id!r}.")
        return Response(s.ItemDetailOut(item).data)


class ModelVersionListView(ApiView):
    permission_classes = [CanReadItems]

    @extend_schema(operation_id="list_model_versions", summary="An item's model versions, newest first",
                   parameters=[ITEM_ID], responses={200: s.ModelVersionOut(many=True), **errors_for(404)})
    def get(self, request: Request, item_id: str) -> Response:
        item = get_item(item_id)
        return Response(s.ModelVersionOut(item.model_versions.order_by("-version"), many=True).data)


class SubmissionDetailView(ApiView):
    permission_classes = [CanReadSubmissions]

    @extend_schema(operation_id="get_submission", summary="A submission and its scores (newest first)",
                   responses={200: s.SubmissionOut, **errors_for(404)})
    def get(self, request: Request, submission_id: int) -> Response:
        sub = None
        if 0 < submission_id <= MAX_ID:
            sub = (
                Submission.objects.select_related("item")
                .prefetch_related(Prefetch("scores", queryset=Score.objects.select_related("model_version")))
                .filter(pk=submission_id)
                .first()
            )
        if sub is None:
            raise errors.SubmissionNotFound(f"No submission {submission_id}.")
        return Response(s.SubmissionOut(sub).data)


class NotFoundView(ApiView):
    """Any other path under /api/v1/: a JSON 404 rather than an HTML page."""

    permission_classes = []
    authentication_classes = []
    schema = None  # not part of the API description

    def _not_found(self, request: Request, *args, **kwargs) -> Response:
        return errors.error_response(404, "not_found", f"No API endpoint at {request.path}.")

    get = post = put = patch = delete = head = options = _not_found
