"""Test support: a browser (requests) that goes through the LTI launch between the DevPlatform and a
kdgrade served over HTTP, optionally dropping every cookie as a browser does in a cross-site iframe."""

from __future__ import annotations

import re
from http.cookiejar import DefaultCookiePolicy
from urllib.parse import urljoin

import requests

from devtools.devplatform import DevPlatform, LaunchSpec


class Browser:
    def __init__(self, *, drop_cookies: bool = False) -> None:
        self.http = requests.Session()
        if drop_cookies:
            self.http.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        self.form: dict[str, str] = {}

    def start_launch(self, platform: DevPlatform, spec: LaunchSpec) -> requests.Response:
        """Login initiation at kdgrade and the platform's auth step; returns the auth response (the
        auto-submitting launch form) or kdgrade's refusal of the login."""
        r = self.http.get(platform.login_url(spec), allow_redirects=False, timeout=30)
        if r.status_code != 302:
            return r
        auth = self.http.get(r.headers["Location"], allow_redirects=False, timeout=30)
        if auth.status_code == 200:
            self.form = parse_form(auth.text)
        return auth

    def post_launch(self, form: dict[str, str] | None = None, follow: bool = True) -> requests.Response:
        form = dict(form or self.form)
        action = form.pop("_action")
        return self.http.post(action, data=form, allow_redirects=follow, timeout=30)

    def launch(self, platform: DevPlatform, spec: LaunchSpec) -> requests.Response:
        r = self.start_launch(platform, spec)
        if not self.form or r.status_code != 200:
            return r
        return self.post_launch()

    def get(self, url: str, **kw: object) -> requests.Response:
        return self.http.get(url, timeout=30, **kw)

    def post(self, url: str, data: dict, **kw: object) -> requests.Response:
        return self.http.post(url, data=data, timeout=30, **kw)


def parse_form(page: str) -> dict[str, str]:
    """The action and hidden inputs of the first form of a page."""
    action = re.search(r'<form[^>]*action="([^"]*)"', page)
    fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page))
    import html

    out = {k: html.unescape(v) for k, v in fields.items()}
    out["_action"] = html.unescape(action.group(1)) if action else ""
    return out


def ls_token(url: str) -> str:
    m = re.search(r"[?&]ls=([^&]+)", url)
    return m.group(1) if m else ""


def absolute(base: str, path: str) -> str:
    return urljoin(base + "/", path.lstrip("/"))
