"""What LMS admins paste: the Canvas developer-key configuration, LTI Dynamic Registration, presets."""

from __future__ import annotations

import logging
import secrets
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core import signing
from django.db import transaction
from django.http import HttpRequest

from kdgrade.lti import ags
from kdgrade.lti.models import Deployment, Platform

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


def canvas_configuration(base: str) -> dict:
    """The JSON a Canvas admin points a developer key at (Admin > Developer Keys > + LTI Key > Enter URL)."""
    domain = urlsplit(base).netloc
    launch = f"{base}/lti/launch/"
    placement = {"message_type": "LtiDeepLinkingRequest", "target_link_uri": launch, "text": TOOL_NAME,
                 "selection_width": 800, "selection_height": 600}
    return {
        "title": TOOL_NAME,
        "description": TOOL_DESCRIPTION,
        "oidc_initiation_url": f"{base}/lti/login/",
        "target_link_uri": launch,
        "public_jwk_url": f"{base}/lti/jwks/",
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
    try:
        resp = requests.request(method, url, timeout=float(settings.KDGRADE_LTI_HTTP_TIMEOUT), **kwargs)
    except requests.RequestException as exc:
        raise RegistrationFailed(f"{what}: could not reach the platform ({type(exc).__name__}).") from exc
    if resp.status_code not in (200, 201):
        raise RegistrationFailed(f"{what}: the platform answered HTTP {resp.status_code}.")
    try:
        data = resp.json()
    except ValueError as exc:
        raise RegistrationFailed(f"{what}: the platform's answer is not JSON.") from exc
    if not isinstance(data, dict):
        raise RegistrationFailed(f"{what}: unexpected answer.")
    return data


REGISTRATION_SALT = "kdgrade.lti.dynamic-registration"


def registration_url(base: str) -> str:
    """The Dynamic Registration URL an admin pastes into the LMS.  It carries a signed key that
    expires after KDGRADE_LTI_REGISTRATION_KEY_DAYS, so nobody else can register a platform."""
    key = signing.TimestampSigner(salt=REGISTRATION_SALT).sign(secrets.token_urlsafe(9))
    return f"{base}/lti/register/?key={key}"


def check_registration_key(key: str) -> None:
    """Raise RegistrationFailed unless `key` came from registration_url() and has not expired."""
    days = settings.KDGRADE_LTI_REGISTRATION_KEY_DAYS
    how = ("get a fresh registration URL from kdgrade's admin (LTI platforms) or "
           "`manage.py lti_registration_url`")
    if not key:
        raise RegistrationFailed(f"This registration URL has no key: {how}.")
    try:
        signing.TimestampSigner(salt=REGISTRATION_SALT).unsign(key, max_age=days * 86400)
    except signing.SignatureExpired:
        raise RegistrationFailed(f"This registration URL expired (it is valid {days} days): {how}.") from None
    except signing.BadSignature:
        raise RegistrationFailed(f"This registration URL's key is not valid: {how}.") from None


def dynamic_register(openid_configuration: str, registration_token: str, base: str) -> Platform:
    """LTI Dynamic Registration (tool side): read the platform's OpenID configuration, register kdgrade
    at its registration endpoint, and record the platform and its deployment."""
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
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if registration_token:
        headers["Authorization"] = f"Bearer {registration_token}"
    answer = _get_json("POST", conf["registration_endpoint"], "registration", json=registration_request(base),
                       headers=headers)
    client_id = str(answer.get("client_id", ""))
    deployment_id = str((answer.get(TOOL_CONFIG_CLAIM) or {}).get("deployment_id", ""))
    if not client_id:
        raise RegistrationFailed("The platform did not give kdgrade a client id.")
    product = (conf.get("https://purl.imsglobal.org/spec/lti-platform-configuration") or {})
    family = str(product.get("product_family_code", "")).lower()
    with transaction.atomic():
        platform, _ = Platform.objects.update_or_create(
            issuer=issuer, client_id=client_id,
            defaults={
                "name": f"{product.get('product_family_code') or 'LMS'} at {parts.netloc}"[:200],
                "preset": "moodle" if "moodle" in family else "canvas" if "canvas" in family else "other",
                "auth_url": conf["authorization_endpoint"], "token_url": conf["token_endpoint"],
                "keyset_url": conf["jwks_uri"],
                "token_audience": str(conf.get("authorization_server", "") or ""),
                "is_active": True,
            },
        )
        if deployment_id:
            Deployment.objects.get_or_create(platform=platform, deployment_id=deployment_id)
    log.info("lti: dynamic registration with %s done (platform %s)", parts.netloc, platform.pk)
    return platform


def add_platform(*, issuer: str, client_id: str, deployment_ids: list[str], auth_url: str, token_url: str,
                 keyset_url: str, name: str = "", preset: str = "other", token_audience: str = "") -> Platform:
    """Register (or update) a platform and its deployments: the admin form and `lti_add_platform` call this."""
    with transaction.atomic():
        platform, _ = Platform.objects.update_or_create(
            issuer=issuer, client_id=client_id,
            defaults={"name": name or urlsplit(issuer).netloc or issuer, "preset": preset, "auth_url": auth_url,
                      "token_url": token_url, "keyset_url": keyset_url, "token_audience": token_audience,
                      "is_active": True},
        )
        for dep in deployment_ids:
            Deployment.objects.get_or_create(platform=platform, deployment_id=dep)
    return platform
