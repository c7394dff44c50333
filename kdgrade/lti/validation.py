"""Launch validation: the id_token POSTed to /lti/launch/ checked against the login kdgrade started
(state consumed once, nonce bound to it and never reused), the platform's keys and the LTI 1.3 rules
(pylti1p3's checks, with refusals that name what is wrong)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone
from pylti1p3.contrib.django import DjangoMessageLaunch
from pylti1p3.contrib.django.request import DjangoRequest
from pylti1p3.contrib.django.session import DjangoSessionService
from pylti1p3.exception import LtiException

from kdgrade import outbound
from kdgrade.lti.claims import CLAIM
from kdgrade.lti.errors import LaunchRefused
from kdgrade.lti.login import state_cookie_name, within_kdgrade
from kdgrade.lti.models import LoginState, Platform
from kdgrade.lti.toolconf import DatabaseToolConf

KEYSET_MAX_BYTES = 256 * 1024


class _Launch(DjangoMessageLaunch):
    """pylti1p3's launch validation with state and nonce checked against the server-side record."""

    def __init__(self, request: HttpRequest, tool_conf: DatabaseToolConf, record: LoginState) -> None:
        super().__init__(DjangoRequest(request, post_only=True), tool_conf,
                         session_service=DjangoSessionService(request))
        self._record = record
        self.set_jwt_verify_options({"verify_aud": False, "require": ["exp", "iat", "iss", "aud", "sub"]})

    def validate_state(self) -> _Launch:
        return self  # consumed and compared by `validate_launch` before pylti1p3 runs

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

    def fetch_public_key(self, key_set_url: str) -> dict:
        """The platform's keyset through kdgrade's outbound client (address policy, size cap, deadline).
        What the URL answered is never put in the refusal (it reaches the launch error page)."""
        try:
            resp = outbound.request("GET", key_set_url, what="platform keyset", headers={"Accept": "application/json"},
                                    max_bytes=KEYSET_MAX_BYTES)
        except outbound.OutboundError as exc:
            raise LtiException(f"the platform's keyset could not be fetched ({exc.reason})") from None
        if resp.status_code != 200:
            raise LtiException(f"the platform's keyset URL answered HTTP {resp.status_code}")
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise LtiException("the platform's keyset URL did not answer with a keyset (JWKS)")
        return data

    def get_public_key(self) -> tuple[str, str]:
        # The platform keyset is cached; a key id not in the cached set refetches it, so a platform's key
        # rotation is picked up at once - but at most once per KDGRADE_LTI_KEYSET_REFETCH_SECONDS, so
        # forged launches with made-up key ids cannot make kdgrade fetch the keyset on every request.
        url = self._registration.get_key_set_url()
        digest = hashlib.sha256(url.encode()).hexdigest()
        cache_key = "lti:keyset:" + digest
        cached = cache.get(cache_key)
        if cached:
            self._registration.set_key_set(cached)
            try:
                return super().get_public_key()
            except LtiException:
                self._registration.set_key_set(None)
                if not cache.add("lti:keyset-refetch:" + digest, 1,
                                 timeout=max(1, int(settings.KDGRADE_LTI_KEYSET_REFETCH_SECONDS))):
                    raise LtiException("its key id (kid) is not in the platform's keyset") from None
        result = super().get_public_key()
        cache.set(cache_key, self._registration.get_key_set(), timeout=300)
        return result


@dataclass
class ValidLaunch:
    platform: Platform
    body: dict


def validate_launch(request: HttpRequest) -> ValidLaunch:
    """The validated claims of the launch in `request`, or LaunchRefused (nothing is recorded)."""
    state = request.POST.get("state", "")
    if not state or not request.POST.get("id_token"):
        raise LaunchRefused("The launch misses its state or id_token.", 400)
    record = LoginState.objects.filter(state=state, expires_at__gt=timezone.now()).first()
    # Consumed once: of two requests carrying the same state only the one that deletes it goes on.
    if record is None or not LoginState.objects.filter(pk=record.pk).delete()[0]:
        raise LaunchRefused("This launch does not match a login that kdgrade started (unknown or expired "
                            "state). Open the activity again from your course.", 400)
    cookie = request.COOKIES.get(state_cookie_name(state))
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
    if target != record.target or not within_kdgrade(target, request):
        raise LaunchRefused("The launch's target link is not the kdgrade page the login asked for.", 400)
    # A nonce is good for one launch only, also across states and processes.
    exp = int(body.get("exp", 0))
    if not cache.add(f"lti:nonce:{body['nonce']}", 1, timeout=max(60, exp - int(timezone.now().timestamp()) + 60)):
        raise LaunchRefused("This launch was already used (replayed nonce).", 403)
    return ValidLaunch(platform=platform, body=body)
