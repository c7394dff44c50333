from django.contrib import admin

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
