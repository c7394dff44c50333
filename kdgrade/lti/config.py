"""What LMS admins paste: the Canvas developer-key configuration, LTI Dynamic Registration, presets."""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from kdgrade import outbound
from kdgrade.lti import ags
from kdgrade.lti.models import Deployment, Platform, RegistrationKey

log = logging.getLogger(__name__)

TOOL_NAME = "kdgrade"
TOOL_DESCRIPTION = "Science short answers scored against the rubric by a small distilled model."
SCOPES = [ags.SCOPE_LINEITEM, ags.SCOPE_LINEITEM_RO, ags.SCOPE_RESULT_RO, ags.SCOPE_SCORE, ags.SCOPE_NRPS]
TOOL_CONFIG_CLAIM = "https://purl.imsglobal.org/spec/lti-tool-configuration"

# What Canvas and Moodle use for their endpoints (the admin form fills these in).
PRESETS: dict[str, dict[str, str]] = {
    "canvas": {
        "issuer": "https://canvas.instructure.com",
        "auth_url": "https://sso.canvaslms.com/api/lti/authorize_redirect",
        "token_url": "https://sso.canvaslms.com/login/oauth2/token",
        "keyset_url": "https://sso.canvaslms.com/api/lti/security/jwks",
    },
    "moodle": {
        "issuer": "{site}",
        "auth_url": "{site}/mod/lti/auth.php",
        "token_url": "{site}/mod/lti/token.php",
        "keyset_url": "{site}/mod/lti/certs.php",
    },
}


def preset_values(preset: str, site: str = "") -> dict[str, str]:
    """The endpoints of a preset; for Moodle, `site` is the Moodle site URL (its issuer)."""
    site = site.rstrip("/")
    return {k: v.format(site=site) for k, v in PRESETS.get(preset, {}).items()}


def base_url(request: HttpRequest | None = None) -> str:
    return settings.PUBLIC_URL.rstrip("/")


def canvas_configuration(base: str, jwks_url: str | None = None) -> dict:
    """The JSON a Canvas admin points a developer key at (Admin > Developer Keys > + LTI Key > Enter URL).
    `jwks_url`: the platform's own keyset URL (canvas.json?platform=<jwks_id>)."""
    domain = urlsplit(base).netloc
    launch = f"{base}/lti/launch/"
    placement = {"message_type": "LtiDeepLinkingRequest", "target_link_uri": launch, "text": TOOL_NAME,
                 "selection_width": 800, "selection_height": 600}
    return {
        "title": TOOL_NAME,
        "description": TOOL_DESCRIPTION,
        "oidc_initiation_url": f"{base}/lti/login/",
        "target_link_uri": launch,
        "public_jwk_url": jwks_url or f"{base}/lti/jwks/",
        "scopes": SCOPES,
        "extensions": [{
            "platform": "canvas.instructure.com",
            "domain": domain,
            "tool_id": TOOL_NAME,
            "privacy_level": "name_only",
            "settings": {
                "text": TOOL_NAME,
                "placements": [
                    {"placement": "assignment_selection", **placement},
                    {"placement": "link_selection", **placement},
                ],
            },
        }],
        "custom_fields": {},
    }


def registration_request(base: str) -> dict:
    """The client registration kdgrade sends in LTI Dynamic Registration."""
    launch = f"{base}/lti/launch/"
    return {
        "application_type": "web",
        "response_types": ["id_token"],
        "grant_types": ["implicit", "client_credentials"],
        "initiate_login_uri": f"{base}/lti/login/",
        "redirect_uris": [launch],
        "client_name": TOOL_NAME,
        "jwks_uri": f"{base}/lti/jwks/",
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": " ".join(SCOPES),
        TOOL_CONFIG_CLAIM: {
            "domain": urlsplit(base).netloc,
            "description": TOOL_DESCRIPTION,
            "target_link_uri": launch,
            "claims": ["iss", "sub", "name"],
            "messages": [
                {"type": "LtiDeepLinkingRequest", "target_link_uri": launch, "label": TOOL_NAME,
                 "placements": ["ContentArea", "assignment_selection", "link_selection"]},
                {"type": "LtiResourceLinkRequest", "target_link_uri": launch, "label": TOOL_NAME},
            ],
        },
    }


class RegistrationFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _get_json(method: str, url: str, what: str, **kwargs: object) -> dict:
    """A JSON object from the platform.  Whatever went wrong (no connection, a timeout, an HTTP error, a
    body that is not JSON) reads the same, so the registration page cannot be used to tell a closed
    port from an open one; only a URL kdgrade will not call at all is named as such."""
    try:
        resp = outbound.request(method, url, what=what, **kwargs)
    except outbound.OutboundError as exc:
        if exc.refused:
            raise RegistrationFailed(f"{what}: kdgrade does not call this URL (only public https addresses, "
                                     "same-host redirects).") from None
        resp = None
    data = None
    if resp is not None and resp.status_code in (200, 201):
        try:
            data = resp.json()
        except ValueError:
            data = None
    if not isinstance(data, dict):
        raise RegistrationFailed(f"{what}: kdgrade could not get a usable answer from the platform. Check the "
                                 "URL and the registration token, then start again from the LMS with a new "
                                 "registration URL.")
    return data


