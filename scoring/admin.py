from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from scoring import versions
from scoring.models import Assignment, Item, ModelVersion, RubricLevel, Score, Submission, WorkerHeartbeat


class RubricLevelInline(admin.TabularInline):
    model = RubricLevel
    extra = 0


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ("external_id", "title", "score_min", "score_max", "confidence_threshold", "updated_at")
    search_fields = ("external_id", "title", "question")
    inlines = [RubricLevelInline]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("item", "version", "status", "created_at", "activated_at")
    list_filter = ("status",)
    readonly_fields = ("checksum", "created_at", "activated_at")
    actions = ["activate", "retire", "roll_back"]

    def _each(self, request: HttpRequest, queryset: QuerySet, operation, done: str) -> None:
        for version in queryset.select_related("item"):
            try:
                result = operation(version)
            except versions.ModelVersionError as exc:
                self.message_user(request, f"{version}: refused: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{result}: {done}", messages.SUCCESS)

    @admin.action(description="Activate the selected version (verified first)")
    def activate(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(request, queryset, versions.activate_version, "active")

    @admin.action(description="Retire the selected versions")
    def retire(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(request, queryset, versions.retire_version, "retired")

    @admin.action(description="Roll back the selected versions' items to their previous version")
    def roll_back(self, request: HttpRequest, queryset: QuerySet) -> None:
        items = {v.item_id: v.item for v in queryset.select_related("item")}
        for item in items.values():
            try:
                result = versions.rollback(item)
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
