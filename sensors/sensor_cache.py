"""Which sensor codes may post readings, remembered in process for a few seconds.

The ingestion API must reject unknown and retired sensors (400), but a
database query per request would cost more than the rest of the request.
Sensor codes and statuses change rarely (field staff register or retire a
station), so each process keeps a snapshot of the whole code -> status
table and reloads it (one query) when it is older than
``INGEST_SENSOR_CACHE_SECONDS`` (default 5 s).

Why a whole-table snapshot rather than per-code entries: with per-code
entries expiring on their own, a fleet of N stations turns into N/TTL
queries per second per process (each one a pool checkout under load; with
1,000 stations 28 % of a worker's time went to waiting for a pooled
connection, docs/benchmarks.md). One query per TTL is the same bound for
any fleet size; 100,000 sensors load in well under 100 ms.

While one thread reloads an expired snapshot the others keep answering
from the old one (stale for at most one reload), so a reload never stalls
the request stream. A code that is not in the snapshot (registered since
the last reload, or a typo) is looked up with one query per request's
misses and remembered, unknown included, until the next reload, so a
device with a typo cannot turn every request into a query.

The bound: a sensor registered, retired or reactivated is seen by every API
process within ``INGEST_SENSOR_CACHE_SECONDS`` plus one reload; saving or
deleting a sensor through the ORM in this process forgets the snapshot at
once (bulk ``update()`` does not fire signals and relies on the bound).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Sensor

logger = logging.getLogger(__name__)

UNKNOWN = ""  # cached status of a code with no sensor
_MAX_EXTRA = 100_000  # codes remembered beyond the snapshot (typos, new sensors) before a reset


class _Snapshot:
    __slots__ = ("statuses", "until", "loaded")

    def __init__(self, statuses: dict[str, str], until: float) -> None:
        self.statuses = statuses
        self.until = until
        self.loaded = len(statuses)


_snapshot: _Snapshot | None = None
_reload_lock = threading.Lock()  # one reloading thread; the others use the stale snapshot
_extra_lock = threading.Lock()


def _load() -> _Snapshot:
    started = time.monotonic()
    statuses = dict(Sensor.objects.values_list("sensor_id", "status"))
    snapshot = _Snapshot(statuses, started + settings.INGEST_SENSOR_CACHE_SECONDS)
    logger.debug("sensor_cache.loaded", extra={"sensors": len(statuses), "ms": round((time.monotonic() - started) * 1000, 1)})
    return snapshot


def _current() -> _Snapshot:
    global _snapshot
    snapshot = _snapshot
    if snapshot is not None and snapshot.until > time.monotonic():
        return snapshot
    if snapshot is None:
        with _reload_lock:  # nothing to serve yet: everyone waits for the first load
            if _snapshot is None or _snapshot.until <= time.monotonic():
                _snapshot = _load()
            return _snapshot
    if not _reload_lock.acquire(blocking=False):
        return snapshot  # another thread is reloading; the old snapshot is at most one reload stale
    try:
        if _snapshot is snapshot:
            _snapshot = _load()
        return _snapshot
    finally:
        _reload_lock.release()


def sensor_statuses(codes: Iterable[str]) -> dict[str, str]:
    """Status of each code (``UNKNOWN`` when not registered); a query only for codes the snapshot lacks."""
    snapshot = _current()
    known = snapshot.statuses
    statuses: dict[str, str] = {}
    missing: list[str] = []
    for code in codes:
        status = known.get(code)
        if status is None:
            if code not in statuses:
                missing.append(code)
                statuses[code] = UNKNOWN
        else:
            statuses[code] = status
    if missing:
        found = dict(Sensor.objects.filter(sensor_id__in=missing).values_list("sensor_id", "status"))
        with _extra_lock:
            if len(known) - snapshot.loaded > _MAX_EXTRA:
                snapshot.until = 0.0  # a flood of distinct unknown codes: the next request reloads afresh
            for code in missing:
                status = found.get(code, UNKNOWN)
                statuses[code] = status
                known[code] = status  # remembered until the next reload
    return statuses


def clear() -> None:
    global _snapshot
    _snapshot = None


@receiver(post_save, sender=Sensor, dispatch_uid="sensor_cache.forget_on_save")
@receiver(post_delete, sender=Sensor, dispatch_uid="sensor_cache.forget_on_delete")
def _forget(sender, **kwargs) -> None:
    clear()
