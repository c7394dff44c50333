"""Items, rubrics, model versions, assignments, submissions and scores."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class Item(models.Model):
    """A science question with its reference answer(s) and score range."""

    external_id = models.SlugField(
        max_length=100, unique=True, help_text="The item_id used in CSV files and the API."
    )
    title = models.CharField(max_length=200)
    question = models.TextField()
    reference_answers = models.JSONField(
        default=list, blank=True, help_text="One or more reference answers or rubric key elements."
    )
    score_min = models.IntegerField(default=0)
    score_max = models.IntegerField(default=2)
    language = models.CharField(max_length=10, default="en")
    confidence_threshold = models.FloatField(
        null=True,
        blank=True,
        default=None,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.01)],
        help_text="Scores whose confidence is below this go to a teacher for review. Leave empty to use the "
        "threshold fitted with the active model version (the largest share of answers that still agree with "
        "the human as often as two humans do); set it to override.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["external_id"]
        constraints = [
            models.CheckConstraint(condition=Q(score_max__gt=models.F("score_min")), name="item_score_range_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.external_id}: {self.title}"

    def clean(self) -> None:
        if self.score_max <= self.score_min:
            raise ValidationError({"score_max": "The maximum score must be above the minimum."})

    @property
    def score_levels(self) -> list[int]:
        return list(range(self.score_min, self.score_max + 1))


class RubricLevel(models.Model):
    """One level of an item's rubric: what an answer at this score shows."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="rubric_levels")
    score = models.IntegerField()
    label = models.CharField(max_length=100)
    descriptor = models.TextField(help_text="What an answer at this level shows (shown to students as feedback).")

    class Meta:
        ordering = ["item", "score"]
        constraints = [models.UniqueConstraint(fields=["item", "score"], name="rubric_level_unique_score")]

    def __str__(self) -> str:
        return f"{self.item.external_id} [{self.score}] {self.label}"


class ModelVersion(models.Model):
    """A distilled model version: a directory with the ONNX graph, featuriser state and manifest."""

    class Status(models.TextChoices):
        TRAINING = "training", "Training"
        READY = "ready", "Ready"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"
        FAILED = "failed", "Failed"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="model_versions")
    version = models.PositiveIntegerField()
    artifact_path = models.CharField(max_length=500, blank=True, help_text="Directory of the model version.")
    checksum = models.CharField(max_length=64, blank=True, help_text="sha256 of the manifest.")
    metrics = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.TRAINING)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["item", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["item", "version"], name="model_version_unique_number"),
            # At most one active version per item, enforced by the database itself.
            models.UniqueConstraint(
                fields=["item"], condition=Q(status="active"), name="model_version_one_active_per_item"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.item.external_id} v{self.version} ({self.status})"


class Assignment(models.Model):
    """An item as set to a class: how its grades reach the gradebook."""

    class Release(models.TextChoices):
        IMMEDIATE = "immediate", "Send model scores to the gradebook at once"
        AFTER_REVIEW = "after_review", "Send scores only after a teacher reviews them"

    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="assignments")
    title = models.CharField(max_length=200)
    release = models.CharField(max_length=20, choices=Release.choices, default=Release.AFTER_REVIEW)
    show_feedback = models.BooleanField(default=True, help_text="Show students the rubric descriptor of their score.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.title


class Submission(models.Model):
    """One answer to an item.  The response text is personal data."""

    class Source(models.TextChoices):
        LTI = "lti", "LMS (LTI)"
        API = "api", "REST API"
        CSV = "csv", "CSV import"
        DEMO = "demo", "Demo data"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="submissions")
    assignment = models.ForeignKey(
        Assignment, on_delete=models.CASCADE, null=True, blank=True, related_name="submissions"
    )
    learner_ref = models.CharField(
        max_length=255, blank=True, help_text="Opaque learner id (e.g. the LMS user's sub); never a name."
    )
    lti_user = models.ForeignKey(
        "lti.LtiUser", on_delete=models.CASCADE, null=True, blank=True, related_name="submissions",
        help_text="The LMS user who answered (LTI answers): erasing the user erases their answers.",
    )
    response = models.TextField()
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.API)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["assignment", "learner_ref"])]

    def __str__(self) -> str:
        return f"Submission {self.pk} to {self.item.external_id}"


class Score(models.Model):
    """A score for a submission: the model's, a teacher's override, and the gradebook state."""

    class Passback(models.TextChoices):
        NOT_APPLICABLE = "n/a", "Not sent (no gradebook)"
        HELD = "held", "Held for teacher review"
        PENDING = "pending", "Waiting to be sent"
        SENT = "sent", "Sent to the gradebook"
        FAILED = "failed", "Failed (needs attention)"

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="scores")
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="scores"
    )
    model_score = models.IntegerField(null=True, blank=True, help_text="Empty when the model declined to score.")
    probabilities = models.JSONField(default=dict, blank=True, help_text="Probability of each score level.")
    confidence = models.FloatField(null=True, blank=True)
    flags = models.JSONField(default=list, blank=True, help_text="Why this answer needs a human look.")
    override_score = models.IntegerField(null=True, blank=True)
    overridden_by = models.CharField(max_length=255, blank=True)
    overridden_at = models.DateTimeField(null=True, blank=True)
    final_score = models.IntegerField(null=True, blank=True)
    passback_state = models.CharField(max_length=10, choices=Passback.choices, default=Passback.NOT_APPLICABLE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Score {self.final_score} for submission {self.submission_id}"

    def save(self, *args: object, **kwargs: object) -> None:
        self.refresh_final_score()
        super().save(*args, **kwargs)

    def refresh_final_score(self) -> None:
        """The score that counts: the teacher's override, else the model's."""
        self.final_score = self.final_of(self.model_score, self.override_score)

    @staticmethod
    def final_of(model_score: int | None, override_score: int | None) -> int | None:
        """The score that counts: the teacher's override, else the model's (the one place it is decided)."""
        return override_score if override_score is not None else model_score

    @property
    def needs_review(self) -> bool:
        return bool(self.flags) and self.override_score is None


class WorkerHeartbeat(models.Model):
    """Written by a Celery task so the admin (and the health page) can see workers are alive."""

    hostname = models.CharField(max_length=255)
    queue = models.CharField(max_length=50, default="default")
    marker = models.CharField(max_length=64, blank=True)
    seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-seen_at"]

    def __str__(self) -> str:
        return f"{self.hostname} ({self.queue}) at {self.seen_at:%Y-%m-%d %H:%M:%S}"
