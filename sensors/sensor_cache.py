"""Which sensor codes may post readings, remembered in process for a few seconds.

The ingestion API must reject unknown and retired sensors (400), but a
database query per request would cost more than the rest of the request.
Sensor codes and statuses change rarely (field staff register or retire a
station), so each process remembers code -> status for
``INGEST_SENSOR_CACHE_SECONDS`` (default 5 s), unknown codes included (so a
device with a typo cannot turn every request into a query). That is the
bound: a sensor registered, retired or reactivated is seen by every API
process within that many seconds; saving or deleting a sensor through the
ORM in this process forgets the cache at once (bulk ``update()`` does not
fire signals and relies on the bound). Misses of one request are
resolved with a single query.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Sensor

UNKNOWN = ""  # cached status of a code with no sensor
_MAX_ENTRIES = 100_000

_entries: dict[str, tuple[float, str]] = {}
_lock = threading.Lock()


def sensor_statuses(codes: Iterable[str]) -> dict[str, str]:
    """Status of each code (``UNKNOWN`` when not registered), at most one query for the misses."""
    now = time.monotonic()
    statuses: dict[str, str] = {}
    missing: list[str] = []
    for code in codes:
        if code in statuses:
            continue
        entry = _entries.get(code)
        if entry is not None and entry[0] > now:
            statuses[code] = entry[1]
        else:
            missing.append(code)
    if missing:
        found = dict(Sensor.objects.filter(sensor_id__in=missing).values_list("sensor_id", "status"))
        until = now + settings.INGEST_SENSOR_CACHE_SECONDS
        with _lock:
            if len(_entries) > _MAX_ENTRIES:
                _entries.clear()
            for code in missing:
                status = found.get(code, UNKNOWN)
                statuses[code] = status
                _entries[code] = (until, status)
    return statuses


def clear() -> None:
    with _lock:
        _entries.clear()


@receiver(post_save, sender=Sensor, dispatch_uid="sensor_cache.forget_on_save")
@receiver(post_delete, sender=Sensor, dispatch_uid="sensor_cache.forget_on_delete")
def _forget(sender, **kwargs) -> None:
    # Clear everything, not just this code: the code itself may have been renamed.
    clear()
