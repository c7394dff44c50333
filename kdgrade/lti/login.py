"""OIDC third-party initiated login: check the request against the registered platforms and build the
redirect to the platform's authentication URL.  State and nonce are kept on the server (a LoginState
row), bound to each other, and consumed once by the launch."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from kdgrade.lti.errors import LaunchRefused
from kdgrade.lti.models import LoginState, Platform

STATE_TTL = 600  # seconds a login may take to come back as a launch
STATE_COOKIE_PREFIX = "lti1p3-state-"


@dataclass
class LoginRedirect:
    url: str
    state: str
    cookie_name: str


def state_cookie_name(state: str) -> str:
    """The cookie that binds a login's state to the browser that started it."""
    return STATE_COOKIE_PREFIX + hashlib.sha256(state.encode()).hexdigest()[:16]


def within_kdgrade(url: str, request: HttpRequest) -> bool:
    """True when `url` is an LTI page of this kdgrade (its public URL or the host it is served on)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.path.startswith("/lti/"):
        return False
    origins = {urlsplit(settings.PUBLIC_URL)[:2], urlsplit(request.build_absolute_uri("/"))[:2]}
    return (parts.scheme, parts.netloc) in origins


def login(request: HttpRequest, params: dict[str, str]) -> LoginRedirect:
    """Validate a third-party initiated login and build the redirect to the platform's auth URL."""
    iss = params.get("iss", "")
    login_hint = params.get("login_hint", "")
    target = params.get("target_link_uri", "")
    client_id = params.get("client_id", "")
    deployment_id = params.get("lti_deployment_id", "")
    if not iss or not login_hint or not target:
        raise LaunchRefused("The login request misses iss, login_hint or target_link_uri.", 400)
    qs = Platform.objects.filter(issuer=iss, is_active=True)
    if client_id:
        qs = qs.filter(client_id=client_id)
    platforms = list(qs[:2])
    if not platforms:
        raise LaunchRefused("This learning platform is not registered with kdgrade.", 403)
    if len(platforms) > 1:
        raise LaunchRefused("Several registrations share this issuer: the login must name its client_id.", 400)
    platform = platforms[0]
    if deployment_id and not platform.deployments.filter(deployment_id=deployment_id, is_active=True).exists():
        raise LaunchRefused("This deployment is not registered with kdgrade.", 403)
    if len(target) > 1000 or not within_kdgrade(target, request):
        raise LaunchRefused("The target link is not a kdgrade page.", 400)
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    now = timezone.now()
    LoginState.objects.filter(expires_at__lt=now).delete()
    LoginState.objects.create(state=state, nonce=nonce, platform=platform, target=target,
                              expires_at=now + timedelta(seconds=STATE_TTL))
    query = {
        "scope": "openid",
        "response_type": "id_token",
        "response_mode": "form_post",
        "prompt": "none",
        "client_id": platform.client_id,
        "redirect_uri": request.build_absolute_uri("/lti/launch/"),
        "state": state,
        "nonce": nonce,
        "login_hint": login_hint,
    }
    if params.get("lti_message_hint"):
        query["lti_message_hint"] = params["lti_message_hint"]
    sep = "&" if "?" in platform.auth_url else "?"
    return LoginRedirect(url=f"{platform.auth_url}{sep}{urlencode(query)}", state=state,
                         cookie_name=state_cookie_name(state))
