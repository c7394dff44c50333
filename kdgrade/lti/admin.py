"""Admin: platform registrations (with Canvas and Moodle presets), keys, links, the grade outbox."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse

from kdgrade.lti import config, keys, outbox, privacy
from kdgrade.lti.models import (
    Context,
    Deployment,
    GradeOutbox,
    LaunchSession,
    LtiUser,
    Platform,
    ResourceLink,
    ToolKey,
)


class DeploymentInline(admin.TabularInline):
    model = Deployment
    extra = 1


def _https_urls(field: models.Field, **kwargs: object) -> forms.Field | None:
    if isinstance(field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return field.formfield(**kwargs)


class PlatformForm(forms.ModelForm):
    moodle_site = forms.URLField(
        required=False, assume_scheme="https",
        help_text="Moodle preset: your Moodle site URL, e.g. https://moodle.school.org (it is the issuer).",
    )

    class Meta:
        model = Platform
        formfield_callback = _https_urls
        fields = ["name", "preset", "moodle_site", "issuer", "client_id", "auth_url", "token_url", "keyset_url",
                  "token_audience", "frame_origins", "own_key", "is_active"]
        widgets = {"frame_origins": forms.Textarea(attrs={"rows": 3, "cols": 60})}

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        for f in ("issuer", "auth_url", "token_url", "keyset_url"):
            self.fields[f].required = False

    def clean(self) -> dict:
        data = super().clean()
        preset = data.get("preset")
        if preset == "moodle" and not data.get("moodle_site") and not data.get("issuer"):
            raise forms.ValidationError("The Moodle preset needs the Moodle site URL.")
        values = config.preset_values(preset, data.get("moodle_site") or data.get("issuer") or "")
        for key, value in values.items():
            if not data.get(key):
                data[key] = value
        for f in ("issuer", "auth_url", "token_url", "keyset_url"):
            if not data.get(f):
                self.add_error(f, "Required (or choose the Canvas or Moodle preset).")
        if data.get("issuer") and data.get("token_url") and data.get("client_id"):
            problem = config.endpoint_problem(data["issuer"], data["client_id"], data["token_url"],
                                              data.get("token_audience") or "", self.instance if self.instance.pk
                                              else None)
            if problem:
                raise forms.ValidationError(problem)
        return data


def _erase_action(erase: Callable[[Any], privacy.Erased], what: str) -> Callable[..., HttpResponse | None]:
    """An admin action that erases the selected rows after a confirmation page saying what goes and what
    stays in the LMS; it needs the delete permission of the model."""

    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if not modeladmin.has_delete_permission(request):
            raise PermissionDenied
        if request.POST.get("confirm") != "yes":
            return TemplateResponse(request, "admin/lti/erase_confirm.html", {
                **modeladmin.admin_site.each_context(request), "title": f"Erase {what}", "objects": list(queryset),
                "lms_keeps": privacy.LMS_KEEPS[what], "action": request.POST.get("action", ""),
                "opts": modeladmin.model._meta, "what": what,
                "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME)})
        for obj in queryset:
            messages.success(request, erase(obj).summary())
        return None

    action.__name__ = f"erase_{what}s"  # the action's name in the admin's form
    action.allowed_permissions = ("delete",)  # type: ignore[attr-defined]
    return admin.action(description=f"Erase the selected {what}(s) and all their students' data")(action)


erase_students = _erase_action(privacy.erase_student, "student")
erase_courses = _erase_action(privacy.erase_course, "course")
erase_platforms = _erase_action(privacy.erase_platform, "platform")


@admin.register(Platform)
class PlatformAdmin(admin.ModelAdmin):
    change_list_template = "admin/lti/platform/change_list.html"
    form = PlatformForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["name", "preset", "issuer", "client_id", "is_active"]
    readonly_fields = ["kdgrade_keyset_url"]
    actions = [erase_platforms]
    inlines = [DeploymentInline]

    @admin.display(description="Keyset URL to give the LMS")
    def kdgrade_keyset_url(self, obj: Platform | None) -> str:
        if obj is None or not obj.pk:
            return "Shown once the platform is saved: give it to the LMS as kdgrade's public JWK (keyset) URL."
        url = keys.jwks_url(settings.PUBLIC_URL, obj)
        if obj.own_key:
            return (f"{url} (this platform's own key; Canvas: {settings.PUBLIC_URL}/lti/canvas.json?platform="
                    f"{obj.jwks_id})")
        return f"{url} (shared key of older registrations)"

    def get_urls(self) -> list:
        extra = [path("registration-url/", self.admin_site.admin_view(self.registration_url_view),
                      name="lti_platform_registration_url")]
        return extra + super().get_urls()

    def registration_url_view(self, request: HttpRequest) -> HttpResponse:
        """POST: a new single-use Dynamic Registration URL, for users allowed to add platforms."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:lti_platform_changelist"))
        url = config.registration_url(settings.PUBLIC_URL, created_by=request.user.get_username())
        context = {**self.admin_site.each_context(request), "registration_url": url, "opts": self.model._meta,
                   "title": "Dynamic Registration URL",
                   "registration_minutes": settings.KDGRADE_LTI_REGISTRATION_KEY_MINUTES}
        return TemplateResponse(request, "admin/lti/platform/registration_url.html", context)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_register": self.has_add_permission(request),
                         "registration_minutes": settings.KDGRADE_LTI_REGISTRATION_KEY_MINUTES}
        return super().changelist_view(request, extra_context)


