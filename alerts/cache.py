"""The "alerts generation": one cache counter that every alert change bumps.

Alert lists are cached in Redis together with the generation they were built
under, and a cached list counts only while that is the current generation,
so a change makes every cached list stale at once (no key scanning, no
per-filter invalidation) and a reader never sees a state older than the last
committed change. A lookup reads the counter and the page in one round trip
(``alerts_page_lookup``). The bump runs on commit: bumping before the
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

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from warning_system.cache_writes import CacheWriteBehind

logger = logging.getLogger(__name__)

GENERATION_KEY = "alerts:generation"


def alerts_generation() -> int | None:
    """The current generation, or None when the cache is unavailable."""
    value = cache.get(GENERATION_KEY)
    if value is None:
        cache.add(GENERATION_KEY, time.time_ns(), timeout=None)
        value = cache.get(GENERATION_KEY)
    return value


def alerts_page_lookup(page_key: str) -> tuple[int | None, bytes | None]:
    """The current generation and the page cached under ``page_key`` if it was built in it.

    One MGET for both: a cached dashboard poll used to be two Redis round trips
    (the generation, then the page under a key naming it), and each costs the
    web worker ~100 µs of client CPU. The generation is read before the caller
    queries the database, so a page stored with it (``alerts_page_store``) is
    stale as soon as a change commits during or after that query. Returns
    ``(None, None)`` when the cache is unavailable.
    """
    found = cache.get_many([GENERATION_KEY, page_key])
    generation = found.get(GENERATION_KEY)
    if generation is None:  # a missing counter (created now), or Redis down (None)
        return alerts_generation(), None
    entry = found.get(page_key)
    if entry is not None and entry[0] == generation:
        return generation, entry[1]
    return generation, None


# Pages are stored behind the request (warning_system.cache_writes): an uncached list answers
# without waiting for Redis to take the page, which is safe because the page carries its
# generation; one stored after a change committed is never served.
page_writes = CacheWriteBehind(name="alerts-page-cache-writer", timeout=lambda: settings.ALERTS_LIST_CACHE_SECONDS)


def alerts_page_store(page_key: str, generation: int, body: bytes) -> None:
    page_writes.put({page_key: (generation, body)})


def _bump() -> None:
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:  # the key is missing: start a fresh, non-colliding generation
        cache.set(GENERATION_KEY, time.time_ns(), timeout=None)
    logger.debug("alerts.cache_invalidated")


def alerts_generation_bump_on_commit() -> None:
    """Invalidate every cached alert list once the current transaction commits."""
    transaction.on_commit(_bump)
