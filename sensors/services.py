"""Writes for sites, sensors and readings. Views, the consumer and commands all call these."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from .models import Reading, Sensor
from .records import MEASUREMENTS, ReadingIn, StoredReading

logger = logging.getLogger(__name__)

# Multi-row VALUES keeps one round trip per chunk and works on PostgreSQL and
# SQLite alike; 500 rows x 8 columns stays far below both parameter limits.
_CHUNK = 500
_COLUMNS = ("sensor_id", "timestamp", "received_at", *MEASUREMENTS)


def readings_store_batch(*, readings: Sequence[ReadingIn], sensor_pks: dict[str, int]) -> list[StoredReading]:
    """Insert readings, skipping any (sensor, timestamp) already stored; return the new ones.

    Idempotent by construction (``ON CONFLICT DO NOTHING`` on the unique
    (sensor, timestamp) index), so a batch re-delivered after a crash stores
    nothing twice, and only genuinely new readings flow on to scoring and
    alerting. Duplicates inside one batch are collapsed to the first.
    Must run inside the caller's transaction. No user string is ever
    interpolated into the SQL: only placeholders.
    """
    rows: dict[tuple[int, datetime], ReadingIn] = {}
    for r in readings:
        rows.setdefault((sensor_pks[r.sensor_id], r.timestamp), r)
    if not rows:
        return []
    table = Reading._meta.db_table
    cols = ", ".join(connection.ops.quote_name(c) for c in _COLUMNS)
    returning = ", ".join(connection.ops.quote_name(c) for c in ("id", "sensor_id", "timestamp", *MEASUREMENTS))
    placeholder = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    items = list(rows.items())
    stored: list[StoredReading] = []
    pk_to_code = {pk: code for code, pk in sensor_pks.items()}
    with connection.cursor() as cursor:
        for start in range(0, len(items), _CHUNK):
            chunk = items[start : start + _CHUNK]
            params: list = []
            for (sensor_pk, ts), r in chunk:
                params.extend((sensor_pk, ts, r.received_at, r.rainfall, r.soil_moisture, r.ground_movement, r.water_level))
            sql = (
                f"INSERT INTO {table} ({cols}) VALUES {', '.join([placeholder] * len(chunk))} "
                f"ON CONFLICT DO NOTHING RETURNING {returning}"
            )
            cursor.execute(sql, params)
            for row in cursor.fetchall():
                ts = row[2]
                if isinstance(ts, str):  # SQLite returns text from RETURNING
                    ts = datetime.fromisoformat(ts)
                if timezone.is_naive(ts):
                    ts = timezone.make_aware(ts, timezone.utc)
                stored.append(StoredReading(row[0], row[1], pk_to_code[row[1]], ts, *row[3:]))
    return stored


def sensors_touch_last_seen(*, stored: Iterable[StoredReading]) -> None:
    """Move ``last_seen_at`` forward (never back: late readings must not make a sensor look stale)."""
    latest: dict[int, datetime] = {}
    for r in stored:
        if r.sensor_pk not in latest or r.timestamp > latest[r.sensor_pk]:
            latest[r.sensor_pk] = r.timestamp
    for sensor_pk, ts in sorted(latest.items()):
        Sensor.objects.filter(pk=sensor_pk).exclude(last_seen_at__gte=ts).update(last_seen_at=ts)


@transaction.atomic
def sensors_set_status(*, sensor_ids: Iterable[int], status: str, maintenance_until: datetime | None = None) -> int:
    """Bulk status change used by the admin actions and the API; returns rows changed."""
    if status not in Sensor.Status.values:
        raise ValueError(f"unknown status {status!r}")
    updates = {"status": status, "updated_at": timezone.now()}
    updates["maintenance_until"] = maintenance_until if status == Sensor.Status.MAINTENANCE else None
    changed = Sensor.objects.filter(pk__in=list(sensor_ids)).update(**updates)
    logger.info("sensors.status_changed", extra={"status": status, "count": changed})
    return changed
