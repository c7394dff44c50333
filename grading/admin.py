from django.contrib import admin

from grading.models import AttemptPolicy, ReviewEvent


@admin.register(ReviewEvent)
class ReviewEventAdmin(admin.ModelAdmin):
    """The audit trail: readable, never edited."""

    list_display = ("created_at", "actor_name", "action", "submission", "old_score", "new_score")
    list_filter = ("action",)
    search_fields = ("actor_name", "note")

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(AttemptPolicy)
class AttemptPolicyAdmin(admin.ModelAdmin):
    list_display = ("assignment", "resubmission_allowed", "max_attempts", "counts")
