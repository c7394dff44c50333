"""A local LMS for trying kdgrade and for its tests, built on `lti1p3platform` (a platform-side LTI 1.3
library from PyPI, written by others).

It plays the platform for real over HTTP on 127.0.0.1: OIDC login initiation and the launch
(lti1p3platform's OIDC and message-launch classes sign the id_token), its JWKS, the OAuth2 token
endpoint (lti1p3platform validates kdgrade's signed client assertion against kdgrade's /lti/jwks/),
Assignment and Grade Services (lti1p3platform's AGS service: line items, scores, results) into its own
in-memory gradebook, Names and Role Provisioning (lti1p3platform's NRPS service) and the Deep Linking
return URL (lti1p3platform validates kdgrade's signed response).  What this module adds is only what the
library leaves to its host: storage, HTTP routing, and the score-ordering rule Moodle applies (an older
score than the one held is answered 409).  Failures can be injected into the score endpoint.

Requires the `lti1p3platform` package (requirements/dev.txt).
"""

from __future__ import annotations

import contextlib
import html
import json
import secrets
import threading
import time
import typing as t
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from jwcrypto.jwk import JWK
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.membership import Context as NrpsContext
from lti1p3platform.message_launch import LTIAdvantageMessageLaunchAbstract
from lti1p3platform.oidc_login import OIDCLoginAbstract
from lti1p3platform.registration import Registration
from lti1p3platform.request import Request, TRequest
from lti1p3platform.score import UpdateScoreStatus
from lti1p3platform.service_connector import AssignmentsGradesService, NamesRoleProvisioningService

ROLE_LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
ROLE_INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
ROLE_ADMIN = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator"


def _rsa_pems() -> tuple[str, str]:
    key = JWK.generate(kty="RSA", size=2048)
    return (key.export_to_pem(private_key=True, password=None).decode(), key.export_to_pem().decode())


@dataclass
class LaunchSpec:
    """What the LMS launches: who, in which course, which link, and any claim overrides (for tests of
    what kdgrade must refuse)."""

    user_id: str
    roles: list[str]
    context_id: str = "course-1"
    context_title: str = "Physics 7B"
    resource_link_id: str = "link-1"
    name: str = ""
    email: str = ""
    given_name: str = ""
    family_name: str = ""
    custom: dict[str, str] = field(default_factory=dict)
    deep_linking: bool = False
    lineitem_id: str | None = None  # the link's gradebook column, when it has one
    ags: bool = True
    nrps: bool = True
    extra_claims: dict[str, t.Any] = field(default_factory=dict)
    expiration: int = 300
    rogue_key: bool = False  # sign with a key the platform does not publish
    nrps_query: str = ""  # e.g. "limit=2": the roster comes in pages linked by rel="next"
    drop_claims: tuple[str, ...] = ()  # claims left out of the id_token (e.g. the context claim)


@dataclass
class Fault:
    """What the score endpoint does instead of answering normally."""

    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait first (a timeout at the client when longer than its timeout)
    apply: bool = False  # record the score anyway, then fail (the post landed but the answer was lost)
    block: threading.Event | None = None  # wait for this event before answering
    body: str | None = None  # the answer's text (default: a JSON error)


