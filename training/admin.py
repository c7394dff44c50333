from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from training import admin_views
from training.models import ActivationAudit, GatePolicy, ImportBatch, TrainingAnswer, TrainingRun, TrainingRunItem


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(ImportBatch)
class ImportBatchAdmin(ReadOnlyAdmin):
    list_display = ("id", "filename", "n_rows", "created_by", "created_at")
    readonly_fields = ("filename", "rubric_filename", "sha256", "n_rows", "summary", "created_by", "created_at")
    change_list_template = "training/importbatch_changelist.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("training.add_importbatch")

    def add_view(self, request, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:training_importbatch_upload"))

    def get_urls(self):
        return [path("upload/", self.admin_site.admin_view(admin_views.upload), name="training_importbatch_upload"),
                *super().get_urls()]


@admin.register(TrainingAnswer)
class TrainingAnswerAdmin(ReadOnlyAdmin):
    list_display = ("item", "response_id", "score", "score2", "batch")
    list_filter = ("item",)
    search_fields = ("response_id",)


@admin.register(GatePolicy)
class GatePolicyAdmin(admin.ModelAdmin):
    list_display = ("item", "min_qwk", "max_below_human", "max_abs_smd", "max_abs_smd_group", "max_below_teacher",
                    "beat_baselines", "max_below_active")


class RunItemInline(admin.TabularInline):
    model = TrainingRunItem
    fields = ("item", "status", "model_version", "n_train", "n_unlabelled", "seconds", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "status", "items_list", "percent", "stage", "created_by", "created_at", "page")
    list_filter = ("status",)
    inlines = [RunItemInline]
    exclude = ("items",)
    readonly_fields = [f.name for f in TrainingRun._meta.fields]

    @admin.display(description="items")
    def items_list(self, run: TrainingRun) -> str:
        return ", ".join(ri.item.external_id for ri in run.run_items.select_related("item"))

    @admin.display(description="")
    def page(self, run: TrainingRun) -> str:
        return format_html('<a href="{}">progress and report</a>',
                           reverse("admin:training_trainingrun_progress", args=[run.pk]))

    def get_urls(self):
        v = self.admin_site.admin_view
        return [
            path("start/", v(admin_views.start), name="training_trainingrun_start"),
            path("<int:run_id>/progress/", v(admin_views.progress), name="training_trainingrun_progress"),
            path("<int:run_id>/status.json", v(admin_views.status_json), name="training_trainingrun_status"),
            path("<int:run_id>/cancel/", v(admin_views.cancel), name="training_trainingrun_cancel"),
            path("<int:run_id>/report/", v(admin_views.report), name="training_trainingrun_report"),
            *super().get_urls(),
        ]


@admin.register(ActivationAudit)
class ActivationAuditAdmin(ReadOnlyAdmin):
    list_display = ("at", "item", "action", "version", "actor", "gates_passed", "overridden")
    list_filter = ("action", "overridden", "gates_passed")
    readonly_fields = [f.name for f in ActivationAudit._meta.fields]

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_urls(self):
        v = self.admin_site.admin_view
        return [
            path("activate/<int:version_id>/", v(admin_views.activate_version), name="training_activate_version"),
            path("roll-back/<int:item_id>/", v(admin_views.roll_back), name="training_roll_back"),
            *super().get_urls(),
        ]
