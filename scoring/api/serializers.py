"""Request and response shapes of the API (the response serializers document the schema; the hot
scoring path builds its dicts directly, with the same fields)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scoring.flags import ALL_FLAGS
from scoring.models import Item, ModelVersion, RubricLevel, Score, Submission

LEARNER_REF_MAX = 255

# --- requests -------------------------------------------------------------------------------------


class StrictCharField(serializers.CharField):
    """A string, and only a string (DRF's CharField would turn 42 into "42").  Characters no text
    database can store (NUL, unpaired surrogates) become U+FFFD instead of failing the request."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.validators = [v for v in self.validators if type(v).__name__ not in _CLEANED]

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(storable_text(data))


def storable_text(data: str) -> str:
    """The text with NUL and unpaired surrogates replaced by U+FFFD (same length)."""
    if "\x00" in data:
        data = data.replace("\x00", "\ufffd")
    if not data.isascii():
        data = data.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return data


_CLEANED = {"ProhibitNullCharactersValidator", "ProhibitSurrogateCharactersValidator"}


def _response_field() -> StrictCharField:
    limit = settings.KDGRADE_MAX_ANSWER_CHARS
    return StrictCharField(
        allow_blank=True,
        trim_whitespace=False,
        max_length=limit,  # the view checks it first: 413 answer_too_long, not 400
        help_text=f"The student's answer, at most KDGRADE_MAX_ANSWER_CHARS ({limit}) characters; longer is "
        "refused with 413 answer_too_long. An empty or unscorable answer is accepted and flagged.",
    )


class AnswerIn(serializers.Serializer):
    # Fields built per instance so the limits follow the settings (and the schema shows them).
    def get_fields(self) -> dict:
        return {
            "response": _response_field(),
            "learner_ref": StrictCharField(
                required=False, allow_blank=True, default="", max_length=LEARNER_REF_MAX,
                help_text="Opaque learner id of your system (never a name).",
            ),
        }


class ScoreRequest(AnswerIn):
    def get_fields(self) -> dict:
        fields = super().get_fields()
        fields["store"] = serializers.BooleanField(
            required=False, default=True,
            help_text="Save the answer and its score as a submission (default). "
            "With false, the answer is scored and forgotten.",
        )
        return fields


class BatchScoreRequest(serializers.Serializer):
    def get_fields(self) -> dict:
        limit = settings.KDGRADE_MAX_BATCH
        return {
            "responses": serializers.ListField(
                child=AnswerIn(), allow_empty=False, min_length=1, max_length=limit,
                help_text=f"1 to KDGRADE_MAX_BATCH ({limit}) answers; more is refused with 413 batch_too_large.",
            ),
            "store": serializers.BooleanField(required=False, default=True),
        }


def parse_batch(data: object) -> tuple[list[tuple[str, str]], bool]:
    """The (response, learner_ref) answers and the ``store`` flag of a batch request, validated exactly as
    ``BatchScoreRequest`` validates them (raises its ``ValidationError``).  A plainly valid request,
    nearly every one, is read without a serializer per answer (they took a quarter of a 1,000-answer
    request); anything else goes through the serializer, for its checks and its error messages."""
    fast = _plain_batch(data)
    if fast is not None:
        return fast
    req = BatchScoreRequest(data=data)
    req.is_valid(raise_exception=True)
    v = req.validated_data
    return [(a["response"], a["learner_ref"]) for a in v["responses"]], v["store"]


def _plain_batch(data: object) -> tuple[list[tuple[str, str]], bool] | None:
    """What the serializer would return for a request of plain types within every limit; None for any
    other request (the serializer then decides)."""
    if type(data) is not dict:
        return None
    raw, store = data.get("responses"), data.get("store", True)
    if type(store) is not bool or type(raw) is not list or not 1 <= len(raw) <= settings.KDGRADE_MAX_BATCH:
        return None
    limit = settings.KDGRADE_MAX_ANSWER_CHARS
    answers = []
    for answer in raw:
        if type(answer) is not dict:
            return None
        response, ref = answer.get("response"), answer.get("learner_ref", "")
        if type(response) is not str or type(ref) is not str:
            return None
        response, ref = storable_text(response), storable_text(ref).strip()  # learner_ref is trimmed
        if len(response) > limit or len(ref) > LEARNER_REF_MAX:
            return None
        answers.append((response, ref))
    return answers, store


# --- responses ------------------------------------------------------------------------------------


class VersionRef(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField()


@extend_schema_field({"type": "object", "additionalProperties": {"type": "number"},
                      "description": "Probability of each score level (keys are the levels)."})
class ProbabilitiesField(serializers.DictField):
    pass


class FlagsField(serializers.ListField):
    child = serializers.ChoiceField(choices=ALL_FLAGS)


class ScoreResult(serializers.Serializer):
    submission_id = serializers.IntegerField(allow_null=True, help_text="null when store=false.")
    score = serializers.IntegerField(allow_null=True, help_text="null when the model declined (see flags).")
    label = serializers.CharField(help_text="The rubric level's label ('' without a score).")
    descriptor = serializers.CharField(help_text="The rubric level's descriptor ('' without a score).")
    probabilities = ProbabilitiesField()
    confidence = serializers.FloatField(allow_null=True)
    flags = FlagsField(help_text="Why a teacher should look at this answer (empty when none).")
    needs_review = serializers.BooleanField()


class ScoreResponse(ScoreResult):
    item = serializers.CharField()
    model_version = VersionRef()


class BatchScoreResponse(serializers.Serializer):
    item = serializers.CharField()
    model_version = VersionRef(help_text="Every answer of the batch was scored by this one version.")
    results = ScoreResult(many=True)


class RubricLevelOut(serializers.ModelSerializer):
    class Meta:
        model = RubricLevel
        fields = ["score", "label", "descriptor"]


class ModelVersionOut(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["id", "version", "status", "checksum", "created_at", "activated_at", "metrics"]


class ItemOut(serializers.ModelSerializer):
    item_id = serializers.CharField(source="external_id")
    levels = RubricLevelOut(source="rubric_levels", many=True)
    active_version = serializers.SerializerMethodField()

    class Meta:
        model = Item
        fields = ["item_id", "title", "question", "score_min", "score_max", "language",
                  "confidence_threshold", "levels", "active_version"]

    @extend_schema_field(VersionRef(allow_null=True))
    def get_active_version(self, item: Item) -> dict | None:
        for v in item.model_versions.all():  # prefetched
            if v.status == ModelVersion.Status.ACTIVE:
                return {"id": v.pk, "version": v.version}
        return None


class ItemDetailOut(ItemOut):
    model_versions = ModelVersionOut(many=True)

    class Meta(ItemOut.Meta):
        fields = [*ItemOut.Meta.fields, "model_versions"]


class ScoreOut(serializers.ModelSerializer):
    model_version = serializers.SerializerMethodField()
    probabilities = ProbabilitiesField()
    flags = FlagsField()
    needs_review = serializers.BooleanField(read_only=True)

    class Meta:
        model = Score
        fields = ["id", "model_version", "model_score", "probabilities", "confidence", "flags",
                  "override_score", "final_score", "needs_review", "created_at"]


    @extend_schema_field(VersionRef(allow_null=True))
    def get_model_version(self, score: Score) -> dict | None:
        v = score.model_version
        return {"id": v.pk, "version": v.version} if v is not None else None


class SubmissionOut(serializers.ModelSerializer):
    item = serializers.CharField(source="item.external_id")
    scores = ScoreOut(many=True)

    class Meta:
        model = Submission
        fields = ["id", "item", "learner_ref", "response", "source", "created_at", "scores"]


class ErrorOut(serializers.Serializer):
    error = serializers.CharField(help_text="A stable code, e.g. item_not_found, no_active_model.")
    message = serializers.CharField(help_text="What went wrong, for a human.")
    fields = serializers.DictField(required=False, help_text="Per-field problems of an invalid request.")