class Gradebook:
    """The platform's own store: line items, results and every score post it received."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.lineitems: dict[str, dict] = {}
        self.results: dict[tuple[str, str], dict] = {}
        self.applied: list[dict] = []  # score changes taken into the gradebook
        self.requests: list[dict] = []  # every score POST that reached the endpoint
        self.members: dict[str, list[dict]] = {}
        self.deep_link_items: list[dict] = []
        self.token_requests = 0
        self.token_forms: list[dict] = []  # the form of every token request (client assertions included)
        self.jwks_requests = 0  # fetches of the platform's keyset
        self.score_fault: t.Callable[[dict, int], Fault | None] | None = None
        self.in_score_post = threading.Event()

    def result(self, lineitem_id: str, user_id: str) -> dict | None:
        with self.lock:
            return self.results.get((lineitem_id, user_id))


class _HandlerRequest(Request):
    def build_metadata(self, request: t.Any) -> TRequest:
        handler, body = request
        parts = urlsplit(handler.path)
        ctype = handler.headers.get("Content-Type", "") or ""
        form = dict(parse_qsl(body.decode())) if "x-www-form-urlencoded" in ctype else {}
        data = json.loads(body) if body and "json" in ctype else None
        return {"method": handler.command, "form_data": form, "get_data": dict(parse_qsl(parts.query)),
                "headers": {k.title(): v for k, v in handler.headers.items()}, "content_type": ctype,
                "path": parts.path, "json": data}


class DevPlatform:
    """One LMS with one registration of kdgrade (at `tool_base`), served on 127.0.0.1."""

    def __init__(self, tool_base: str, *, issuer: str | None = None, client_id: str = "kdgrade-client",
                 deployment_id: str = "deployment-1", port: int = 0) -> None:
        self.tool_base = tool_base.rstrip("/")
        self.client_id = client_id
        self.deployment_id = deployment_id
        self.private_pem, self.public_pem = _rsa_pems()
        self.rogue_private_pem, _ = _rsa_pems()
        self.gradebook = Gradebook()
        self._launches: dict[str, LaunchSpec] = {}
        self._frames: dict[str, tuple[LaunchSpec, str]] = {}
        self._dl_context = "course-1"
        self.tool_registration: dict | None = None
        self.tool_jwks_url: str | None = None  # kdgrade's keyset URL for this platform, once registered
        # What a platform playing rogue claims in Dynamic Registration (tests of kdgrade's refusals).
        self.claimed_client_id: str | None = None
        self.claimed_token_audience: str | None = None
        self.registration_token = secrets.token_urlsafe(16)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(self))
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.issuer = issuer or self.base
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> DevPlatform:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> DevPlatform:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def tool_urls(self) -> dict[str, str]:
        """kdgrade's URLs: from its Dynamic Registration when it registered that way, else the defaults."""
        reg = self.tool_registration
        if reg:
            return {"login": reg["initiate_login_uri"], "launch": reg["redirect_uris"][0], "jwks": reg["jwks_uri"]}
        return {"login": f"{self.tool_base}/lti/login/", "launch": f"{self.tool_base}/lti/launch/",
                "jwks": self.tool_jwks_url or f"{self.tool_base}/lti/jwks/"}

    # --- LTI Dynamic Registration, platform side -----------------------------------------------
    # lti1p3platform has no Dynamic Registration: this part is hand-written after the IMS spec
    # (https://www.imsglobal.org/spec/lti-dr/v1p0), the only hand-rolled piece of this platform.

    def registration_start_url(self, tool_register_url: str) -> str:
        """The URL the LMS opens (in a window) to start Dynamic Registration with a tool."""
        query = urlencode({"openid_configuration": f"{self.base}/.well-known/openid-configuration",
                           "registration_token": self.registration_token})
        sep = "&" if "?" in tool_register_url else "?"
        return f"{tool_register_url}{sep}{query}"

    def _openid_configuration(self) -> dict:
        extra = {"authorization_server": self.claimed_token_audience} if self.claimed_token_audience else {}
        return {**extra,
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.base}/auth",
            "token_endpoint": f"{self.base}/token",
            "jwks_uri": f"{self.base}/jwks",
            "registration_endpoint": f"{self.base}/register",
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["id_token"],
            "scopes_supported": ["openid", "https://purl.imsglobal.org/spec/lti-ags/scope/score",
                                 "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
                                 "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"],
            "claims_supported": ["iss", "sub", "name"],
            "https://purl.imsglobal.org/spec/lti-platform-configuration": {
                "product_family_code": "kdgrade-devplatform", "version": "1",
                "messages_supported": [{"type": "LtiResourceLinkRequest"}, {"type": "LtiDeepLinkingRequest"}],
            },
        }

    def _register(self, req: _HandlerRequest) -> tuple[int, dict]:
        if req.headers.get("Authorization") != f"Bearer {self.registration_token}":
            return 401, {"error": "invalid registration token"}
        body = req.json or {}
        conf = body.get("https://purl.imsglobal.org/spec/lti-tool-configuration") or {}
        problems = [
            name for name, ok in [
                ("initiate_login_uri", str(body.get("initiate_login_uri", "")).startswith("http")),
                ("redirect_uris", bool(body.get("redirect_uris"))),
                ("jwks_uri", str(body.get("jwks_uri", "")).startswith("http")),
                ("response_types", body.get("response_types") == ["id_token"]),
                ("grant_types", {"implicit", "client_credentials"} <= set(body.get("grant_types") or [])),
                ("token_endpoint_auth_method", body.get("token_endpoint_auth_method") == "private_key_jwt"),
                ("lti-tool-configuration", bool(conf.get("target_link_uri") and conf.get("domain"))),
            ] if not ok
        ]
        if problems:
            return 400, {"error": "invalid_client_metadata", "error_description": ", ".join(problems)}
        self.client_id = self.claimed_client_id or f"dyn-{secrets.token_hex(4)}"
        self.tool_registration = body
        answer = {**body, "client_id": self.client_id,
                  "https://purl.imsglobal.org/spec/lti-tool-configuration": {
                      **conf, "deployment_id": self.deployment_id}}
        return 200, answer

    # --- the launcher page (development: play the LMS in a browser) ------------------------------

    DEV_USERS: t.ClassVar[dict[str, tuple[str, list[str]]]] = {
        "teacher": ("dev-teacher", [ROLE_INSTRUCTOR]),
        "student": ("dev-student-1", [ROLE_LEARNER]),
        "student2": ("dev-student-2", [ROLE_LEARNER]),
    }

    def frame_url(self, spec: LaunchSpec, title: str = "kdgrade activity") -> str:
        """A course page of this LMS that opens the launch of `spec` in an iframe, as Canvas and Moodle do
        (the tool is then a cross-site frame when it is served from another host than 127.0.0.1)."""
        key = secrets.token_urlsafe(8)
        self._frames[key] = (spec, title)
        return f"{self.base}/frame/{key}"

    def _frame_page(self, src: str, title: str) -> str:
        # The frame grows with the tool's `lti.frameResize` messages (Canvas: object or JSON string).
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)} - Development LMS</title>"
            "<style>body{margin:0;font-family:system-ui,sans-serif}header{background:#2d3b45;color:#fff;"
            "padding:.5rem 1rem}header a{color:#fff}h1{font-size:1rem;margin:0}"
            "iframe{display:block;width:100%;height:600px;border:0}</style>"
            f'</head><body><header><h1><a href="/">Development LMS</a>: course-1 · {html.escape(title)}</h1></header>'
            f'<main><iframe id="tool" title="{html.escape(title)}" src="{html.escape(src)}" '
            'allow="clipboard-write"></iframe></main><script>'
            "window.ltiResizes=[];var f=document.getElementById('tool');"
            "window.addEventListener('message',function(e){if(e.source!==f.contentWindow)return;var d=e.data;"
            "if(typeof d==='string'){try{d=JSON.parse(d)}catch(x){return}}"
            "if(d&&d.subject==='lti.frameResize'&&+d.height>0){window.ltiResizes.push(+d.height);"
            "f.style.height=Math.max(200,Math.ceil(+d.height))+'px'}});</script></body></html>")

    def _launcher_page(self, handler: BaseHTTPRequestHandler, req: _HandlerRequest) -> None:
        q = req.get_data
        parts = [p for p in req.path.split("/") if p]
        if len(parts) == 2 and parts[0] == "frame":
            spec_title = self._frames.get(parts[1])
            if spec_title is None:
                return handler._reply(404, "unknown frame", "text/plain")
            return handler._reply(200, self._frame_page(self.login_url(spec_title[0]), spec_title[1]),
                                  "text/html; charset=utf-8")
        if parts == ["course"]:
            return handler._reply(200, self._frame_page(f"/launch?{urlencode(q)}", "kdgrade activity"),
                                  "text/html; charset=utf-8")
        if req.path.rstrip("/") == "/launch":
            user_id, roles = self.DEV_USERS.get(q.get("as", ""), self.DEV_USERS["student"])
            if q.get("dl"):
                spec = LaunchSpec(user_id, roles, name=user_id, deep_linking=True)
            else:
                rec = next((r for r in self.gradebook.deep_link_items if r["resource_link_id"] == q.get("link")), None)
                if rec is None:
                    return handler._reply(404, "unknown link", "text/plain")
                spec = LaunchSpec(user_id, roles, name=user_id.replace("-", " ").title(),
                                  resource_link_id=rec["resource_link_id"], custom=rec["item"].get("custom") or {},
                                  lineitem_id=rec["lineitem_id"])
            return handler._reply(302, "", "text/plain", {"Location": self.login_url(spec)})
        rows = []
        for rec in self.gradebook.deep_link_items:
            link = html.escape(rec["resource_link_id"])
            title = html.escape(str(rec["item"].get("title", "")))
            buttons = " ".join(f'<a href="/course?as={who}&link={link}">open as {who}</a>'
                               for who in ("student", "student2", "teacher"))
            rows.append(f"<li>{title}: {buttons}</li>")
        with self.gradebook.lock:
            grades = "".join(
                f"<tr><td>{html.escape(self.gradebook.lineitems.get(lid, {}).get('label', lid))}</td>"
                f"<td>{html.escape(user)}</td><td>{html.escape(str(r.get('scoreGiven', '')))}</td>"
                f"<td>{html.escape(r.get('gradingProgress', ''))}</td><td>{html.escape(r.get('comment', ''))}</td></tr>"
                for (lid, user), r in self.gradebook.results.items())
        page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Development LMS</title></head>'
            '<body style="font-family:system-ui;max-width:50rem;margin:2rem auto">'
            "<h1>Development LMS (plays Canvas or Moodle for kdgrade)</h1>"
            f"<p>Course <strong>course-1</strong>, platform {html.escape(self.issuer)}.</p>"
            '<p><a href="/course?as=teacher&dl=1">Add a kdgrade question (as the teacher, Deep Linking)</a></p>'
            f"<h2>Activities</h2><ul>{''.join(rows) or '<li>None yet: add one above.</li>'}</ul>"
            "<h2>Gradebook</h2><table><thead><tr><th>Column</th><th>User</th><th>Score</th><th>Progress</th>"
            f"<th>Comment</th></tr></thead><tbody>{grades}</tbody></table>"
            '<p><a href="/">Refresh</a></p></body></html>')
        return handler._reply(200, page, "text/html; charset=utf-8")

    def rotate_keys(self) -> None:
        """A new platform key pair: tokens it issued before no longer verify."""
        self.private_pem, self.public_pem = _rsa_pems()

    @property
    def urls(self) -> dict[str, str]:
        """What a kdgrade admin enters for this platform."""
        return {"issuer": self.issuer, "client_id": self.client_id, "deployment_id": self.deployment_id,
                "auth_url": f"{self.base}/auth", "token_url": f"{self.base}/token",
                "keyset_url": f"{self.base}/jwks"}

    # --- lti1p3platform configuration --------------------------------------------------------------

    def conf(self, *, private_pem: str | None = None) -> LTI1P3PlatformConfAbstract:
        platform = self

        class Conf(LTI1P3PlatformConfAbstract):
            def init_platform_config(self, **kwargs: t.Any) -> None:
                pass

            def get_registration_by_params(self, **kwargs: t.Any) -> Registration:
                reg = Registration()
                reg.set_iss(platform.issuer).set_client_id(platform.client_id)
                reg.set_deployment_id(platform.deployment_id)
                tool = platform.tool_urls
                reg.set_oidc_login_url(tool["login"])
                reg.set_launch_url(tool["launch"])
                reg.set_deeplink_launch_url(tool["launch"])
                reg.set_tool_key_set_url(tool["jwks"])
                reg.set_platform_public_key(platform.public_pem)
                reg.set_platform_private_key(private_pem or platform.private_pem)
                return reg

        conf = Conf()
        conf.get_registration()
        return conf

    # --- launches ------------------------------------------------------------------------------

    def login_url(self, spec: LaunchSpec) -> str:
        """The third-party login initiation URL the LMS sends the browser to (lti1p3platform builds it)."""
        hint = secrets.token_urlsafe(12)
        self._launches[hint] = spec

        class Login(OIDCLoginAbstract):
            def set_lti_message_hint(self, **kwargs: t.Any) -> None:
                self._lti_message_hint = kwargs["hint"]

            def get_redirect(self, url: str) -> str:
                return url

        login = Login(None, self.conf())
        login.set_lti_message_hint(hint=hint)
        return login.initiate_login(spec.user_id)

    def _auth(self, req: _HandlerRequest) -> tuple[int, str]:
        params = req.get_data
        spec = self._launches.get(params.get("lti_message_hint", ""))
        if spec is None or params.get("login_hint") != spec.user_id:
            return 400, "unknown launch"
        gradebook_base = f"{self.base}/ags/{spec.context_id}"
        conf = self.conf(private_pem=self.rogue_private_pem if spec.rogue_key else None)

        class Launch(LTIAdvantageMessageLaunchAbstract):
            def render_launch_form(self, launch_data: dict[str, t.Any], **kwargs: t.Any) -> str:
                return _launch_form(launch_data)

            def get_launch_message(self, include_extra_claims: bool = True) -> dict[str, t.Any]:
                message = super().get_launch_message(include_extra_claims)
                for claim in spec.drop_claims:
                    message.pop(claim, None)
                return message

        launch = Launch(req, conf)
        launch.set_user_data(spec.user_id, spec.roles, full_name=spec.name or None, email_address=spec.email or None)
        names = {k: v for k, v in (("given_name", spec.given_name), ("family_name", spec.family_name)) if v}
        if names:
            launch.set_extra_claims(names)
        launch.set_launch_context_claim(spec.context_id, context_title=spec.context_title,
                                        context_types=["http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"])
        if spec.custom:
            launch.set_custom_parameters_claim(spec.custom)
        if spec.deep_linking:
            self._dl_context = spec.context_id
            launch.set_dl(f"{self.base}/deep_link_return", title="Add kdgrade",
                          accept_types={"ltiResourceLink"}, extra_data={"context": spec.context_id})
        else:
            launch.set_resource_link_claim(spec.resource_link_id, title="kdgrade activity")
            if spec.ags:
                lineitem = f"{gradebook_base}/lineitems/{spec.lineitem_id}" if spec.lineitem_id else None
                launch.set_ags(f"{gradebook_base}/lineitems", lineitem, allow_creating_lineitems=True)
        if spec.nrps:
            query = f"?{spec.nrps_query}" if spec.nrps_query else ""
            launch.set_nrps(f"{self.base}/nrps/{spec.context_id}/memberships{query}")
        launch.set_id_token_expiration(spec.expiration)
        if spec.extra_claims:
            launch.set_extra_claims(spec.extra_claims)
        return 200, launch.lti_launch()

    # --- services ------------------------------------------------------------------------------

    def add_lineitem(self, context_id: str, label: str, score_maximum: float, resource_link_id: str = "",
                     resource_id: str = "") -> str:
        """Create a gradebook column (as an LMS does when a link with a line item is added)."""
        with self.gradebook.lock:
            n = len(self.gradebook.lineitems) + 1
            lid = f"{self.base}/ags/{context_id}/lineitems/{n}"
            self.gradebook.lineitems[lid] = {"id": lid, "label": label, "scoreMaximum": score_maximum,
                                             "resourceLinkId": resource_link_id, "resourceId": resource_id}
            return str(n)

    def set_members(self, context_id: str, members: list[dict]) -> None:
        self.gradebook.members[context_id] = members

    def _ags(self, req: _HandlerRequest, context_id: str) -> AssignmentsGradesService:
        gb = self.gradebook
        base = f"{self.base}/ags/{context_id}"
        platform = self

        class Ags(AssignmentsGradesService):
            def find_lineitems(self, page: int = 1, limit: int | None = None, line_item_id: str | None = None,
                               resource_link_id: str | None = None, resource_id: str | None = None,
                               tag: str | None = None, **kw: t.Any) -> dict:
                with gb.lock:
                    items = [i for i in gb.lineitems.values() if i["id"].startswith(base + "/")
                             and (not resource_link_id or i.get("resourceLinkId") == resource_link_id)]
                return {"content": items, "has_next": False, "next": None}

            def find_lineitem(self, line_item_id: str) -> dict:
                from lti1p3platform.exceptions import LineItemNotFoundException

                item = gb.lineitems.get(f"{base}/lineitems/{line_item_id}")
                if item is None:
                    raise LineItemNotFoundException()
                return item

            def create_lineitem(self, creation_data: dict) -> dict:
                n = platform.add_lineitem(context_id, creation_data.get("label", ""),
                                          creation_data.get("scoreMaximum", 0),
                                          creation_data.get("resourceLinkId", ""), creation_data.get("resourceId", ""))
                return gb.lineitems[f"{base}/lineitems/{n}"]

            def update_lineitem(self, update_data: dict) -> dict:
                raise NotImplementedError

            def delete_lineitem(self, line_item_id: str) -> None:
                gb.lineitems.pop(f"{base}/lineitems/{line_item_id}", None)

            def update_score(self, line_item_id: str, score: dict) -> UpdateScoreStatus:
                from lti1p3platform.exceptions import LineItemNotFoundException

                lid = f"{base}/lineitems/{line_item_id}"
                with gb.lock:
                    if lid not in gb.lineitems:
                        raise LineItemNotFoundException()
                    key = (lid, str(score["userId"]))
                    held = gb.results.get(key)
                    new_ts = _parse_ts(score["timestamp"])
                    if held is not None:
                        held_ts = _parse_ts(held["timestamp"])
                        if new_ts < held_ts:
                            return UpdateScoreStatus.OLD_TIMESTAMP  # Moodle: 409 for an older score
                        if new_ts == held_ts:
                            return UpdateScoreStatus.SUCCESS  # the same score again: nothing changes
                    gb.results[key] = dict(score)
                    gb.applied.append({"lineitem": lid, **score})
                    return UpdateScoreStatus.SUCCESS

            def get_results(self, line_item_id: str, page: int = 1, limit: int | None = None,
                            user_id: str | None = None, **kw: t.Any) -> dict:
                lid = f"{base}/lineitems/{line_item_id}"
                with gb.lock:
                    rows = [{"userId": u, "resultScore": s.get("scoreGiven"), "resultMaximum": s.get("scoreMaximum"),
                             "comment": s.get("comment", "")} for (item, u), s in gb.results.items() if item == lid]
                return {"content": rows, "has_next": False, "next": None}

        return Ags(req, self.conf(), f"{base}/lineitems")

    def _nrps(self, req: _HandlerRequest, context_id: str) -> NamesRoleProvisioningService:
        gb = self.gradebook

        class Nrps(NamesRoleProvisioningService):
            def get_member_data_page(self, page: int = 1, limit: int | None = None, role: str | None = None,
                                     since: str | None = None, **kw: t.Any) -> dict:
                members = [dict(m) for m in gb.members.get(context_id, [])]
                page, limit = int(page), int(limit) if limit else None
                if limit:
                    chunk = members[(page - 1) * limit: page * limit]
                    return {"content": chunk, "has_next": page * limit < len(members), "next": None}
                return {"content": members, "has_next": False, "next": None}

            def get_context_by_id(self) -> NrpsContext:
                return NrpsContext(id=context_id, label=context_id, title=context_id)

        return Nrps(req, self.conf(), f"{self.base}/nrps/{context_id}/memberships")

    def _deep_link_return(self, req: _HandlerRequest) -> tuple[int, str]:
        conf = self.conf()
        conf.set_accepted_deeplinking_types(["ltiResourceLink"])
        items = conf.validate_deeplinking_resp(req.form_data)
        for item in items:
            rl_id = f"dl-link-{len(self.gradebook.deep_link_items) + 1}"
            record = {"resource_link_id": rl_id, "item": item, "lineitem_id": None}
            line = item.get("lineItem")
            if line:
                record["lineitem_id"] = self.add_lineitem(
                    self._dl_context, line.get("label", item.get("title", "")),
                    line["scoreMaximum"], rl_id, line.get("resourceId", ""))
            self.gradebook.deep_link_items.append(record)
        return 200, '<p>Added to the course. <a href="/">Back to the course</a></p>'


