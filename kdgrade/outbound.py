"""The one HTTP client for every call kdgrade makes to another server (platform keysets, OAuth2 tokens,
AGS, NRPS and its `next` pages, Dynamic Registration).

The URLs come from platforms (registrations, signed launch claims, roster pages), so a call must not be
usable against kdgrade's own network:
- https only in production (settings.KDGRADE_OUTBOUND_HTTPS_ONLY);
- no loopback, private, link-local (cloud metadata), shared, reserved or multicast address, checked on
  the address actually connected to (a name that resolves differently the second time gains nothing),
  unless settings.KDGRADE_OUTBOUND_ALLOW_PRIVATE (development and tests only) or the address is in
  settings.KDGRADE_OUTBOUND_ALLOWED_NETWORKS (an on-premises Moodle, say);
- redirects only to the same scheme, host and port, at most 3, and only for GET;
- a body size cap and one overall deadline for the whole call (connect, redirects and a slow body);
- no proxy or netrc from the environment; no credentials in URLs.

Errors carry a reason that names what was called and why it failed, never a word of the remote body:
remote bodies are neither shown to users nor logged.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import parse_header_links
from urllib3 import exceptions as urllib3_exceptions
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3
CHUNK = 16384


class OutboundError(Exception):
    """A call that was refused before it was made (`refused`) or that failed.  `reason` is safe to show:
    it never contains anything the remote server sent."""

    def __init__(self, reason: str, *, refused: bool = False, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused
        self.retryable = retryable and not refused


@dataclass
class Reply:
    """A remote answer, read in full (within the size cap)."""

    status_code: int
    url: str
    headers: CaseInsensitiveDict = field(default_factory=CaseInsensitiveDict)
    content: bytes = b""

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.content.decode("utf-8"))

    @property
    def text(self) -> str:
        """The body as text: for kdgrade's own checks only, never to show or log."""
        return self.content.decode("utf-8", errors="replace")

    @property
    def links(self) -> dict[str, dict[str, str]]:
        """RFC 8288 Link header by rel, with URLs made absolute against this reply's URL."""
        header = self.headers.get("Link")
        out: dict[str, dict[str, str]] = {}
        if not header:
            return out
        for link in parse_header_links(header):
            rel = link.get("rel")
            if rel and link.get("url"):
                out[rel] = {**link, "url": urljoin(self.url, link["url"])}
        return out


# --- address policy ------------------------------------------------------------------------------


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n, strict=False) for n in settings.KDGRADE_OUTBOUND_ALLOWED_NETWORKS]


