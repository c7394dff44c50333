"""Which sites may show kdgrade's LTI pages in a frame: the registered, active platforms.

The CSP frame-ancestors list holds 'self', each active platform's issuer and authentication URL
origins, and the origins an administrator listed for it (Platform.frame_origins: Canvas cloud frames
from the institution's own host, e.g. https://district.instructure.com).  Recomputed at most once a
minute (the cache), so a platform added or deactivated counts within a minute.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache

from kdgrade.lti.models import Platform

CACHE_KEY = "lti:frame-ancestors"
CACHE_SECONDS = 60


def origin(url: str) -> str | None:
    """scheme://host[:port] of an http(s) URL (https only in production), or None."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return None
    allowed = ("https",) if settings.PRODUCTION else ("https", "http")
    if parts.scheme not in allowed or not parts.hostname or any(c in parts.netloc for c in " ;,'\"*"):
        return None
    return f"{parts.scheme}://{parts.netloc.lower()}"


def platform_origins() -> list[str]:
    """The origins of every active platform (sorted, no duplicates)."""
    found: set[str] = set()
    for issuer, auth_url, extra in Platform.objects.filter(is_active=True).values_list(
            "issuer", "auth_url", "frame_origins"):
        for url in [issuer, auth_url, *extra.split()]:
            o = origin(url)
            if o:
                found.add(o)
    return sorted(found)


def frame_ancestors() -> str:
    """The frame-ancestors source list for the LTI pages: KDGRADE_FRAME_ANCESTORS when set, else
    'self' and the registered platforms' origins."""
    if settings.FRAME_ANCESTORS:
        return settings.FRAME_ANCESTORS
    value = cache.get(CACHE_KEY)
    if value is None:
        value = " ".join(["'self'", *platform_origins()])
        cache.set(CACHE_KEY, value, CACHE_SECONDS)
    return value
