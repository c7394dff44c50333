"""Uploads of scored answers, training runs with their progress, quality-gate policies and the
audit trail of activations."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from scoring.models import Item, ModelVersion


class ImportBatch(models.Model):
    """One accepted upload (all of its rows, or none, were written)."""

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    filename = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    rubric_filename = models.CharField(max_length=255, blank=True)
    n_rows = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True, help_text="The preview: counts per item and level, QWK.")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "import batches"

    def __str__(self) -> str:
        return f"Import {self.pk}: {self.filename} ({self.n_rows} answers)"


class TrainingAnswer(models.Model):
    """A human-scored answer uploaded for training.  The response text is personal data."""

    batch = models.ForeignKey(ImportBatch, on_delete=models.CASCADE, related_name="answers")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="training_answers")
    response_id = models.CharField(max_length=200)
    response = models.TextField()
    score = models.IntegerField()
    score2 = models.IntegerField(null=True, blank=True, help_text="A second human rater's score.")
    extra = models.JSONField(default=dict, blank=True, help_text="Other columns of the upload (e.g. school).")

    class Meta:
        ordering = ["item", "id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "response_id"], name="training_answer_unique_response_id"),
        ]

    def __str__(self) -> str:
        return f"{self.item.external_id}/{self.response_id} = {self.score}"


class GatePolicy(models.Model):
    """An item's quality-gate thresholds (defaults: Williamson, Xi & Breyer 2012)."""

    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="gate_policy")
    min_qwk = models.FloatField(default=0.70, help_text="Minimum QWK with the human score.")
    max_below_human = models.FloatField(default=0.10, help_text="Largest gap below human-human QWK.")
    max_abs_smd = models.FloatField(default=0.15, help_text="Largest |standardized mean difference| overall.")
    max_abs_smd_group = models.FloatField(default=0.10, help_text="Largest |SMD| within any group.")
    max_below_teacher = models.FloatField(default=0.02, help_text="Largest QWK gap below the teacher.")
    beat_baselines = models.BooleanField(default=True, help_text="The student must reach the best baseline.")
    max_below_active = models.FloatField(default=0.02, help_text="Largest QWK gap below the active version.")

    class Meta:
        verbose_name_plural = "gate policies"

    def __str__(self) -> str:
        return f"Gates for {self.item.external_id}"

    def as_dict(self) -> dict:
        names = ("min_qwk", "max_below_human", "max_abs_smd", "max_abs_smd_group", "max_below_teacher",
                 "beat_baselines", "max_below_active")
        return {n: getattr(self, n) for n in names}


class TrainingRun(models.Model):
    """Distillation of one or many items, run by a worker on the `training` queue."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTLY_FAILED = "partly_failed", "Some items failed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.PARTLY_FAILED, Status.FAILED, Status.CANCELLED)

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    items = models.ManyToManyField(Item, through="TrainingRunItem", related_name="training_runs")
    preset = models.CharField(max_length=20, default="default", help_text="'default' or 'tiny' (a quick try).")
    config = models.JSONField(default=dict, blank=True, help_text="Overrides of the distillation settings.")
    seed = models.IntegerField(default=0)
    include_confirmed = models.BooleanField(default=True, help_text="Teacher-confirmed live scores as labels.")
    include_unscored = models.BooleanField(default=True, help_text="Unscored live answers for the teacher to label.")
    activate_passing = models.BooleanField(default=False, help_text="Activate each new version that passes its gates.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    current_item = models.CharField(max_length=100, blank=True)
    stage = models.CharField(max_length=100, blank=True)
    message = models.TextField(blank=True)
    epoch = models.IntegerField(null=True, blank=True)
    epochs = models.IntegerField(null=True, blank=True)
    step = models.IntegerField(null=True, blank=True)
    total = models.IntegerField(null=True, blank=True)
    percent = models.FloatField(default=0.0)
    eta_s = models.FloatField(null=True, blank=True)
    task_id = models.CharField(max_length=100, blank=True)
    worker = models.CharField(max_length=255, blank=True, help_text="host:pid of the worker running it.")
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Training run {self.pk} ({self.get_status_display()})"

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED


class TrainingRunItem(models.Model):
    """One item of a run: its outcome, the version it produced, that version's report and gates."""

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="run_items")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    error = models.TextField(blank=True)
    n_train = models.PositiveIntegerField(default=0)
    n_unlabelled = models.PositiveIntegerField(default=0)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    report = models.JSONField(default=dict, blank=True)
    gates = models.JSONField(default=list, blank=True)
    seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["run", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "item"], name="training_run_item_unique")]

    def __str__(self) -> str:
        return f"{self.item.external_id} in run {self.run_id} ({self.status})"


class TrainingProgress(models.Model):
    """A snapshot of a run's progress (at most about one per second)."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="progress_rows")
    at = models.DateTimeField(auto_now_add=True)
    item = models.CharField(max_length=100, blank=True)
    stage = models.CharField(max_length=100, blank=True)
    epoch = models.IntegerField(null=True, blank=True)
    epochs = models.IntegerField(null=True, blank=True)
    step = models.IntegerField(null=True, blank=True)
    total = models.IntegerField(null=True, blank=True)
    percent = models.FloatField(default=0.0)
    eta_s = models.FloatField(null=True, blank=True)
    message = models.TextField(blank=True)
    metrics = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["run", "id"]
        verbose_name_plural = "training progress"

    def __str__(self) -> str:
        return f"run {self.run_id} {self.item} {self.stage} {self.percent:.0f}%"


class ActivationAudit(models.Model):
    """Who put which version into (or out of) service, when, with what metrics and gates."""

    class Action(models.TextChoices):
        ACTIVATE = "activate", "Activated"
        ROLLBACK = "rollback", "Rolled back to"
        REFUSED = "refused", "Activation refused"
        RETIRE = "retire", "Retired"

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="activation_audits")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="activation_audits")
    previous = models.ForeignKey(ModelVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    action = models.CharField(max_length=10, choices=Action.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    actor = models.CharField(max_length=255, help_text="Who: the user name, or the command that did it.")
    at = models.DateTimeField(auto_now_add=True)
    metrics = models.JSONField(default=dict, blank=True, help_text="The version's test metrics at the time.")
    gates = models.JSONField(default=list, blank=True)
    gates_passed = models.BooleanField(default=True)
    overridden = models.BooleanField(default=False, help_text="Activated although gates failed.")
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.version} by {self.actor}"