def address_refusal(address: str) -> str | None:
    """Why kdgrade may not connect to this IP address, or None when it may."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in _allowed_networks()):
        return None
    public = ip.is_global and not ip.is_multicast
    if public or settings.KDGRADE_OUTBOUND_ALLOW_PRIVATE:
        return None
    kind = ("loopback" if ip.is_loopback else "link-local" if ip.is_link_local else "private"
            if ip.is_private else "not public")
    return f"its address is {kind}"


def url_refusal(url: str) -> str | None:
    """Why kdgrade may not call this URL (scheme, credentials, host and every address it resolves to),
    or None when it may."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "it is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "it is not an http(s) URL"
    if parts.scheme != "https" and settings.KDGRADE_OUTBOUND_HTTPS_ONLY:
        return "it is not https"
    if parts.username or parts.password:
        return "it carries credentials"
    host = parts.hostname
    if not host:
        return "it has no host"
    try:
        infos = socket.getaddrinfo(host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return "its host name does not resolve"
    for info in infos:
        reason = address_refusal(str(info[4][0]))
        if reason:
            return reason
    return None


def _check_peer(sock: socket.socket) -> None:
    try:
        peer = sock.getpeername()[0]
    except OSError:
        return
    reason = address_refusal(str(peer))
    if reason:
        sock.close()
        raise _PeerRefused(reason)


class _PeerRefused(OSError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _check_peer(sock)
        return sock


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _check_peer(sock)
        return sock


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


_local = threading.local()


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.trust_env = False  # no proxy, netrc or CA bundle from the environment
        session.headers["User-Agent"] = "kdgrade"
        adapter = _GuardedAdapter(max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        _local.session = session
    return session


# --- the call ------------------------------------------------------------------------------------


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def request(method: str, url: str, *, what: str, headers: Mapping[str, str] | None = None,
            data: Any = None, json_body: Any = None, max_bytes: int | None = None,
            deadline_s: float | None = None) -> Reply:
    """Make one call under the policy above and read its answer in full.

    Raises OutboundError (with `refused` set when the policy forbade the call) for anything but an HTTP
    answer; an HTTP error status is returned as a Reply for the caller to judge."""
    limit = int(max_bytes or settings.KDGRADE_OUTBOUND_MAX_BYTES)
    budget = float(deadline_s or settings.KDGRADE_OUTBOUND_DEADLINE)
    per_op = min(float(settings.KDGRADE_LTI_HTTP_TIMEOUT), budget)
    ends = time.monotonic() + budget
    host = urlsplit(url).netloc if isinstance(url, str) else "?"

    def fail(reason: str, *, refused: bool = False, retryable: bool = True) -> OutboundError:
        log.warning("outbound: %s %s to %s: %s", what, method, host, reason)
        return OutboundError(f"{what}: {reason}", refused=refused, retryable=retryable)

    for _hop in range(MAX_REDIRECTS + 1):
        refusal = url_refusal(url)
        if refusal:
            raise fail(f"kdgrade does not call this URL ({refusal})", refused=True)
        left = ends - time.monotonic()
        if left <= 0:
            raise fail(f"no answer within {budget:g}s")
        step = min(per_op, left)
        try:
            resp = _session().request(method, url, headers=dict(headers or {}), data=data, json=json_body,
                                      allow_redirects=False, stream=True, timeout=(step, step))
        except requests.ConnectionError as exc:
            peer = _find_cause(exc, _PeerRefused)
            if peer is not None:
                raise fail(f"kdgrade does not call this URL ({peer.reason})", refused=True) from None
            raise fail("could not connect") from None
        except requests.Timeout:
            raise fail(f"no answer within {step:g}s") from None
        except requests.RequestException as exc:
            raise fail(f"network error ({type(exc).__name__})") from None
        try:
            if resp.is_redirect and "location" in resp.headers:
                target = urljoin(url, resp.headers["location"])
                if method.upper() != "GET" or _origin(target) != _origin(url):
                    raise fail("the server redirected to another host or for a non-GET call", refused=True,
                               retryable=False)
                url = target
                continue
            try:
                body = _read_capped(resp, limit, ends)
            except OutboundError as exc:
                raise fail(exc.reason) from None
            if body is None:
                raise fail(f"the answer is larger than {limit} bytes", retryable=False)
            if body is False:
                raise fail(f"no complete answer within {budget:g}s")
            return Reply(status_code=resp.status_code, url=url, headers=CaseInsensitiveDict(resp.headers),
                         content=body)
        finally:
            resp.close()
    raise fail("too many redirects", retryable=False)


def _read_capped(resp: requests.Response, limit: int, ends: float) -> bytes | bool | None:
    """The body, None when it is over `limit` bytes, False when the deadline passed first."""
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            if time.monotonic() > ends:
                return False
            chunk = resp.raw.read1(CHUNK, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
    except (urllib3_exceptions.TimeoutError, TimeoutError):
        return False
    except (urllib3_exceptions.HTTPError, OSError, ValueError):
        raise OutboundError("the connection broke while reading the answer") from None
    return b"".join(chunks)


def _find_cause(exc: BaseException, kind: type[BaseException]) -> Any:
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 10:
        if isinstance(cur, kind):
            return cur
        for arg in getattr(cur, "args", ()):
            if isinstance(arg, BaseException):
                found = _find_cause(arg, kind)
                if found is not None:
                    return found
            reason = getattr(arg, "reason", None)
            if isinstance(reason, BaseException) and isinstance(reason, kind):
                return reason
        cur = cur.__cause__ or cur.__context__ or getattr(cur, "reason", None)
        seen += 1
    return None