@admin.register(ToolKey)
class ToolKeyAdmin(admin.ModelAdmin):
    list_display = ["kid", "signing", "published", "created_at", "retired_at"]
    fields = ["kid", "public_jwk", "signing", "published", "created_at", "retired_at"]
    readonly_fields = ["kid", "public_jwk", "created_at", "retired_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are made by `manage.py lti_rotate_keys`: the private half is never shown


@admin.register(GradeOutbox)
class GradeOutboxAdmin(admin.ModelAdmin):
    list_display = ["id", "state", "attempts", "last_status", "last_error", "timestamp", "next_attempt_at"]
    list_filter = ["state"]
    readonly_fields = [f.name for f in GradeOutbox._meta.fields]
    actions = ["retry"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # rows are written with their score, never by hand

    @admin.action(description="Send the selected failed grades again")
    def retry(self, request: HttpRequest, queryset: QuerySet[GradeOutbox]) -> None:
        n = 0
        for row in queryset.filter(state=GradeOutbox.State.FAILED):
            outbox.retry_by_hand(row)
            n += 1
        messages.info(request, f"{n} grade post(s) queued again.")




@admin.register(LtiUser)
class LtiUserAdmin(admin.ModelAdmin):
    """LMS users (students and teachers): erase one, or export what kdgrade holds about one."""

    list_display = ["id", "platform", "sub", "name"]
    list_filter = ["platform"]
    search_fields = ["sub"]
    fields = ["platform", "sub", "name"]
    readonly_fields = fields
    actions = [erase_students, "export"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # users come from launches and roster syncs

    def has_change_permission(self, request: HttpRequest, obj: LtiUser | None = None) -> bool:
        return False

    @admin.action(description="Export the selected student's data (JSON)", permissions=["view"])
    def export(self, request: HttpRequest, queryset: QuerySet[LtiUser]) -> HttpResponse | None:
        if queryset.count() != 1:
            messages.error(request, "Select one student to export.")
            return None
        user = queryset.select_related("platform").get()
        response = JsonResponse(privacy.export_student(user), json_dumps_params={"indent": 2, "ensure_ascii": False})
        response["Content-Disposition"] = f'attachment; filename="kdgrade-student-{user.pk}.json"'
        return response


@admin.register(Context)
class ContextAdmin(admin.ModelAdmin):
    list_display = ["id", "platform", "context_id", "title", "roster_synced_at"]
    actions = [erase_courses]
admin.site.register(ResourceLink, list_display=["id", "context", "resource_link_id", "assignment", "lineitem_url"])


@admin.register(LaunchSession)
class LaunchSessionAdmin(admin.ModelAdmin):
    """Launches, read-only and without their token (a bearer secret: whoever holds it acts as that user)."""

    list_display = ["id", "context", "is_instructor", "message_type", "created_at", "expires_at"]
    fields = ["platform", "context", "user", "resource_link", "is_instructor", "message_type", "deployment_id",
              "created_at", "expires_at"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: LaunchSession | None = None) -> bool:
        return False
