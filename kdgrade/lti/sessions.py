"""Launch sessions: finding the live one behind a page's token, and sweeping expired ones."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from kdgrade.lti.models import LaunchSession, LoginState


def session_for(token: str) -> LaunchSession | None:
    """The live launch session with this token, or None."""
    if not token:
        return None
    return (
        LaunchSession.objects.select_related("context", "user", "platform", "resource_link")
        .filter(token=token, expires_at__gt=timezone.now())
        .first()
    )


def purge_expired_sessions(older_than_hours: float = 24) -> int:
    """Delete launch sessions that expired more than `older_than_hours` ago, and expired login states
    (the beat sweep calls this)."""
    now = timezone.now()
    LoginState.objects.filter(expires_at__lt=now).delete()
    return LaunchSession.objects.filter(expires_at__lt=now - timedelta(hours=older_than_hours)).delete()[0]
