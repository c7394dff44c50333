"""API request rates (settings.REST_FRAMEWORK DEFAULT_THROTTLE_RATES), counted in the `throttle` cache."""

from __future__ import annotations

from django.core.cache import caches
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle


class UserThrottle(UserRateThrottle):
    cache = caches["throttle"]


class AnonThrottle(AnonRateThrottle):
    cache = caches["throttle"]
