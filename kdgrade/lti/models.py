"""LTI 1.3 state kept by kdgrade: platforms, the tool's keys, courses, users, links, the grade outbox.

Student names and answers are personal data: names are kept only for the teacher's roster page and
are never logged.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from django.db import models
from django.db.models import Q

from scoring.models import Assignment, Score

if TYPE_CHECKING:
    from pylti1p3.registration import Registration


class ToolKey(models.Model):
    """An RSA key pair of the tool.  The private half never leaves the database, where it is encrypted
    with KDGRADE_KEY_ENCRYPTION_KEY (kdgrade.lti.keys).

    A key belongs to one key set: a platform's own (published only at that platform's keyset URL) or
    the shared one (platform empty; /lti/jwks/, for platforms registered before per-platform keys).
    The newest active key of a set signs; every published key is in its JWKS, so a rotated-out key keeps
    verifying launches and tokens in flight until it is retired.
    """

    kid = models.CharField(max_length=64, unique=True)
    platform = models.ForeignKey("Platform", on_delete=models.CASCADE, null=True, blank=True,
                                 related_name="tool_keys", help_text="Empty: the shared key set.")
    private_pem = models.TextField(help_text="PEM, PKCS#8, encrypted.  Secret: never exported.")
    public_jwk = models.JSONField()
    signing = models.BooleanField(default=True, help_text="Signs new messages (only the newest signing key does).")
    published = models.BooleanField(default=True, help_text="Listed on its key set's JWKS URL.")
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"key {self.kid} ({'signing' if self.signing else 'published' if self.published else 'retired'})"


def _new_jwks_id() -> str:
    return secrets.token_urlsafe(16)


class Platform(models.Model):
    """A registered LMS (an issuer + the client id it gave kdgrade)."""

    class Preset(models.TextChoices):
        CANVAS = "canvas", "Canvas"
        MOODLE = "moodle", "Moodle"
        OTHER = "other", "Other LTI 1.3 platform"

    name = models.CharField(max_length=200)
    preset = models.CharField(max_length=10, choices=Preset.choices, default=Preset.OTHER)
    issuer = models.CharField(max_length=255, help_text="e.g. https://canvas.instructure.com or your Moodle URL")
    client_id = models.CharField(max_length=255)
    auth_url = models.URLField(max_length=500, help_text="OIDC authentication request URL of the platform.")
    token_url = models.URLField(max_length=500, help_text="OAuth2 access token URL of the platform.")
    keyset_url = models.URLField(max_length=500, help_text="The platform's public keyset (JWKS) URL.")
    token_audience = models.CharField(
        max_length=500, blank=True, help_text="Audience of the client assertion, when not the token URL."
    )
    is_active = models.BooleanField(default=True)
    own_key = models.BooleanField(
        default=True, help_text="Signs with its own key, published only at its own keyset URL.  Off: the shared "
        "key on /lti/jwks/ (registrations made before per-platform keys; turn on, then give the LMS the new URL).")
    jwks_id = models.CharField(max_length=64, unique=True, default=_new_jwks_id, editable=False,
                               help_text="Names this platform's keyset URL, /lti/jwks/<jwks_id>/.")
    frame_origins = models.TextField(
        blank=True, help_text="Origins whose pages show kdgrade in a frame, beyond the issuer and the "
        "authentication URL, one per line: e.g. https://district.instructure.com for Canvas cloud.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["issuer", "client_id"], name="lti_platform_unique_client")]

    def __str__(self) -> str:
        return f"{self.name} ({self.issuer})"

    def to_registration(self) -> Registration:
        """This platform as a pylti1p3 Registration, signed with kdgrade's current key for this platform
        (its own key set, or the shared one for a registration made before per-platform keys)."""
        import json

        from jwcrypto.jwk import JWK
        from pylti1p3.registration import Registration

        from kdgrade.lti import keys

        key = keys.signing_key_for(self)
        public_pem = JWK.from_json(json.dumps(key.public_jwk)).export_to_pem().decode()
        reg = Registration()
        reg.set_issuer(self.issuer).set_client_id(self.client_id)
        reg.set_auth_login_url(self.auth_url).set_auth_token_url(self.token_url)
        reg.set_key_set_url(self.keyset_url)
        if self.token_audience:
            reg.set_auth_audience(self.token_audience)
        reg.set_tool_private_key(keys.private_pem(key)).set_tool_public_key(public_pem)
        return reg


class Deployment(models.Model):
    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="deployments")
    deployment_id = models.CharField(max_length=255)
    is_active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["platform", "deployment_id"], name="lti_deployment_unique")
        ]

    def __str__(self) -> str:
        return f"{self.platform.name} / {self.deployment_id}"


class Context(models.Model):
    """A course (LTI context) on a platform."""

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="contexts")
    deployment = models.ForeignKey(Deployment, on_delete=models.SET_NULL, null=True, blank=True)
    context_id = models.CharField(max_length=255)
    title = models.CharField(max_length=500, blank=True)
    label = models.CharField(max_length=255, blank=True)
    memberships_url = models.URLField(max_length=500, blank=True)
    roster_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["platform", "context_id"], name="lti_context_unique")]

    def __str__(self) -> str:
        return self.title or self.context_id


class LtiUser(models.Model):
    """A platform user; `sub` is also the AGS userId for Canvas and Moodle."""

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="users")
    sub = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True, help_text="Personal data: shown to teachers only.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["platform", "sub"], name="lti_user_unique")]

    def __str__(self) -> str:
        return f"user {self.pk}"


class Membership(models.Model):
    """A user's roles in a course (from launches and from NRPS roster syncs)."""

    context = models.ForeignKey(Context, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(LtiUser, on_delete=models.CASCADE, related_name="memberships")
    roles = models.JSONField(default=list)
    is_learner = models.BooleanField(default=False)
    is_instructor = models.BooleanField(default=False)
    active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["context", "user"], name="lti_membership_unique")]

    def __str__(self) -> str:
        return f"membership {self.pk}"


