"""What the grading pages add to a score: the assignment's attempts policy, the attempt a teacher chose
to count, teachers' comments, and an audit row for every change a teacher makes."""

from __future__ import annotations

from django.db import models

from kdgrade.lti.models import LtiUser
from scoring.models import Assignment, Score, Submission


class AttemptPolicy(models.Model):
    """How many answers a student may give to an assignment, and which one counts."""

    class Counts(models.TextChoices):
        LATEST = "latest", "The latest attempt"
        HIGHEST = "highest", "The highest-scored attempt"

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="attempt_policy")
    resubmission_allowed = models.BooleanField(default=True)
    max_attempts = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Empty: no limit (when resubmission is allowed).")
    counts = models.CharField(max_length=10, choices=Counts.choices, default=Counts.LATEST)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Attempts of {self.assignment}"

    @property
    def limit(self) -> int | None:
        """The number of attempts a student has in all (None: no limit)."""
        if not self.resubmission_allowed:
            return 1
        return self.max_attempts


class CountingAttempt(models.Model):
    """A teacher's choice of the attempt that counts for one student (otherwise the policy decides)."""

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="counting_attempts")
    learner_ref = models.CharField(max_length=255)
    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="+")
    chosen_by = models.ForeignKey(LtiUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    chosen_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["assignment", "learner_ref"],
                                               name="grading_one_counting_attempt")]

    def __str__(self) -> str:
        return f"Attempt {self.submission_id} counts for {self.learner_ref}"


class TeacherComment(models.Model):
    """A teacher's comment on an answer, shown to the student with the rubric feedback."""

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="teacher_comments")
    author = models.ForeignKey(LtiUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Comment on submission {self.submission_id}"


class ReviewEvent(models.Model):
    """One change a teacher made to an answer: who, what, when (never edited or deleted by the pages)."""

    class Action(models.TextChoices):
        ACCEPTED = "accepted", "accepted the scorer's score"
        CHANGED = "changed", "changed the score"
        COMMENTED = "commented", "wrote a comment"
        RELEASED = "released", "released the score to the gradebook"
        CHOSEN = "chosen", "chose this attempt to count"
        RETRIED = "retried", "asked to send the grade again"

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="review_events")
    score = models.ForeignKey(Score, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    actor = models.ForeignKey(LtiUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    actor_name = models.CharField(max_length=255, blank=True, help_text="The name at the time of the change.")
    action = models.CharField(max_length=12, choices=Action.choices)
    old_score = models.IntegerField(null=True, blank=True)
    new_score = models.IntegerField(null=True, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.actor_name or 'A teacher'} {self.get_action_display()} ({self.submission_id})"
