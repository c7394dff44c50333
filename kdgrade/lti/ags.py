"""An LTI Advantage service client: OAuth2 client-credentials tokens (cached, refreshed on 401),
line items and scores (AGS) and memberships (NRPS), over kdgrade's one outbound client
(kdgrade.outbound: address policy, size cap, deadline).  What a platform answers is never put in an
error reason (those reach teachers' pages, the admin and the log)."""

from __future__ import annotations

import email.utils
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import jwt
from django.core.cache import cache

from kdgrade import outbound
from kdgrade.lti import keys
from kdgrade.lti.models import Platform, ResourceLink

log = logging.getLogger(__name__)

SCOPE_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPE_LINEITEM_RO = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
SCOPE_RESULT_RO = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
SCOPE_NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
SCORE_MEDIA = "application/vnd.ims.lis.v1.score+json"
LINEITEM_MEDIA = "application/vnd.ims.lis.v2.lineitem+json"
LINEITEMS_MEDIA = "application/vnd.ims.lis.v2.lineitemcontainer+json"
NRPS_MEDIA = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"


class ServiceError(Exception):
    """A call to the platform failed.  `retryable` says whether trying later may help."""

    def __init__(self, reason: str, *, status: int | None = None, retryable: bool, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _classify(resp: outbound.Reply, what: str) -> ServiceError:
    status = resp.status_code
    retryable = status in (408, 425, 429) or status >= 500
    reason = f"{what}: the platform answered HTTP {status}"
    return ServiceError(reason, status=status, retryable=retryable,
                        retry_after=_retry_after(resp.headers.get("Retry-After")) if status in (429, 503) else None)


def _json(resp: outbound.Reply, what: str) -> object:
    """The JSON body of a 2xx answer; a body that is not JSON is the platform's fault, retried later."""
    try:
        return resp.json()
    except ValueError as exc:
        raise ServiceError(f"{what}: HTTP {resp.status_code} with a body that is not JSON", status=resp.status_code,
                           retryable=True) from exc


def _send(method: str, url: str, what: str, *, headers: dict[str, str], data: object = None,
          json: object = None) -> outbound.Reply:
    try:
        return outbound.request(method, url, what=what, headers=headers, data=data, json_body=json)
    except outbound.OutboundError as exc:
        raise ServiceError(exc.reason, retryable=exc.retryable) from None


def _token_cache_key(platform: Platform, scopes: list[str]) -> str:
    digest = hashlib.sha256(" ".join(sorted(scopes)).encode()).hexdigest()[:16]
    return f"lti:token:{platform.pk}:{digest}"


def client_assertion(platform: Platform) -> str:
    """The signed JWT that authenticates kdgrade at the platform's token endpoint, signed with this
    platform's own key (published only at its own keyset URL): an assertion made for one platform
    verifies at no other, whatever client id and audience that one claims."""
    key = keys.signing_key_for(platform)
    now = int(time.time())
    claims = {
        "iss": platform.client_id, "sub": platform.client_id,
        "aud": platform.token_audience or platform.token_url,
        "iat": now, "exp": now + 300, "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode(claims, keys.private_pem(key), algorithm="RS256", headers={"kid": key.kid})


def access_token(platform: Platform, scopes: list[str], *, refresh: bool = False) -> str:
    """A bearer token for `scopes`, from the shared cache until shortly before it expires."""
    cache_key = _token_cache_key(platform, scopes)
    if not refresh:
        token = cache.get(cache_key)
        if token:
            return token
    resp = _send("POST", platform.token_url, "access token request", data={
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": client_assertion(platform),
        "scope": " ".join(scopes),
    }, headers={"Accept": "application/json"})
    if resp.status_code != 200:
        raise _classify(resp, "access token request")
    try:
        data = resp.json()
        token = data["access_token"]
        lifetime = int(data.get("expires_in", 3600))
    except (ValueError, KeyError, TypeError) as exc:
        raise ServiceError("access token request: malformed answer", status=200, retryable=True) from exc
    cache.set(cache_key, token, timeout=max(1, lifetime - 30))
    return token


def _authorized(platform: Platform, scopes: list[str], method: str, url: str, what: str,
                headers: dict[str, str], **kwargs: object) -> outbound.Reply:
    """Call with a cached token; on 401 get a fresh token and call once more."""
    for refresh in (False, True):
        token = access_token(platform, scopes, refresh=refresh)
        resp = _send(method, url, what, headers={**headers, "Authorization": f"Bearer {token}"}, **kwargs)
        if resp.status_code != 401:
            return resp
        cache.delete(_token_cache_key(platform, scopes))
    return resp


def _suffix(url: str, suffix: str) -> str:
    base, sep, query = url.partition("?")
    return f"{base.rstrip('/')}/{suffix}{sep}{query}"


@dataclass
class LineItemSpec:
    label: str
    score_maximum: float
    resource_id: str


def ensure_lineitem(link: ResourceLink, spec: LineItemSpec) -> str:
    """The line item URL of a resource link: the one the launch named, else found or created."""
    if link.lineitem_url:
        return link.lineitem_url
    if not link.lineitems_url:
        raise ServiceError("this placement has no gradebook column and the platform offers no line items service",
                           retryable=False)
    platform = link.context.platform
    scopes = [SCOPE_LINEITEM] if SCOPE_LINEITEM in link.ags_scopes else [SCOPE_LINEITEM_RO]
    base, _, query = link.lineitems_url.partition("?")
    find_url = f"{base}?{query + '&' if query else ''}{urlencode({'resource_link_id': link.resource_link_id})}"
    resp = _authorized(platform, scopes, "GET", find_url, "line item lookup", {"Accept": LINEITEMS_MEDIA})
    if resp.status_code != 200:
        raise _classify(resp, "line item lookup")
    items = _json(resp, "line item lookup") or []
    if not isinstance(items, list):
        raise ServiceError("line item lookup: the platform's answer is not a list of line items", retryable=True)
    match = next((i for i in items if isinstance(i, dict) and i.get("resourceLinkId") == link.resource_link_id),
                 None)
    if match is None:
        if SCOPE_LINEITEM not in link.ags_scopes:
            raise ServiceError("no line item for this link and the platform does not let kdgrade create one",
                               retryable=False)
        resp = _authorized(platform, scopes, "POST", link.lineitems_url, "line item creation",
                           {"Content-Type": LINEITEM_MEDIA, "Accept": LINEITEM_MEDIA},
                           json={"label": spec.label, "scoreMaximum": spec.score_maximum,
                                 "resourceId": spec.resource_id, "resourceLinkId": link.resource_link_id})
        if resp.status_code not in (200, 201):
            raise _classify(resp, "line item creation")
        match = _json(resp, "line item creation")
    if not isinstance(match, dict) or not match.get("id"):
        raise ServiceError("line item: the platform's answer has no line item id", retryable=True)
    link.lineitem_url = str(match["id"])
    ResourceLink.objects.filter(pk=link.pk).update(lineitem_url=link.lineitem_url)
    return link.lineitem_url


@dataclass
class ScorePosted:
    status: int
    platform_holds_newer: bool  # the platform kept a score with a later timestamp: this post is done


# Canvas answers 400 with this text to a score older than the result it holds (Moodle answers 409).
CANVAS_OLDER_SCORE = "before last updated timestamp"


def post_score(link: ResourceLink, lineitem_url: str, payload: dict) -> ScorePosted:
    """POST one AGS score.  A 2xx is done; so is the platform's refusal of a score older than the one it
    holds (Moodle: 409; Canvas: 400 "... before last updated timestamp ...").  Raises ServiceError for
    everything else."""
    resp = _authorized(link.context.platform, [SCOPE_SCORE], "POST", _suffix(lineitem_url, "scores"), "score post",
                       {"Content-Type": SCORE_MEDIA}, json=payload)
    if 200 <= resp.status_code < 300:
        return ScorePosted(resp.status_code, platform_holds_newer=False)
    if resp.status_code == 409 or (resp.status_code == 400 and CANVAS_OLDER_SCORE in resp.text):
        return ScorePosted(resp.status_code, platform_holds_newer=True)
    raise _classify(resp, "score post")


def fetch_members(platform: Platform, memberships_url: str) -> list[dict]:
    """Every member of a course from NRPS, following rel="next" pages (on the roster's own host only)."""
    members: list[dict] = []
    url: str | None = memberships_url
    pages = 0
    while url and pages < 200:
        resp = _authorized(platform, [SCOPE_NRPS], "GET", url, "roster request", {"Accept": NRPS_MEDIA})
        if resp.status_code != 200:
            raise _classify(resp, "roster request")
        page = _json(resp, "roster request")
        members.extend((page.get("members") if isinstance(page, dict) else None) or [])
        url = resp.links.get("next", {}).get("url")
        if url and urlsplit(url)[:2] != urlsplit(memberships_url)[:2]:
            raise ServiceError("roster request: the platform's next page is on another host", retryable=False)
        pages += 1
    return members
