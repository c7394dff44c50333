"""Outbound calls cannot be turned against kdgrade's network (issue 14): every URL a platform gives
kdgrade (keyset, token, AGS, NRPS and its next pages, Dynamic Registration) goes through
kdgrade.outbound - no loopback/private/link-local targets unless allowed for development, https only in
production, no redirect to another host, a size cap, one deadline - and nothing a remote server says is
shown to users or logged.

The remote side is a small HTTP server on 127.0.0.1 (a "probe") that counts its hits and answers what a
test tells it to; launches come from lti1p3platform (devtools.devplatform)."""

from __future__ import annotations

import html
import logging
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from devtools.devplatform import ROLE_LEARNER, DevPlatform, LaunchSpec, register_in_kdgrade
from devtools.testing import Browser
from kdgrade import outbound
from kdgrade.lti import ags, config, roster
from kdgrade.lti.models import Context, Platform, ResourceLink

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "INTERNAL-ONLY-7f3a: db password hunter2"


class Probe:
    """An HTTP server on 127.0.0.1 whose routes are functions of the request handler."""

    def __init__(self, routes: dict[str, Callable[[BaseHTTPRequestHandler], None]]) -> None:
        self.hits: list[str] = []
        probe = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                probe.hits.append(self.path)
                route = routes.get(self.path.split("?")[0])
                if route is None:
                    return reply(self, 404, b"{}")
                route(self)

            do_POST = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def reply(h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str = "application/json",
          headers: dict[str, str] | None = None) -> None:
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


def drip(h: BaseHTTPRequestHandler) -> None:
    """A body that never ends in time: one byte every 0.2 s."""
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", "1000")
    h.end_headers()
    try:
        for _ in range(1000):
            h.wfile.write(b" ")
            h.wfile.flush()
            time.sleep(0.2)
    except OSError:
        pass


@pytest.fixture
def probe():
    routes: dict[str, Callable] = {}
    p = Probe(routes)
    p.routes = routes
    yield p
    p.close()


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/jwks", "http://localhost:{port}/jwks", "http://[::1]:{port}/jwks",
    "http://10.1.2.3/jwks", "http://192.168.0.10/x", "http://172.16.5.5/x", "http://169.254.169.254/latest/meta-data/",
    "http://0.0.0.0:{port}/x", "http://100.64.0.1/x", "http://[::ffff:127.0.0.1]:{port}/x",
])
def test_private_loopback_and_link_local_targets_are_refused_without_a_connection(probe, settings, url):
    settings.KDGRADE_OUTBOUND_ALLOW_PRIVATE = False
    probe.routes["/jwks"] = lambda h: reply(h, 200, b'{"keys": []}')
    started = time.monotonic()
    with pytest.raises(outbound.OutboundError) as exc:
        outbound.request("GET", url.format(port=probe.server.server_address[1]), what="platform keyset")
    assert exc.value.refused and "does not call this URL" in exc.value.reason
    assert probe.hits == [] and time.monotonic() - started < 2


def test_the_development_allowance_is_what_lets_tests_reach_127_0_0_1(probe, settings):
    probe.routes["/jwks"] = lambda h: reply(h, 200, b'{"keys": []}')
    settings.KDGRADE_OUTBOUND_ALLOW_PRIVATE = True
    assert outbound.request("GET", f"{probe.base}/jwks", what="keyset").json() == {"keys": []}
    settings.KDGRADE_OUTBOUND_ALLOW_PRIVATE = False
    with pytest.raises(outbound.OutboundError, match="loopback"):
        outbound.request("GET", f"{probe.base}/jwks", what="keyset")
    # A network an operator allows explicitly (an on-premises Moodle) is reachable in any mode.
    settings.KDGRADE_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert outbound.request("GET", f"{probe.base}/jwks", what="keyset").status_code == 200
    assert len(probe.hits) == 2