# --- which hosts a platform's token endpoint may be on ----------------------------------------------

# Canvas cloud: one issuer for every institution, its OAuth2 endpoints on sso.*.canvaslms.com.
KNOWN_TOKEN_HOSTS: dict[str, set[str]] = {
    "canvas.instructure.com": {"sso.canvaslms.com"},
    "canvas.beta.instructure.com": {"sso.beta.canvaslms.com"},
    "canvas.test.instructure.com": {"sso.test.canvaslms.com"},
}


def _host(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    return parts.netloc.lower() if parts.scheme in ("http", "https") else ""


def token_hosts(issuer: str) -> set[str]:
    """The hosts (host[:port]) a platform with this issuer may have its token URL and audience on: the
    issuer's own, the built-in ones of Canvas cloud, and KDGRADE_LTI_TOKEN_HOSTS pairs."""
    host = _host(issuer)
    hosts = {host} | KNOWN_TOKEN_HOSTS.get(host, set())
    for pair in settings.KDGRADE_LTI_TOKEN_HOSTS:
        iss_host, _, token_host = pair.partition("=")
        if iss_host.strip().lower() == host and token_host.strip():
            hosts.add(token_host.strip().lower())
    hosts.discard("")
    return hosts


def endpoint_problem(issuer: str, client_id: str, token_url: str, token_audience: str,
                     existing: Platform | None = None) -> str | None:
    """Why these platform endpoints cannot be registered, or None.

    A platform must not be able to make kdgrade sign a client assertion meant for another platform: its
    token URL and token audience must be on its own issuer's host, and a client id another issuer holds
    is refused."""
    allowed = token_hosts(issuer)
    if not allowed:
        return "The issuer must be an http(s) URL."
    if _host(token_url) not in allowed:
        return (f"The token URL must be on the issuer's host ({', '.join(sorted(allowed))}); an LMS whose "
                "token endpoint lives elsewhere is listed in KDGRADE_LTI_TOKEN_HOSTS.")
    if token_audience and _host(token_audience) not in allowed:
        return f"The token audience must be a URL on the issuer's host ({', '.join(sorted(allowed))})."
    others = Platform.objects.filter(client_id=client_id).exclude(issuer=issuer)
    if existing is not None:
        others = others.exclude(pk=existing.pk)
    if others.exists():
        return "This client id is already registered for another platform (issuer); kdgrade refuses a second one."
    return None


# --- Dynamic Registration -------------------------------------------------------------------------


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def registration_url(base: str, created_by: str) -> str:
    """A Dynamic Registration URL an admin pastes into the LMS.  Its key is good for one registration
    within KDGRADE_LTI_REGISTRATION_KEY_MINUTES; only its hash is stored.  Callers check that
    `created_by` may add platforms."""
    key = secrets.token_urlsafe(24)
    RegistrationKey.objects.create(
        key_hash=_key_hash(key), created_by=created_by[:150],
        expires_at=timezone.now() + timedelta(minutes=settings.KDGRADE_LTI_REGISTRATION_KEY_MINUTES))
    RegistrationKey.objects.filter(expires_at__lt=timezone.now() - timedelta(days=1)).delete()
    return f"{base}/lti/register/?key={key}"


def use_registration_key(key: str) -> None:
    """Consume the key of a registration URL, or raise RegistrationFailed: unknown, expired or already
    used.  It is spent before the platform is contacted, whatever comes of the registration."""
    how = ("ask a kdgrade administrator for a new registration URL (admin: LTI platforms, or "
           "`manage.py lti_registration_url`)")
    if not key or len(key) > 100:
        raise RegistrationFailed(f"This registration URL has no valid key: {how}.")
    now = timezone.now()
    h = _key_hash(key)
    if RegistrationKey.objects.filter(key_hash=h, used_at__isnull=True, expires_at__gt=now).update(used_at=now):
        return
    row = RegistrationKey.objects.filter(key_hash=h).first()
    if row is None:
        raise RegistrationFailed(f"This registration URL's key is not valid: {how}.")
    if row.used_at is not None:
        raise RegistrationFailed(f"This registration URL was already used (each is good once): {how}.")
    minutes = settings.KDGRADE_LTI_REGISTRATION_KEY_MINUTES
    raise RegistrationFailed(f"This registration URL expired (it is valid {minutes} minutes): {how}.")


def dynamic_register(openid_configuration: str, registration_token: str, base: str) -> Platform:
    """LTI Dynamic Registration (tool side): read the platform's OpenID configuration, register kdgrade
    at its registration endpoint, and record the platform and its deployment.

    The platform gets its own signing key, published at a keyset URL of its own.  A registration that
    names a client id held by another issuer, or a token endpoint off its issuer's host, is refused; one
    for a platform already registered adds its deployment and changes nothing else (a deactivated
    platform stays off)."""
    parts = urlsplit(openid_configuration)
    if parts.scheme not in ("https", "http") or (parts.scheme == "http" and settings.PRODUCTION):
        raise RegistrationFailed("The OpenID configuration URL must be https.")
    conf = _get_json("GET", openid_configuration, "OpenID configuration")
    issuer = str(conf.get("issuer", ""))
    if not issuer or urlsplit(issuer).netloc != parts.netloc:
        raise RegistrationFailed("The platform's issuer does not match the host of its OpenID configuration.")
    needed = ["authorization_endpoint", "token_endpoint", "jwks_uri", "registration_endpoint"]
    missing = [k for k in needed if not conf.get(k)]
    if missing:
        raise RegistrationFailed(f"The platform's OpenID configuration lacks {', '.join(missing)}.")
    if any(not isinstance(conf[k], str) for k in needed):
        raise RegistrationFailed("The platform's OpenID configuration has endpoints that are not URLs.")
    audience = str(conf.get("authorization_server", "") or "")
    if _host(conf["token_endpoint"]) not in token_hosts(issuer) or (audience and _host(audience)
                                                                     not in token_hosts(issuer)):
        raise RegistrationFailed("The platform's token endpoint (or token audience) is not on its issuer's host.")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if registration_token:
        headers["Authorization"] = f"Bearer {registration_token}"
    jwks_id = secrets.token_urlsafe(16)
    request_body = registration_request(base)
    request_body["jwks_uri"] = f"{base}/lti/jwks/{jwks_id}/"
    answer = _get_json("POST", conf["registration_endpoint"], "registration", json_body=request_body,
                       headers=headers)
    client_id = str(answer.get("client_id", ""))[:255]
    deployment_id = str((answer.get(TOOL_CONFIG_CLAIM) or {}).get("deployment_id", ""))[:255]
    if not client_id:
        raise RegistrationFailed("The platform did not give kdgrade a client id.")
    product = (conf.get("https://purl.imsglobal.org/spec/lti-platform-configuration") or {})
    family = str(product.get("product_family_code", "")).lower()
    with transaction.atomic():
        existing = Platform.objects.select_for_update().filter(issuer=issuer, client_id=client_id).first()
        problem = endpoint_problem(issuer, client_id, conf["token_endpoint"], audience, existing)
        if problem:
            raise RegistrationFailed(problem)
        if existing is not None and not existing.is_active:
            raise RegistrationFailed("This platform was deactivated in kdgrade; an administrator must "
                                     "reactivate it there. Nothing was changed.")
        platform = existing or Platform.objects.create(
            issuer=issuer, client_id=client_id, jwks_id=jwks_id, own_key=True,
            name=f"{product.get('product_family_code') or 'LMS'} at {parts.netloc}"[:200],
            preset="moodle" if "moodle" in family else "canvas" if "canvas" in family else "other",
            auth_url=conf["authorization_endpoint"][:500], token_url=conf["token_endpoint"][:500],
            keyset_url=conf["jwks_uri"][:500], token_audience=audience[:500],
        )
        if deployment_id:
            Deployment.objects.get_or_create(platform=platform, deployment_id=deployment_id)
    log.info("lti: dynamic registration with %s done (platform %s%s)", parts.netloc, platform.pk,
             ", already registered: deployment added" if existing else "")
    return platform


def add_platform(*, issuer: str, client_id: str, deployment_ids: list[str], auth_url: str, token_url: str,
                 keyset_url: str, name: str = "", preset: str = "other", token_audience: str = "") -> Platform:
    """Register (or update) a platform and its deployments (`lti_add_platform`, the development LMS).
    Raises RegistrationFailed for endpoints `endpoint_problem` refuses."""
    with transaction.atomic():
        existing = Platform.objects.filter(issuer=issuer, client_id=client_id).first()
        problem = endpoint_problem(issuer, client_id, token_url, token_audience, existing)
        if problem:
            raise RegistrationFailed(problem)
        platform, _ = Platform.objects.update_or_create(
            issuer=issuer, client_id=client_id,
            defaults={"name": name or urlsplit(issuer).netloc or issuer, "preset": preset, "auth_url": auth_url,
                      "token_url": token_url, "keyset_url": keyset_url, "token_audience": token_audience,
                      "is_active": True},
        )
        for dep in deployment_ids:
            Deployment.objects.get_or_create(platform=platform, deployment_id=dep)
    return platform
