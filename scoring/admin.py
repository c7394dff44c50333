import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from scoring import versions
from scoring.models import Assignment, Item, ModelVersion, RubricLevel, Score, Submission, WorkerHeartbeat
from training import activation


class RubricLevelInline(admin.TabularInline):
    model = RubricLevel
    extra = 0


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ("external_id", "title", "score_min", "score_max", "confidence_threshold", "active_model",
                    "updated_at")
    search_fields = ("external_id", "title", "question")
    inlines = [RubricLevelInline]
    actions = ["train"]
    change_form_template = "training/item_change_form.html"

    @admin.display(description="active model")
    def active_model(self, item: Item) -> str:
        active = versions.active_version(item)
        return f"v{active.version}" if active else "none"

    @admin.action(description="Train new models for the selected items")
    def train(self, request: HttpRequest, queryset: QuerySet) -> HttpResponseRedirect:
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
        return HttpResponseRedirect(f"{reverse('admin:training_trainingrun_start')}?ids={ids}")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        item = self.get_object(request, object_id)
        extra = {}
        if item is not None:
            extra = {"item_versions": [(v, activation.check_gates(v)) for v in item.model_versions.all()[:10]],
                     "active": versions.active_version(item)}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Versions come from `register_model` or a training run; their status changes only through the
    audited services (activate with quality gates, roll back, retire), never by editing fields."""

    list_display = ("item", "version", "status", "student_qwk", "gates", "created_at", "activated_at")
    list_filter = ("status", "item")
    fields = ("item", "version", "status", "artifact_path", "checksum", "created_at", "activated_at", "report")
    readonly_fields = fields
    actions = ["activate", "retire", "roll_back"]
    change_form_template = "training/modelversion_change_form.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="student QWK")
    def student_qwk(self, version: ModelVersion) -> str:
        q = ((version.metrics or {}).get("models", {}).get("student") or {}).get("qwk")
        return "" if q is None else f"{q:.3f}"

    @admin.display(description="quality gates")
    def gates(self, version: ModelVersion) -> str:
        result = activation.check_gates(version)
        return "pass" if result.passed else f"{len(result.failed)} failed"

    @admin.display(description="test report (JSON)")
    def report(self, version: ModelVersion) -> str:
        return format_html("<pre style=\"white-space:pre-wrap;max-height:30em;overflow:auto\">{}</pre>",
                           json.dumps(version.metrics, indent=2)[:20000])

    def change_view(self, request, object_id, form_url="", extra_context=None):
        version = self.get_object(request, object_id)
        extra = {}
        if version is not None:
            from training.selectors import audits_for_version

            extra = {"gate_result": activation.check_gates(version), "audits": audits_for_version(version.pk)[:20],
                     "active": versions.active_version(version.item_id)}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def _each(self, request: HttpRequest, queryset: QuerySet, operation, done: str) -> None:
        for version in queryset.select_related("item"):
            try:
                result = operation(version)
            except versions.ModelVersionError as exc:
                self.message_user(request, f"{version}: refused: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{result}: {done}", messages.SUCCESS)

    @admin.action(description="Activate the selected versions (verified, quality gates checked)")
    def activate(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(request, queryset, lambda v: activation.activate(v, user=request.user), "active")

    @admin.action(description="Retire the selected versions")
    def retire(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(request, queryset, lambda v: activation.retire(v, user=request.user), "retired")

    @admin.action(description="Roll back the selected versions' items to their previous version")
    def roll_back(self, request: HttpRequest, queryset: QuerySet) -> None:
        items = {v.item_id: v.item for v in queryset.select_related("item")}
        for item in items.values():
            try:
                result = activation.roll_back(item, user=request.user)
            except versions.ModelVersionError as exc:
                self.message_user(request, f"{item.external_id}: refused: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{item.external_id}: rolled back to {result}", messages.SUCCESS)


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("title", "item", "release", "show_feedback", "created_at")


class ScoreInline(admin.TabularInline):
    model = Score
    extra = 0
    fields = ("model_score", "confidence", "flags", "override_score", "final_score", "passback_state")
    readonly_fields = ("model_score", "confidence", "flags", "final_score", "passback_state")


@admin.register(Submission)
class SubmissionAdmin(admin.ModelAdmin):
    list_display = ("id", "item", "assignment", "source", "created_at")
    list_filter = ("source", "item")
    inlines = [ScoreInline]


@admin.register(Score)
class ScoreAdmin(admin.ModelAdmin):
    list_display = ("submission", "model_score", "confidence", "override_score", "final_score", "passback_state")
    list_filter = ("passback_state",)


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("hostname", "queue", "seen_at")
