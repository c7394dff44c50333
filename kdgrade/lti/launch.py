"""OIDC login initiation and LTI 1.3 launch validation (on pylti1p3), configured from the database.

State and nonce are kept on the server (a LoginState row), bound to each other, and consumed once; the
state cookie is checked too when the browser sends it, so a launch in a cross-site iframe that drops the
tool's cookies still works, and a replay never does.  Used nonces are also remembered in the shared cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from jwcrypto.jwk import JWK
from pylti1p3.contrib.django import DjangoMessageLaunch
from pylti1p3.contrib.django.request import DjangoRequest
from pylti1p3.contrib.django.session import DjangoSessionService
from pylti1p3.deployment import Deployment as PyltiDeployment
from pylti1p3.exception import LtiException
from pylti1p3.registration import Registration
from pylti1p3.tool_config.abstract import ToolConfAbstract

from kdgrade.lti import keys
from kdgrade.lti.models import (
    Context,
    Deployment,
    LaunchSession,
    LoginState,
    LtiAssignment,
    LtiUser,
    Membership,
    Platform,
    ResourceLink,
)
from scoring.models import Assignment

log = logging.getLogger(__name__)

STATE_TTL = 600  # seconds a login may take to come back as a launch
CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
DL_CLAIM = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
STATE_COOKIE_PREFIX = "lti1p3-state-"
ASSIGNMENT_CUSTOM_PARAM = "kdgrade_assignment"


class LaunchRefused(Exception):
    """A login or launch kdgrade refuses: `status` is the 4xx code, `reason` a message for the user."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# --- registrations from the database, for pylti1p3 ----------------------------------------------


def to_registration(platform: Platform) -> Registration:
    key = keys.signing_key()
    public_pem = JWK.from_json(json.dumps(key.public_jwk)).export_to_pem().decode()
    reg = Registration()
    reg.set_issuer(platform.issuer).set_client_id(platform.client_id)
    reg.set_auth_login_url(platform.auth_url).set_auth_token_url(platform.token_url)
    reg.set_key_set_url(platform.keyset_url)
    if platform.token_audience:
        reg.set_auth_audience(platform.token_audience)
    reg.set_tool_private_key(key.private_pem).set_tool_public_key(public_pem)
    return reg


class DatabaseToolConf(ToolConfAbstract):
    """pylti1p3 tool configuration read from the Platform and Deployment tables."""

    def __init__(self) -> None:
        self.platform: Platform | None = None

    def check_iss_has_one_client(self, iss: str) -> bool:
        return False

    def check_iss_has_many_clients(self, iss: str) -> bool:
        return True

    def find_registration_by_issuer(self, iss: str, *args: Any, **kwargs: Any) -> Registration | None:
        platforms = list(Platform.objects.filter(issuer=iss, is_active=True)[:2])
        if len(platforms) != 1:
            return None
        self.platform = platforms[0]
        return to_registration(self.platform)

    def find_registration_by_params(self, iss: str, client_id: str, *args: Any, **kwargs: Any) -> Registration | None:
        if not client_id:
            return self.find_registration_by_issuer(iss)
        self.platform = Platform.objects.filter(issuer=iss, client_id=client_id, is_active=True).first()
        return to_registration(self.platform) if self.platform else None

    def find_deployment(self, iss: str, deployment_id: str) -> PyltiDeployment | None:
        return None

    def find_deployment_by_params(
        self, iss: str, deployment_id: str, client_id: str, *args: Any, **kwargs: Any
    ) -> PyltiDeployment | None:
        if Deployment.objects.filter(
            platform__issuer=iss, platform__client_id=client_id, platform__is_active=True,
            deployment_id=deployment_id, is_active=True,
        ).exists():
            return PyltiDeployment().set_deployment_id(deployment_id)
        return None


# --- OIDC login initiation ----------------------------------------------------------------------


@dataclass
class LoginRedirect:
    url: str
    state: str
    cookie_name: str


def _within_kdgrade(url: str, request: HttpRequest) -> bool:
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
    if len(target) > 1000 or not _within_kdgrade(target, request):
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
                         cookie_name=STATE_COOKIE_PREFIX + hashlib.sha256(state.encode()).hexdigest()[:16])


# --- launch -------------------------------------------------------------------------------------


