"""Fixtures of the browser tests: one headless Chromium per session, a fresh context per test that may
reach nothing but 127.0.0.1/localhost, kdgrade on pytest-django's live server (http://localhost:PORT)
and the development LMS on http://127.0.0.1:PORT, so that the tool is a cross-site iframe as in an LMS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

# Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.browser.support import CHROMIUM, CHROMIUM_ARGS

LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/bootstrap.sh dev (installs Debian's chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def browser_context(chromium: Browser) -> Iterator[BrowserContext]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    context.set_default_timeout(15_000)
    outside: list[str] = []

    def local_only(route):
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:", "about:")) or host in LOCAL_HOSTS:
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    context.route("**/*", local_only)
    yield context
    context.close()
    assert not outside, f"pages asked for addresses beyond 127.0.0.1: {outside}"


@pytest.fixture
def page(browser_context: BrowserContext) -> Iterator[Page]:
    """A tab; a JavaScript error on any page or frame fails the test."""
    p = browser_context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    yield p
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def lms(live_server) -> Iterator:
    """The development LMS (lti1p3platform over HTTP on 127.0.0.1) with kdgrade registered in it."""
    from devtools.devplatform import DevPlatform, register_in_kdgrade

    assert urlsplit(live_server.url).hostname == "localhost", "the tool must be cross-site to the LMS"
    with DevPlatform(live_server.url) as platform:
        register_in_kdgrade(platform)
        yield platform
