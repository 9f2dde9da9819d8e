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
"""
from __future__ import annotations

from django.conf import settings
from django_ratelimit.core import get_usage
from rest_framework.exceptions import Throttled

INGEST_GROUP = "api.ingest"
AUTH_FAILURE_GROUP = "api.auth_failure"


def _key_id(group: str, request) -> str:
    return request.auth.id


def ingest_check(*, request) -> None:
    """Count one ingestion request against its key; raise 429 once over the limit."""
    usage = get_usage(request, group=INGEST_GROUP, key=_key_id, rate=settings.INGEST_RATE_LIMIT, increment=True)
    if usage is not None and usage["should_limit"]:
        raise Throttled(wait=max(1, usage["time_left"]), detail=f"Rate limit {settings.INGEST_RATE_LIMIT} per API key exceeded.")


def auth_failure_check(*, request, increment: bool) -> None:
    """Count (or only look at) failed authentications of the client IP; raise 429 once over the limit."""
    usage = get_usage(request, group=AUTH_FAILURE_GROUP, key="ip", rate=settings.AUTH_FAILURE_RATE_LIMIT, increment=increment)
    if usage is None:
        return
    over = usage["count"] > usage["limit"] if increment else usage["count"] >= usage["limit"]
    if over:
        raise Throttled(wait=max(1, usage["time_left"]), detail="Too many failed authentications from this address.")
