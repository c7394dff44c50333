"""Admin: platform registrations (with Canvas and Moodle presets), keys, links, the grade outbox."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from kdgrade.lti import config, outbox
from kdgrade.lti.models import Context, Deployment, GradeOutbox, LaunchSession, Platform, ResourceLink, ToolKey


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
                  "token_audience", "is_active"]

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
        return data


@admin.register(Platform)
class PlatformAdmin(admin.ModelAdmin):
    change_list_template = "admin/lti/platform/change_list.html"
    form = PlatformForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["name", "preset", "issuer", "client_id", "is_active"]
    inlines = [DeploymentInline]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        url = config.registration_url(settings.PUBLIC_URL)
        extra_context = {**(extra_context or {}), "registration_url": url,
                         "registration_days": settings.KDGRADE_LTI_REGISTRATION_KEY_DAYS}
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


admin.site.register(Context, list_display=["id", "platform", "context_id", "title", "roster_synced_at"])
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