def _parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _launch_form(data: dict[str, t.Any]) -> str:
    # The same auto-submitting form as lti1p3platform's launch.html template (which needs pkg_resources).
    esc = {k: html.escape(str(v), quote=True) for k, v in data.items()}
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>LTI Tool Launch</title></head><body>'
            f'<form method="POST" action="{esc["launch_url"]}" id="form">'
            f'<input type="hidden" name="id_token" value="{esc["id_token"]}">'
            f'<input type="hidden" name="state" value="{esc["state"]}"></form>'
            f'<script>document.getElementById("form").submit();</script></body></html>')


def _make_handler(platform: DevPlatform) -> type[BaseHTTPRequestHandler]:
    from lti1p3platform.exceptions import LtiDeepLinkingResponseException, LtiException

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: t.Any) -> None:
            pass

        def _reply(self, status: int, body: str | bytes, ctype: str = "application/json",
                   headers: dict[str, str] | None = None) -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _service_reply(self, resp: t.Any) -> None:
            if 200 <= resp.code < 300:
                result = resp.result
                data = result["content"] if isinstance(result, dict) and "content" in result else result
                headers = {}
                if isinstance(result, dict) and result.get("next"):
                    headers["Link"] = f'<{result["next"]}>; rel="next"'
                self._reply(resp.code, json.dumps(data), resp.media_type, headers)
            else:
                self._reply(resp.code, json.dumps({"error": resp.message}))

        def _dispatch(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            req = _HandlerRequest((self, body))
            parts = [p for p in urlsplit(self.path).path.split("/") if p]
            try:
                if parts == [".well-known", "openid-configuration"]:
                    return self._reply(200, json.dumps(platform._openid_configuration()))
                if parts == ["register"] and self.command == "POST":
                    status, answer = platform._register(req)
                    return self._reply(status, json.dumps(answer))
                if not parts or parts in (["launch"], ["course"]) or (len(parts) == 2 and parts[0] == "frame"):
                    return platform._launcher_page(self, req)
                if parts == ["jwks"]:
                    platform.gradebook.jwks_requests += 1
                    return self._reply(200, json.dumps(platform.conf().get_jwks()))
                if parts == ["token"] and self.command == "POST":
                    platform.gradebook.token_requests += 1
                    platform.gradebook.token_forms.append(dict(req.form_data))
                    try:
                        token = platform.conf().get_access_token(req.form_data)
                    except Exception as exc:
                        return self._reply(400, json.dumps({"error": "invalid_client",
                                                            "error_description": str(exc)[:200]}))
                    return self._reply(200, json.dumps(token))
                if parts == ["auth"]:
                    status, page = platform._auth(req)
                    return self._reply(status, page, "text/html; charset=utf-8")
                if parts == ["deep_link_return"] and self.command == "POST":
                    try:
                        status, page = platform._deep_link_return(req)
                    except (LtiException, LtiDeepLinkingResponseException, Exception) as exc:
                        return self._reply(400, f"invalid deep linking response: {exc}", "text/plain")
                    return self._reply(status, page, "text/html; charset=utf-8")
                if len(parts) >= 3 and parts[0] == "ags" and parts[2] == "lineitems":
                    service = platform._ags(req, parts[1])
                    if len(parts) == 3:
                        handler = (service.handle_create_lineitem if self.command == "POST"
                                   else service.handle_get_lineitems)
                        return self._service_reply(service.handle_resp(handler))
                    if len(parts) == 4:
                        return self._service_reply(service.handle_resp(service.handle_get_lineitem,
                                                                       line_item_id=parts[3]))
                    if len(parts) == 5 and parts[4] == "scores":
                        return self._scores(service, req, parts[3])
                    if len(parts) == 5 and parts[4] == "results":
                        return self._service_reply(service.handle_resp(service.handle_get_results,
                                                                       line_item_id=parts[3]))
                if len(parts) == 3 and parts[0] == "nrps" and parts[2] == "memberships":
                    service = platform._nrps(req, parts[1])
                    return self._service_reply(service.handle_resp(service.handle_get_members))
                return self._reply(404, json.dumps({"error": "not found"}))
            except jwt.InvalidTokenError as exc:
                # lti1p3platform's service authentication lets PyJWT's error escape for a token it
                # cannot verify (e.g. signed by a key it no longer holds); an LMS answers 401.
                return self._reply(401, json.dumps({"error": f"invalid token: {exc}"}))
            except (BrokenPipeError, ConnectionResetError):
                return None

        def _scores(self, service: AssignmentsGradesService, req: _HandlerRequest, line_item_id: str) -> None:
            gb = platform.gradebook
            with gb.lock:
                n = len(gb.requests)
                gb.requests.append({"lineitem": line_item_id, **(req.json or {})})
            fault = gb.score_fault(req.json or {}, n) if gb.score_fault else None
            if fault is None:
                return self._service_reply(service.handle_resp(service.handle_update_score, line_item_id=line_item_id))
            gb.in_score_post.set()
            if fault.apply:
                service.handle_resp(service.handle_update_score, line_item_id=line_item_id)
            if fault.block is not None:
                fault.block.wait(30)
            if fault.delay:
                time.sleep(fault.delay)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._reply(fault.status, fault.body if fault.body is not None else json.dumps(
                    {"error": "injected failure"}), headers=fault.headers)

        do_GET = _dispatch
        do_POST = _dispatch
        do_PUT = _dispatch
        do_DELETE = _dispatch

    return Handler


def register_in_kdgrade(platform: DevPlatform, name: str = "Local test LMS") -> t.Any:
    """Add this platform to kdgrade's database, as an admin would, and give the platform kdgrade's keyset
    URL for it (as the admin would paste it into the LMS)."""
    from kdgrade.lti.config import add_platform
    from kdgrade.lti.keys import jwks_url

    u = platform.urls
    registered = add_platform(issuer=u["issuer"], client_id=u["client_id"], deployment_ids=[u["deployment_id"]],
                              auth_url=u["auth_url"], token_url=u["token_url"], keyset_url=u["keyset_url"],
                              name=name)
    platform.tool_jwks_url = jwks_url(platform.tool_base, registered)
    return registered


__all__ = ["ROLE_ADMIN", "ROLE_INSTRUCTOR", "ROLE_LEARNER", "DevPlatform", "Fault", "Gradebook", "LaunchSpec",
           "register_in_kdgrade", "urlencode"]