def test_a_name_that_resolves_to_a_private_address_at_connect_time_is_refused(probe, settings, monkeypatch):
    """DNS rebinding: the name looks public when checked, but the connection lands on 127.0.0.1."""
    settings.KDGRADE_OUTBOUND_ALLOW_PRIVATE = False
    probe.routes["/x"] = lambda h: reply(h, 200, b"{}")
    real = socket.getaddrinfo
    port = probe.server.server_address[1]
    calls = {"n": 0}

    def rebinding(host, *args, **kw):
        if host == "lms.rebind.test":
            calls["n"] += 1
            ip = "93.184.216.34" if calls["n"] == 1 else "127.0.0.1"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with pytest.raises(outbound.OutboundError) as exc:
        outbound.request("GET", f"http://lms.rebind.test:{port}/x", what="probe")
    assert exc.value.refused and probe.hits == []


def test_https_only_in_production(probe, settings):
    settings.KDGRADE_OUTBOUND_HTTPS_ONLY = True
    with pytest.raises(outbound.OutboundError, match="not https"):
        outbound.request("GET", f"{probe.base}/x", what="probe")
    assert probe.hits == []


def test_redirects_to_another_host_are_refused_same_host_ones_followed(probe):
    other = Probe({"/target": lambda h: reply(h, 200, b'{"keys": []}')})
    try:
        probe.routes["/away"] = lambda h: reply(h, 302, b"", headers={"Location": f"{other.base}/target"})
        probe.routes["/meta"] = lambda h: reply(h, 302, b"", headers={
            "Location": "http://169.254.169.254/latest/meta-data/"})
        probe.routes["/here"] = lambda h: reply(h, 301, b"", headers={"Location": "/final"})
        probe.routes["/final"] = lambda h: reply(h, 200, b'{"ok": true}')
        for path in ("/away", "/meta"):
            with pytest.raises(outbound.OutboundError, match="redirected to another host"):
                outbound.request("GET", f"{probe.base}{path}", what="keyset")
        assert other.hits == []
        assert outbound.request("GET", f"{probe.base}/here", what="keyset").json() == {"ok": True}
        # A POST (token, score) is never redirected.
        probe.routes["/token"] = lambda h: reply(h, 307, b"", headers={"Location": "/final"})
        with pytest.raises(outbound.OutboundError, match="redirected"):
            outbound.request("POST", f"{probe.base}/token", what="token", data={"a": "b"})
    finally:
        other.close()


def test_oversized_and_slow_bodies_are_cut_off(probe, settings):
    settings.KDGRADE_OUTBOUND_MAX_BYTES = 10_000
    big = b'{"keys": [' + b'{"kid": "x"},' * 5000 + b'{}]}'
    probe.routes["/big"] = lambda h: reply(h, 200, big)
    probe.routes["/big-chunked"] = lambda h: _chunked(h, big)
    probe.routes["/slow"] = drip
    for path in ("/big", "/big-chunked"):
        with pytest.raises(outbound.OutboundError, match="larger than 10000 bytes"):
            outbound.request("GET", f"{probe.base}{path}", what="keyset")
    settings.KDGRADE_OUTBOUND_DEADLINE = 1.5
    settings.KDGRADE_LTI_HTTP_TIMEOUT = 1.0
    started = time.monotonic()
    with pytest.raises(outbound.OutboundError, match="no complete answer within"):
        outbound.request("GET", f"{probe.base}/slow", what="keyset")
    assert time.monotonic() - started < 3.5


def _chunked(h: BaseHTTPRequestHandler, body: bytes) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    for i in range(0, len(body), 4096):
        part = body[i:i + 4096]
        h.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
    h.wfile.write(b"0\r\n\r\n")


def _launch_env(live_server):
    lms = DevPlatform(live_server.url).start()
    platform = register_in_kdgrade(lms)
    return lms, platform


def test_a_keyset_url_that_answers_text_is_never_echoed_on_the_launch_page_or_in_the_log(
        live_server, probe, caplog):
    probe.routes["/jwks"] = lambda h: reply(h, 200, SECRET.encode(), "text/plain")
    lms, platform = _launch_env(live_server)
    try:
        Platform.objects.filter(pk=platform.pk).update(keyset_url=f"{probe.base}/jwks")
        with caplog.at_level(logging.DEBUG):
            page = Browser().launch(lms, LaunchSpec("student-1", [ROLE_LEARNER]))
        assert page.status_code == 403 and "keyset" in html.unescape(page.text)
        assert probe.hits == ["/jwks"]
        assert "INTERNAL-ONLY" not in page.text and "hunter2" not in page.text
        assert "INTERNAL-ONLY" not in caplog.text
    finally:
        lms.stop()


