"""Token authentication with a short per-process cache (the scoring endpoint's hot path)."""

from __future__ import annotations

import threading
import time

from rest_framework.authentication import TokenAuthentication

TOKEN_CACHE_TTL_S = 30.0
_MAX_ENTRIES = 10_000


class CachedTokenAuthentication(TokenAuthentication):
    """DRF's `Authorization: Token <key>`, with the token -> user lookup cached for TOKEN_CACHE_TTL_S
    seconds per process: a deleted token or deactivated user is refused at most that long after."""

    _cache: dict[str, tuple[float, object, object]] = {}
    _lock = threading.Lock()

    def authenticate_credentials(self, key: str) -> tuple[object, object]:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < TOKEN_CACHE_TTL_S:
            return hit[1], hit[2]
        user, token = super().authenticate_credentials(key)  # raises AuthenticationFailed
        with self._lock:
            if len(self._cache) >= _MAX_ENTRIES:
                self._cache.clear()
            self._cache[key] = (now, user, token)
        return user, token

    @classmethod
    def clear_cache(cls) -> None:
        with cls._lock:
            cls._cache.clear()