class _Launch(DjangoMessageLaunch):
    """pylti1p3's launch validation with state and nonce checked against the server-side record."""

    def __init__(self, request: HttpRequest, tool_conf: DatabaseToolConf, record: LoginState) -> None:
        super().__init__(DjangoRequest(request, post_only=True), tool_conf,
                         session_service=DjangoSessionService(request))
        self._record = record
        self.set_jwt_verify_options({"verify_aud": False, "require": ["exp", "iat", "iss", "aud", "sub"]})

    def validate_state(self) -> _Launch:
        return self  # consumed and compared by `launch` before pylti1p3 runs

    def validate_registration(self) -> _Launch:
        """pylti1p3's check (a registration for iss + aud), with a refusal that names what is wrong, and
        the OpenID Connect rule for `azp`: when present, or when there are several audiences, it must
        be kdgrade's client id (a token issued to another tool is not accepted here)."""
        try:
            super().validate_registration()
        except LtiException as exc:
            iss = self._get_jwt_body().get("iss")
            if iss and Platform.objects.filter(issuer=str(iss), is_active=True).exists():
                raise LtiException("its audience (aud) is not kdgrade's client id on this platform") from exc
            raise LtiException("its issuer (iss) is not a platform registered with kdgrade") from exc
        body = self._get_jwt_body()
        aud = body.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        azp = body.get("azp")
        if (azp is not None or len(audiences) > 1) and azp != self._registration.get_client_id():
            raise LtiException("its authorized party (azp) is not kdgrade's client id")
        return self

    def validate_nonce(self) -> _Launch:
        nonce = self._get_jwt_body().get("nonce")
        if not nonce or not secrets.compare_digest(str(nonce), self._record.nonce):
            raise LtiException("Invalid Nonce")
        return self

    def save_launch_data(self) -> _Launch:
        return self  # kdgrade keeps its own LaunchSession

    def get_public_key(self) -> tuple[str, str]:
        # The platform keyset is cached; a key id not in the cached set refetches it once, so a
        # platform's key rotation is picked up at once.
        url = self._registration.get_key_set_url()
        cache_key = "lti:keyset:" + hashlib.sha256(url.encode()).hexdigest()
        cached = cache.get(cache_key)
        if cached:
            self._registration.set_key_set(cached)
            try:
                return super().get_public_key()
            except LtiException:
                self._registration.set_key_set(None)
        result = super().get_public_key()
        cache.set(cache_key, self._registration.get_key_set(), timeout=300)
        return result


def role_flags(roles: list[str]) -> tuple[bool, bool]:
    """(learner, instructor) from LTI role URIs; Administrator and content developer count as instructor."""
    instructor = any(
        r.endswith(("membership#Instructor", "#Administrator", "membership#ContentDeveloper"))
        or "membership/Instructor#" in r
        for r in roles
    )
    learner = any(r.endswith("membership#Learner") or "membership/Learner#" in r for r in roles)
    return learner, instructor


def display_name(claims: dict) -> str:
    """A person's name from launch claims or an NRPS member (`name`, else given + family name)."""
    return str(claims.get("name") or " ".join(filter(None, [claims.get("given_name"), claims.get("family_name")])))


def launch(request: HttpRequest) -> LaunchSession:
    """Validate an id_token POSTed to /lti/launch/ and record who launched what."""
    state = request.POST.get("state", "")
    if not state or not request.POST.get("id_token"):
        raise LaunchRefused("The launch misses its state or id_token.", 400)
    record = LoginState.objects.filter(state=state, expires_at__gt=timezone.now()).first()
    # Consumed once: of two requests carrying the same state only the one that deletes it goes on.
    if record is None or not LoginState.objects.filter(pk=record.pk).delete()[0]:
        raise LaunchRefused("This launch does not match a login that kdgrade started (unknown or expired "
                            "state). Open the activity again from your course.", 400)
    cookie_name = STATE_COOKIE_PREFIX + hashlib.sha256(state.encode()).hexdigest()[:16]
    cookie = request.COOKIES.get(cookie_name)
    if cookie is not None and not secrets.compare_digest(cookie, state):
        raise LaunchRefused("The launch state does not match this browser's.", 400)

    conf = DatabaseToolConf()
    msg = _Launch(request, conf, record)
    try:
        msg.validate()
    except LtiException as exc:
        raise LaunchRefused(f"The launch was refused: {exc}", 403) from exc
    except AssertionError as exc:
        raise LaunchRefused("The launch was refused: incomplete platform registration.", 403) from exc
    body: dict = msg.get_launch_data()
    platform = conf.platform
    if platform is None or platform.pk != record.platform_id:
        raise LaunchRefused("The launch comes from another platform than its login.", 403)
    target = body.get(CLAIM + "target_link_uri", "")
    if target != record.target or not _within_kdgrade(target, request):
        raise LaunchRefused("The launch's target link is not the kdgrade page the login asked for.", 400)
    # A nonce is good for one launch only, also across states and processes.
    exp = int(body.get("exp", 0))
    if not cache.add(f"lti:nonce:{body['nonce']}", 1, timeout=max(60, exp - int(timezone.now().timestamp()) + 60)):
        raise LaunchRefused("This launch was already used (replayed nonce).", 403)
    return _record_launch(platform, body)