def test_a_keyset_url_on_loopback_is_not_fetched_when_the_allowance_is_off(live_server, probe, settings):
    probe.routes["/jwks"] = lambda h: reply(h, 200, b'{"keys": []}')
    lms, platform = _launch_env(live_server)
    try:
        Platform.objects.filter(pk=platform.pk).update(keyset_url=f"{probe.base}/jwks")
        settings.KDGRADE_OUTBOUND_ALLOW_PRIVATE = False
        page = Browser().launch(lms, LaunchSpec("student-1", [ROLE_LEARNER]))
        assert page.status_code == 403 and "does not call this URL" in html.unescape(page.text)
        assert probe.hits == []
    finally:
        lms.stop()


def test_ags_and_nrps_urls_from_launch_claims_are_checked_and_next_pages_stay_on_the_roster_host(
        live_server, probe, settings):
    lms, platform = _launch_env(live_server)
    try:
        # A roster whose next page points at another host (here: the probe) is refused at that link.
        page1 = b'{"id": "x", "context": {"id": "c"}, "members": [{"user_id": "u1", "roles": []}]}'
        other = Probe({"/page1": lambda h: reply(h, 200, page1, headers={
            "Link": f'<{probe.base}/page2>; rel="next"'})})
        course = Context.objects.create(platform=platform, context_id="c", memberships_url=f"{other.base}/page1")
        try:
            with pytest.raises(ags.ServiceError, match="next page is on another host"):
                roster.sync_roster(course.pk)
        finally:
            other.close()
        assert probe.hits == []
        # With the development allowance off, the launch's AGS and NRPS URLs on 127.0.0.1 are not called.
        settings.KDGRADE_OUTBOUND_ALLOW_PRIVATE = False
        link = ResourceLink.objects.create(context=course, resource_link_id="l", ags_scopes=[ags.SCOPE_LINEITEM],
                                           lineitems_url=f"{probe.base}/lineitems")
        with pytest.raises(ags.ServiceError, match="does not call this URL"):
            ags.ensure_lineitem(link, ags.LineItemSpec("x", 2.0, "r"))
        Context.objects.filter(pk=course.pk).update(memberships_url=f"{probe.base}/page1")
        with pytest.raises(ags.ServiceError, match="does not call this URL"):
            roster.sync_roster(course.pk)
        assert probe.hits == []
    finally:
        lms.stop()


def test_registration_errors_do_not_tell_a_closed_port_from_an_open_one(live_server, probe, settings):
    settings.PUBLIC_URL = live_server.url
    probe.routes["/text"] = lambda h: reply(h, 200, SECRET.encode(), "text/plain")
    probe.routes["/500"] = lambda h: reply(h, 500, SECRET.encode(), "text/plain")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/x"  # bound, not listening: connection refused
        not_http = socket.socket()
        not_http.bind(("127.0.0.1", 0))
        not_http.listen()
        threading.Thread(target=lambda: _garbage(not_http), daemon=True).start()
        answers = set()
        for target in (closed, f"http://127.0.0.1:{not_http.getsockname()[1]}/x", f"{probe.base}/text",
                       f"{probe.base}/500", f"{probe.base}/missing"):
            url = config.registration_url(live_server.url, created_by="test")
            page = requests.get(url, params={"openid_configuration": target}, timeout=30)
            assert page.status_code == 400 and "INTERNAL-ONLY" not in page.text
            answers.add(page.text)
        not_http.close()
    assert len(answers) == 1, "the registration page tells these targets apart"
    # With the allowance off, loopback is refused outright, and never contacted.
    settings.KDGRADE_OUTBOUND_ALLOW_PRIVATE = False
    before = len(probe.hits)
    page = requests.get(config.registration_url(live_server.url, created_by="test"),
                        params={"openid_configuration": f"{probe.base}/text"}, timeout=30)
    assert page.status_code == 400 and "does not call this URL" in html.unescape(page.text)
    assert len(probe.hits) == before


def _garbage(sock: socket.socket) -> None:
    try:
        while True:
            conn, _ = sock.accept()
            conn.sendall(b"SSH-2.0-OpenSSH_9.6 " + SECRET.encode() + b"\r\n")
            conn.close()
    except OSError:
        pass
