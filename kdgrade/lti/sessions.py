"""Launch sessions: starting one, finding the live one behind a page's token, rotating its token, and
sweeping expired ones.

Only a SHA-256 of a launch token is stored, so the table (a backup, the admin) holds nothing that acts
as a user.  A session lives KDGRADE_LTI_LAUNCH_SECONDS at most; its token is replaced every
KDGRADE_LTI_LAUNCH_ROTATE_SECONDS (the previous one stays good KDGRADE_LTI_LAUNCH_GRACE_SECONDS, for a
page already open in another tab), which keeps a token copied from a log or a browser history short-lived.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from kdgrade.lti.models import LaunchSession, LoginState


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(**fields: object) -> LaunchSession:
    """A new launch session with a fresh token (in `session.token`, never stored)."""
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    session = LaunchSession.objects.create(
        token_hash=token_hash(token), token_issued_at=now,
        expires_at=now + timedelta(seconds=settings.KDGRADE_LTI_LAUNCH_SECONDS), **fields)
    session.token = token
    return session


def session_for(token: str) -> LaunchSession | None:
    """The live launch session with this token (its current one, or the previous one within the grace
    period), or None.  `session.token` is the token its pages must carry from now on."""
    if not token or len(token) > 100:
        return None
    now = timezone.now()
    h = token_hash(token)
    session = (
        LaunchSession.objects.select_related("context", "user", "platform", "resource_link")
        .filter(Q(token_hash=h) | Q(previous_token_hash=h, previous_valid_until__gt=now), expires_at__gt=now)
        .first()
    )
    if session is None:
        return None
    session.token = token
    if session.token_hash != h:
        # The previous token, after a rotation (a page open in another tab): good until its grace ends.
        return session
    issued = session.token_issued_at or session.created_at
    if issued <= now - timedelta(seconds=settings.KDGRADE_LTI_LAUNCH_ROTATE_SECONDS):
        rotate(session)
    return session


def rotate(session: LaunchSession) -> None:
    """Give `session` a new token; the one it had stays good for the grace period."""
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    updates: dict[str, object] = {
        "token_hash": token_hash(token), "token_issued_at": now, "previous_token_hash": session.token_hash,
        "previous_valid_until": now + timedelta(seconds=settings.KDGRADE_LTI_LAUNCH_GRACE_SECONDS)}
    # Only if nobody rotated it meanwhile (two tabs at once): else the other rotation stands and this
    # request goes on with the token it presented.
    if LaunchSession.objects.filter(pk=session.pk, token_hash=session.token_hash).update(**updates):
        for k, v in updates.items():
            setattr(session, k, v)
        session.token = token


def purge_expired_sessions(older_than_hours: float = 24) -> int:
    """Delete launch sessions that expired more than `older_than_hours` ago, and expired login states
    (the beat sweep calls this)."""
    now = timezone.now()
    LoginState.objects.filter(expires_at__lt=now).delete()
    return LaunchSession.objects.filter(expires_at__lt=now - timedelta(hours=older_than_hours)).delete()[0]