@transaction.atomic
def _record_launch(platform: Platform, body: dict) -> LaunchSession:
    message_type = body[CLAIM + "message_type"]
    deployment = Deployment.objects.get(platform=platform, deployment_id=body[CLAIM + "deployment_id"])
    ctx_claim = body.get(CLAIM + "context") or {}
    if not ctx_claim.get("id"):
        raise LaunchRefused("kdgrade must be launched from inside a course (no context in the launch).", 400)
    context, _ = Context.objects.get_or_create(platform=platform, context_id=str(ctx_claim["id"]))
    context.deployment = deployment
    context.title = str(ctx_claim.get("title", ""))[:500]
    context.label = str(ctx_claim.get("label", ""))[:255]
    nrps = body.get(NRPS_CLAIM) or {}
    if nrps.get("context_memberships_url"):
        context.memberships_url = nrps["context_memberships_url"]
    context.save()

    user, _ = LtiUser.objects.get_or_create(platform=platform, sub=str(body["sub"]))
    name = display_name(body)
    if name and user.name != name:
        user.name = name[:255]
        user.save(update_fields=["name"])
    roles = list(body.get(CLAIM + "roles") or [])
    is_learner, is_instructor = role_flags(roles)
    if not (is_learner or is_instructor):
        raise LaunchRefused("kdgrade serves learners and instructors; your role in this course is neither.", 403)
    Membership.objects.update_or_create(
        context=context, user=user,
        defaults={"roles": roles, "is_learner": is_learner and not is_instructor, "is_instructor": is_instructor,
                  "active": True},
    )

    link = None
    if message_type == "LtiResourceLinkRequest":
        rl_claim = body[CLAIM + "resource_link"]
        link, _ = ResourceLink.objects.get_or_create(context=context, resource_link_id=str(rl_claim["id"]))
        link.title = str(rl_claim.get("title") or link.title)[:500]
        ags = body.get(AGS_CLAIM) or {}
        link.ags_scopes = list(ags.get("scope") or [])
        link.lineitems_url = ags.get("lineitems", "") or ""
        link.lineitem_url = ags.get("lineitem", "") or link.lineitem_url
        if link.assignment_id is None:
            link.assignment = _assignment_for_link(context, (body.get(CLAIM + "custom") or {}))
        link.save()
    elif message_type == "LtiDeepLinkingRequest":
        if not is_instructor:
            raise LaunchRefused("Only instructors can add kdgrade activities.", 403)
        return_url = str((body.get(DL_CLAIM) or {}).get("deep_link_return_url") or "")
        if urlsplit(return_url).scheme not in ("http", "https"):
            raise LaunchRefused("The Deep Linking request has no usable return URL (deep_link_return_url).", 400)
    else:
        raise LaunchRefused("kdgrade does not handle this kind of LTI message.", 400)

    session = LaunchSession.objects.create(
        token=secrets.token_urlsafe(32), platform=platform, context=context, user=user, resource_link=link,
        is_instructor=is_instructor, message_type=message_type,
        deep_link_settings=body.get(DL_CLAIM) or {}, deployment_id=deployment.deployment_id,
        expires_at=timezone.now() + timedelta(seconds=settings.SESSION_COOKIE_AGE),
    )
    log.info("lti: %s launch platform=%s context=%s user=%s role=%s", message_type, platform.pk, context.pk,
             user.pk, "instructor" if is_instructor else "learner")
    return session


def _assignment_for_link(context: Context, custom: dict) -> Assignment | None:
    """The assignment a new resource link shows: the one Deep Linking put in its custom parameters;
    a link copied into another course (course copy) gets its own copy of that assignment."""
    raw = str(custom.get(ASSIGNMENT_CUSTOM_PARAM, ""))
    if not raw.isdigit():
        return None
    source = Assignment.objects.filter(pk=int(raw)).select_related("lti").first()
    if source is None:
        return None
    owner = getattr(source, "lti", None)
    if owner is not None and owner.context_id == context.pk:
        return source
    copy = Assignment.objects.create(item=source.item, title=source.title, release=source.release,
                                     show_feedback=source.show_feedback)
    LtiAssignment.objects.create(assignment=copy, context=context)
    return copy


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
