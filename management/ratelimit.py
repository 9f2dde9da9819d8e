"""Rate limits of the API, counted by django-ratelimit in the default cache (Redis).

Two limits:

- ``INGEST_RATE_LIMIT`` (default 1200/m) per API key on ingestion, so one
  runaway gateway cannot starve the others;
- ``AUTH_FAILURE_RATE_LIMIT`` (default 60/m) of failed API-key
  authentications per client IP. Verifying an unknown key costs a hash and a
  database query, so an IP over the limit is refused with 429 *before* an
  uncached key is verified; keys already verified (in the process cache) keep
  working.

Both fail open: when Redis is down (``RATELIMIT_FAIL_OPEN`` and the cache's
``IGNORE_EXCEPTIONS``) nothing is limited. For an early-warning network a
reading accepted during a Redis outage is worth far more than the protection
the limit gives; the health check reports Redis as degraded meanwhile.

Windows are fixed (django-ratelimit's), so ``Retry-After`` is the time left
in the current window.

The ingest limit runs on every request of the hottest endpoint. django-ratelimit
counts with two Redis round trips (``add`` then ``incr``); on Redis the ingest
check instead sends ``INCR`` + ``EXPIRE NX`` in one pipelined round trip over
the same window and key scheme (django-ratelimit's rate parsing and windows),
which halves its cost (see docs/benchmarks.md, "2b"). After a Redis error the
check is skipped for ``RATELIMIT_BREAKER_SECONDS`` so an outage does not add a
socket timeout to every request.
"""
from __future__ import annotations

import logging
import time

from django.conf import settings
from django_ratelimit.core import _get_window, _make_cache_key, _split_rate, get_usage
from rest_framework.exceptions import Throttled

logger = logging.getLogger(__name__)

INGEST_GROUP = "api.ingest"
AUTH_FAILURE_GROUP = "api.auth_failure"


def _key_id(group: str, request) -> str:
    return request.auth.id


_breaker_open_until = 0.0


def _redis_count(key_id: str, rate: str) -> tuple[int, int, int] | None:
    """(count, limit, seconds left) in one round trip, or None when Redis is unavailable (fail open)."""
    global _breaker_open_until
    if time.monotonic() < _breaker_open_until:
        return None
    from django_redis import get_redis_connection

    limit, period = _split_rate(rate)
    window = _get_window(key_id, period)
    cache_key = f"{settings.CACHE_KEY_PREFIX}:1:" + _make_cache_key(INGEST_GROUP, window, rate, key_id, None)
    try:
        pipe = get_redis_connection("default").pipeline(transaction=False)
        pipe.incr(cache_key)
        pipe.expire(cache_key, period + 1, nx=True)
        count, _ = pipe.execute()
    except Exception as exc:  # any Redis failure: fail open, and stop trying for a while
        _breaker_open_until = time.monotonic() + settings.RATELIMIT_BREAKER_SECONDS
        logger.warning("ratelimit.redis_unavailable", extra={"error": str(exc)[:200]})
        return None
    return int(count), limit, max(1, window - int(time.time()))


def ingest_check(*, request) -> None:
    """Count one ingestion request against its key; raise 429 once over the limit."""
    if not settings.RATELIMIT_ENABLE:
        return
    rate = settings.INGEST_RATE_LIMIT
    if settings.REDIS_URL:
        usage = _redis_count(request.auth.id, rate)
        if usage is None:
            return
        count, limit, time_left = usage
        should_limit = count > limit
    else:  # embedded default: local-memory cache through django-ratelimit itself
        result = get_usage(request, group=INGEST_GROUP, key=_key_id, rate=rate, increment=True)
        if result is None:
            return
        should_limit, time_left = result["should_limit"], result["time_left"]
    if should_limit:
        raise Throttled(wait=max(1, time_left), detail=f"Rate limit {rate} per API key exceeded.")


def auth_failure_check(*, request, increment: bool) -> None:
    """Count (or only look at) failed authentications of the client IP; raise 429 once over the limit."""
    usage = get_usage(request, group=AUTH_FAILURE_GROUP, key="ip", rate=settings.AUTH_FAILURE_RATE_LIMIT, increment=increment)
    if usage is None:
        return
    over = usage["count"] > usage["limit"] if increment else usage["count"] >= usage["limit"]
    if over:
        raise Throttled(wait=max(1, usage["time_left"]), detail="Too many failed authentications from this address.")
