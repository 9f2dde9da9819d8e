"""The "alerts generation": one cache counter that every alert change bumps.

Alert lists are cached in Redis under a key that includes the current
generation, so a change makes every cached list unreachable at once (no key
scanning, no per-filter invalidation) and a reader never sees a state older
than the last committed change. The bump runs on commit: bumping before the
commit would let a concurrent reader cache the pre-commit state under the new
generation.

When the counter is missing (first use, Redis restarted or evicted the key)
it starts from the current time in nanoseconds rather than from 1, so a
recreated counter can never collide with a generation whose lists are still
cached. When Redis is down the generation is ``None`` and callers skip the
cache entirely.
"""
from __future__ import annotations

import logging
import time

from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)

GENERATION_KEY = "alerts:generation"


def alerts_generation() -> int | None:
    """The current generation, or None when the cache is unavailable."""
    value = cache.get(GENERATION_KEY)
    if value is None:
        cache.add(GENERATION_KEY, time.time_ns(), timeout=None)
        value = cache.get(GENERATION_KEY)
    return value


def _bump() -> None:
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:  # the key is missing: start a fresh, non-colliding generation
        cache.set(GENERATION_KEY, time.time_ns(), timeout=None)
    logger.debug("alerts.cache_invalidated")


def alerts_generation_bump_on_commit() -> None:
    """Invalidate every cached alert list once the current transaction commits."""
    transaction.on_commit(_bump)