class LtiAssignment(models.Model):
    """Which course an assignment belongs to (one course each; a course copy gets its own)."""

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="lti")
    context = models.ForeignKey(Context, on_delete=models.CASCADE, related_name="assignments")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"assignment {self.assignment_id} in context {self.context_id}"


class ResourceLink(models.Model):
    """A placement of kdgrade in a course, with its gradebook column (AGS line item)."""

    context = models.ForeignKey(Context, on_delete=models.CASCADE, related_name="resource_links")
    resource_link_id = models.CharField(max_length=255)
    title = models.CharField(max_length=500, blank=True)
    assignment = models.ForeignKey(
        Assignment, on_delete=models.SET_NULL, null=True, blank=True, related_name="resource_links"
    )
    ags_scopes = models.JSONField(default=list, blank=True)
    lineitems_url = models.URLField(max_length=500, blank=True)
    lineitem_url = models.URLField(max_length=500, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["context", "resource_link_id"], name="lti_resource_link_unique")
        ]

    def __str__(self) -> str:
        return self.title or self.resource_link_id


class LoginState(models.Model):
    """An OIDC login kdgrade started: the launch that comes back must carry its state, used once.

    A table rather than the cache: a cache may evict entries under load (Django's database cache keeps
    300), and a burst of logins must never push out a login in progress.
    """

    state = models.CharField(max_length=64, unique=True)
    nonce = models.CharField(max_length=64)
    platform = models.ForeignKey(Platform, on_delete=models.CASCADE)
    target = models.CharField(max_length=1000)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"login state {self.pk}"


class RegistrationKey(models.Model):
    """The key in a Dynamic Registration URL: made by a user allowed to add platforms, good once, for
    KDGRADE_LTI_REGISTRATION_KEY_MINUTES.  Only its hash is kept."""

    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.CharField(max_length=150, blank=True, help_text="Who made it (user name or 'command').")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"registration key {self.pk}"


class LaunchSession(models.Model):
    """A validated launch: who, where, in which role.

    Its random token travels in the page's links and forms (every request must carry it: pages keep
    working inside a cross-site iframe whose browser drops the tool's cookies).  Only a hash of the
    token is stored; the token is replaced every KDGRADE_LTI_LAUNCH_ROTATE_SECONDS, the previous one
    staying good for a short grace period.  `token` is the plain token of this request (not stored).
    """

    token_hash = models.CharField(max_length=64, unique=True)
    previous_token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    previous_valid_until = models.DateTimeField(null=True, blank=True)
    token_issued_at = models.DateTimeField(null=True, blank=True)
    platform = models.ForeignKey(Platform, on_delete=models.CASCADE)
    context = models.ForeignKey(Context, on_delete=models.CASCADE)
    user = models.ForeignKey(LtiUser, on_delete=models.CASCADE)
    resource_link = models.ForeignKey(ResourceLink, on_delete=models.CASCADE, null=True, blank=True)
    is_instructor = models.BooleanField(default=False)
    message_type = models.CharField(max_length=50, default="LtiResourceLinkRequest")
    deep_link_settings = models.JSONField(default=dict, blank=True)
    deployment_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    token: str = ""  # the plain token this request presented (or was just given); never stored

    def __str__(self) -> str:
        return f"launch {self.pk} ({'instructor' if self.is_instructor else 'learner'})"


class GradeSlot(models.Model):
    """One gradebook cell (line item x user): posts to it are serialised by a lease."""

    resource_link = models.ForeignKey(ResourceLink, on_delete=models.CASCADE, related_name="grade_slots")
    user_sub = models.CharField(max_length=255)
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_sent_timestamp = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["resource_link", "user_sub"], name="lti_grade_slot_unique")]

    def __str__(self) -> str:
        return f"gradebook cell {self.pk}"


class GradeOutbox(models.Model):
    """A score to post to the gradebook, written in the same transaction as the score."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENT = "sent", "Sent"
        SUPERSEDED = "superseded", "Replaced by a newer score"
        FAILED = "failed", "Failed (needs attention)"

    slot = models.ForeignKey(GradeSlot, on_delete=models.CASCADE, related_name="posts")
    score = models.ForeignKey(Score, on_delete=models.CASCADE, related_name="grade_posts")
    payload = models.JSONField(help_text="The AGS score object, timestamp included.")
    timestamp = models.DateTimeField(help_text="The AGS timestamp: orders the posts of one cell.")
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_status = models.IntegerField(null=True, blank=True, help_text="Last HTTP status from the platform.")
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]
        constraints = [
            models.UniqueConstraint(fields=["slot", "timestamp"], name="lti_outbox_one_post_per_timestamp"),
            models.CheckConstraint(
                condition=Q(state__in=["pending", "sent", "superseded", "failed"]), name="lti_outbox_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"grade post {self.pk} ({self.state})"
