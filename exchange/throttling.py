"""The API's request limits per user and per anonymous address, counted in
fixed windows with one Redis round trip.

DRF's ``SimpleRateThrottle`` keeps a list of the time of every request in the
window and reads and writes the whole pickled list on each request: at the
default 1,200 requests a minute that is a list of up to 1,200 floats, two
round trips and a pickle each way, on every order. These count in a window of
the rate's length instead (``INCR`` and ``EXPIRE`` in one pipeline): at most
twice the rate can pass around a window's edge, which these limits (abuse
protection, not billing) can afford. The login throttles (accounts.api) keep
DRF's exact sliding window.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from rest_framework import throttling
from rest_framework.request import Request


class _CountingMixin:
    rate: str | None
    num_requests: int
    duration: int
    key: str | None
    timer: Any

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)  # type: ignore[attr-defined]  # DRF's, after this mixin
        if self.key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        self._window_end = (window + 1) * self.duration - now
        key = cache.make_and_validate_key(f"{self.key}:{window}")
        # Django's RedisCache has no atomic "increment or create": use its client.
        client = cache._cache.get_client(key, write=True)  # type: ignore[attr-defined]  # settings: always Redis
        pipe = client.pipeline()
        pipe.incr(key)
        pipe.expire(key, self.duration + 1)
        count, _expired = pipe.execute()
        return bool(count <= self.num_requests)

    def wait(self) -> float | None:
        return max(0.0, getattr(self, "_window_end", float(self.duration)))


class UserRateThrottle(_CountingMixin, throttling.UserRateThrottle):
    """``user`` rate (``RATE_API_USER``), per signed-in user."""


class AnonRateThrottle(_CountingMixin, throttling.AnonRateThrottle):
    """``anon`` rate (``RATE_API_ANON``), per address."""
