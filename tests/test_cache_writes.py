"""warning_system.cache_writes: values stored behind the request land in Redis, in batches."""
from __future__ import annotations

import time

from django.core.cache import cache
from django_redis.cache import RedisCache

from warning_system.cache_writes import CacheWriteBehind


def _wait_for(predicate, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_values_put_land_in_redis_with_the_writers_timeout():
    writer = CacheWriteBehind(name="test-writer", timeout=lambda: 60)
    writer.put({"cw:a": 1, "cw:b": (2, b"x")})
    assert _wait_for(lambda: cache.get("cw:b") is not None)
    assert cache.get("cw:a") == 1 and cache.get("cw:b") == (2, b"x")
    assert 0 < cache.ttl("cw:a") <= 60


def test_values_put_between_redis_reads_are_written_together(monkeypatch):
    writes = []
    real = RedisCache.set_many
    monkeypatch.setattr(RedisCache, "set_many", lambda self, data, *a, **kw: writes.append(len(data)) or real(self, data, *a, **kw))
    writer = CacheWriteBehind(name="test-writer", timeout=lambda: 60)
    for i in range(50):  # as 50 requests in a row would: a Redis read (the GIL is free meanwhile), then a put
        cache.get(f"cw:absent:{i}")
        writer.put({f"cw:{i}": i})
    assert _wait_for(lambda: sum(writes) == 50)
    # Without the writer's pause it wrote once per put (49 writes here); a slow moment may split a batch.
    assert len(writes) <= 10, writes


def test_flush_sends_what_is_pending_at_once():
    writer = CacheWriteBehind(name="test-writer", timeout=lambda: 60)
    writer.put({"cw:now": "value"})
    writer.flush()
    assert cache.get("cw:now") == "value"
