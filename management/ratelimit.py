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

The ingest limit runs on every request of the hottest endpoint, and one Redis
round trip costs more CPU (two syscalls, redis-py's pipeline machinery) than the
rest of the request. So on Redis each process *reserves* its key's quota in
blocks: ``INCRBY n`` + ``EXPIRE NX`` in one pipelined round trip claims counts
``total - n + 1 .. total`` of the current window (django-ratelimit's window,
key scheme and rate parsing, so its readers see the same counter), and the
next ``n - 1`` requests of that key in that process are decided locally. The
block is 1 % of the limit (at least 1, at most ``_MAX_BLOCK``), so:

- a key is never admitted more than ``limit`` requests per window, whatever
  the number of processes (every admitted request holds a claimed count);
- a process can leave at most ``n - 1`` claimed counts unused when the window
  ends, so with P processes serving one key the key may be refused up to
  P x (n - 1) requests early (1 % of the limit per process; exact for
  limits under 200/window, where n = 1 and every request asks Redis);
- once a key is over the limit, the process refuses it locally until the
  window ends, so a runaway gateway costs no Redis traffic at all.

With the default 1200/m the block is 12; with the benchmark's very large
limit it is ``_MAX_BLOCK``, and the limiter's cost per request drops from a
round trip (~200 µs of CPU) to a dictionary lookup (see docs/benchmarks.md,
"2b"). After a Redis error the check is skipped for
``RATELIMIT_BREAKER_SECONDS`` so an outage does not add a socket timeout to
every request.
"""
from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django_ratelimit.core import _get_window, _make_cache_key, _split_rate, get_usage
from rest_framework.exceptions import Throttled

logger = logging.getLogger(__name__)

INGEST_GROUP = "api.ingest"
AUTH_FAILURE_GROUP = "api.auth_failure"


def _key_id(group: str, request) -> str:
    return request.auth.id


_MAX_BLOCK = 100
_MAX_LEASES = 10_000

_breaker_open_until = 0.0
_leases: dict[tuple[str, str], list] = {}  # (key id, rate) -> [window end, counts left, over limit]
_leases_lock = threading.Lock()


def _redis_claim(key_id: str, rate: str, limit: int, period: int) -> list | None:
    """Claim a block of this window's counts in one round trip: a new lease, or None when Redis is unavailable (fail open)."""
    global _breaker_open_until
    from django_redis import get_redis_connection

    window = _get_window(key_id, period)
    block = min(_MAX_BLOCK, max(1, limit // 100))
    cache_key = f"{settings.CACHE_KEY_PREFIX}:1:" + _make_cache_key(INGEST_GROUP, window, rate, key_id, None)
    try:
        pipe = get_redis_connection("default").pipeline(transaction=False)
        pipe.incrby(cache_key, block)
        pipe.expire(cache_key, period + 1, nx=True)
        total, _ = pipe.execute()
    except Exception as exc:  # any Redis failure: fail open, and stop trying for a while
        _breaker_open_until = time.monotonic() + settings.RATELIMIT_BREAKER_SECONDS
        logger.warning("ratelimit.redis_unavailable", extra={"error": str(exc)[:200]})
        return None
    first = int(total) - block + 1  # the first count this block claimed
    granted = max(0, min(block, limit - first + 1))
    return [window, granted, granted < block]


def _redis_admit(key_id: str, rate: str) -> int | None:
    """0 when admitted, the seconds left in the window when over the limit, None when Redis is unavailable."""
    if time.monotonic() < _breaker_open_until:
        return None
    now = time.time()
    lease_key = (key_id, rate)
    with _leases_lock:
        lease = _leases.get(lease_key)
        if lease is not None and now < lease[0]:
            if lease[1] > 0:
                lease[1] -= 1
                return 0
            if lease[2]:  # the window's counts are exhausted: refuse without asking Redis
                return max(1, int(lease[0] - now))
    # No lease, an expired one, or a used-up block with quota left: claim the next block.
    # Claimed outside the lock (a round trip); two threads racing here both claim, which
    # costs at most one block of unused counts.
    limit, period = _split_rate(rate)
    lease = _redis_claim(key_id, rate, limit, period)
    if lease is None:
        return None
    admitted = lease[1] > 0
    if admitted:
        lease[1] -= 1
    with _leases_lock:
        if len(_leases) > _MAX_LEASES:
            _leases.clear()
        _leases[lease_key] = lease
    return 0 if admitted else max(1, int(lease[0] - now))


def leases_clear() -> None:
    """Forget this process's claimed blocks and close the breaker (tests that change the limit or flush Redis).

    A breaker left open by a test that stopped Redis would otherwise skip the
    limiter in whatever test runs within ``RATELIMIT_BREAKER_SECONDS`` after it.
    """
    global _breaker_open_until
    with _leases_lock:
        _leases.clear()
        _breaker_open_until = 0.0


def client_ip(group: str, request) -> str:
    """The client address for per-IP limits.

    django-ratelimit's ``key="ip"`` raises KeyError when a server (e.g. on a
    unix socket) sets no REMOTE_ADDR; such requests share one bucket instead
    of failing with a 500.
    """
    return request.META.get("REMOTE_ADDR") or "unknown"


def ingest_check(*, request) -> None:
    """Count one ingestion request against its key; raise 429 once over the limit."""
    if not settings.RATELIMIT_ENABLE:
        return
    rate = settings.INGEST_RATE_LIMIT
    if settings.REDIS_URL:
        time_left = _redis_admit(request.auth.id, rate)
        if not time_left:
            return
        should_limit = True
    else:  # embedded default: local-memory cache through django-ratelimit itself
        result = get_usage(request, group=INGEST_GROUP, key=_key_id, rate=rate, increment=True)
        if result is None:
            return
        should_limit, time_left = result["should_limit"], result["time_left"]
    if should_limit:
        raise Throttled(wait=max(1, time_left), detail=f"Rate limit {rate} per API key exceeded.")


def auth_failure_check(*, request, increment: bool) -> None:
    """Count (or only look at) failed authentications of the client IP; raise 429 once over the limit."""
    usage = get_usage(request, group=AUTH_FAILURE_GROUP, key=client_ip, rate=settings.AUTH_FAILURE_RATE_LIMIT, increment=increment)
    if usage is None:
        return
    over = usage["count"] > usage["limit"] if increment else usage["count"] >= usage["limit"]
    if over:
        raise Throttled(wait=max(1, usage["time_left"]), detail="Too many failed authentications from this address.")
