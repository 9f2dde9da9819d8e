"""Writes for sites, sensors and readings. Views, the consumer and commands all call these."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from datetime import datetime
from operator import itemgetter

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from warning_system.db import (
    PG_EPOCH_US, Float8Array, Int8Array, Overlap, TimestamptzArray, binary_cursor, execute_now, numpy_cursor,
)

from .models import Reading, Sensor
from .records import MEASUREMENTS, ReadingIn, StoredColumns, StoredReading, to_unix_us

logger = logging.getLogger(__name__)

# SQLite (the embedded default): multi-row VALUES, one round trip per chunk;
# 500 rows x 7 columns stays below its parameter limit. PostgreSQL: one
# statement per batch whatever its size, with each column sent as a *binary*
# array (``%b``) and expanded by unnest(): 7 parameters instead of 7 per row,
# no SQL text to build or parse, and no per-element quoting (Django's
# client-side binding renders arrays as text literals, ~4x slower at 5,000 rows).
_CHUNK = 500
_COLUMNS = ("sensor_id", "timestamp", "received_at", *MEASUREMENTS)
_PG_TYPES = ("bigint", "timestamptz", "timestamptz", "float8", "float8", "float8", "float8")


def _aware(ts: datetime | str) -> datetime:
    if isinstance(ts, str):  # SQLite returns text from RETURNING
        ts = datetime.fromisoformat(ts)
    if timezone.is_naive(ts):
        ts = timezone.make_aware(ts, timezone.utc)
    return ts


def readings_store_batch(*, readings: Sequence[ReadingIn], sensor_pks: dict[str, int]) -> list[StoredReading]:
    """Insert readings, skipping any (sensor, timestamp) already stored; return the new ones.

    Idempotent by construction (``ON CONFLICT DO NOTHING`` on the unique
    (sensor, timestamp) index), so a batch re-delivered after a crash stores
    nothing twice, and only genuinely new readings flow on to scoring and
    alerting. Duplicates inside one batch are collapsed to the first.
    Rows go in (sensor, timestamp) order: index-friendly, and concurrent
    writers lock rows in the same order. The result is in the same order.
    Must run inside the caller's transaction. No user string is ever
    interpolated into the SQL.
    """
    if not readings:
        return []
    pk_to_code = {pk: code for code, pk in sensor_pks.items()}
    if connection.vendor == "postgresql":
        return _store_postgresql(readings, sensor_pks, pk_to_code)
    rows: dict[tuple[int, datetime], ReadingIn] = {}
    for r in readings:
        rows.setdefault((sensor_pks[r.sensor_id], r.timestamp), r)
    items = sorted(rows.items())  # keys are unique, so only the (sensor, timestamp) keys are compared
    table = connection.ops.quote_name(Reading._meta.db_table)
    cols = ", ".join(connection.ops.quote_name(c) for c in _COLUMNS)
    returning = ", ".join(connection.ops.quote_name(c) for c in ("id", "sensor_id", "timestamp"))
    with connection.cursor() as cursor:
        placeholder = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
        fetched = []
        for start in range(0, len(items), _CHUNK):
            chunk = items[start : start + _CHUNK]
            params: list = []
            for (sensor_pk, ts), r in chunk:
                params.extend((sensor_pk, ts, r.received_at, r.rainfall, r.soil_moisture, r.ground_movement, r.water_level))
            cursor.execute(
                f"INSERT INTO {table} ({cols}) VALUES {', '.join([placeholder] * len(chunk))} "
                f"ON CONFLICT DO NOTHING RETURNING {returning}",
                params,
            )
            fetched.extend(cursor.fetchall())
    fetched = [(reading_id, sensor_pk, _aware(ts)) for reading_id, sensor_pk, ts in fetched]
    fetched.sort(key=itemgetter(1, 2))  # RETURNING order is not guaranteed; scoring wants (sensor, time) order
    stored: list[StoredReading] = []
    for reading_id, sensor_pk, ts in fetched:
        r = rows[(sensor_pk, ts)]
        stored.append(
            StoredReading(reading_id, sensor_pk, pk_to_code[sensor_pk], ts, r.rainfall, r.soil_moisture, r.ground_movement, r.water_level)
        )
    return stored


def _store_postgresql(readings: Sequence[ReadingIn], sensor_pks: dict[str, int], pk_to_code: dict[int, str]) -> list[StoredReading]:
    """One statement whatever the batch size; PostgreSQL orders, de-duplicates and sorts, not Python.

    The rows go in ordered by (sensor, timestamp, position in the batch), so
    ``ON CONFLICT DO NOTHING`` keeps the first of in-batch duplicates, and
    RETURNING hands back the stored values themselves, so no Python-side
    dictionary, sort or datetime comparison per reading is needed (those
    were ~5 of the stage's ~15 µs CPU per reading).
    """
    table = connection.ops.quote_name(Reading._meta.db_table)
    cols = ", ".join(connection.ops.quote_name(c) for c in _COLUMNS)
    columns = [[sensor_pks[r.sensor_id] for r in readings], [r.timestamp for r in readings], [r.received_at for r in readings]]
    # float() so an int from a hand-built ReadingIn cannot make psycopg pick an integer array.
    for name in MEASUREMENTS:
        columns.append([None if (v := getattr(r, name)) is None else float(v) for r in readings])
    unnest = ", ".join(f"%b::{t}[]" for t in _PG_TYPES)
    names = ", ".join(f"c{i}" for i in range(len(_COLUMNS)))
    returning = ", ".join(connection.ops.quote_name(c) for c in ("id", "sensor_id", "timestamp", *MEASUREMENTS))
    with connection.wrap_database_errors, binary_cursor() as cursor:
        cursor.execute(
            f"WITH new AS (INSERT INTO {table} ({cols}) "
            f"SELECT {names} FROM unnest({unnest}) WITH ORDINALITY AS u({names}, position) ORDER BY c0, c1, position "
            f"ON CONFLICT DO NOTHING RETURNING {returning}) "
            "SELECT * FROM new ORDER BY sensor_id, timestamp",
            columns,
            binary=True,
        )
        fetched = cursor.fetchall()
    return [StoredReading(row[0], row[1], pk_to_code[row[1]], *row[2:]) for row in fetched]


def readings_insert_new(*, stored: StoredColumns, received_us: np.ndarray, overlap: Overlap) -> Future:
    """Insert readings known to be new (``predictions.services.expected_new_readings``); the Future's result is the count inserted.

    The consumer's overlapped pipeline sends this while Python scores the
    same readings. They come de-duplicated and in (sensor, timestamp) order,
    every column a numpy-built binary array (NaN becomes NULL), so neither
    Python nor PostgreSQL sorts, and nothing is returned. ``ON CONFLICT DO
    NOTHING`` keeps it idempotent all the same: a count lower than
    ``len(stored)`` says the guess was wrong (some were stored already), and
    the caller rolls back. PostgreSQL only.
    """
    table = connection.ops.quote_name(Reading._meta.db_table)
    cols = ", ".join(connection.ops.quote_name(c) for c in _COLUMNS)
    names = [f"c{i}" for i in range(len(_COLUMNS))]
    select = ", ".join(names[:3] + [f"nullif({c}, 'NaN'::float8)" for c in names[3:]])
    sql = (
        f"INSERT INTO {table} ({cols}) SELECT {select} "
        f"FROM unnest(%b, %b, %b, %b, %b, %b, %b) AS u({', '.join(names)}) ON CONFLICT DO NOTHING"
    )
    params = [
        Int8Array(stored.sensor_pks), TimestamptzArray(stored.us - PG_EPOCH_US), TimestamptzArray(received_us - PG_EPOCH_US),
        *(Float8Array(column) for column in stored.values),
    ]
    with connection.wrap_database_errors:
        cursor = numpy_cursor()
    return overlap.submit(cursor, sql, params)


def sensors_touch_last_seen(*, stored: Iterable[StoredReading], overlap: Overlap | None = None) -> None:
    """Move ``last_seen_at`` forward (never back: late readings must not make a sensor look stale).

    With an ``overlap`` (the consumer's overlapped pipeline, PostgreSQL) the
    update goes through it: nothing waits for it.
    """
    if isinstance(stored, StoredColumns):
        # (sensor, timestamp) order: each sensor's last row is its newest.
        last = np.flatnonzero(np.r_[stored.sensor_pks[1:] != stored.sensor_pks[:-1], True]) if len(stored) else []
        pks, us = stored.sensor_pks[last], stored.us[last]
    else:
        latest: dict[int, datetime] = {}
        for r in stored:
            if r.sensor_pk not in latest or r.timestamp > latest[r.sensor_pk]:
                latest[r.sensor_pk] = r.timestamp
        ordered = sorted(latest.items())
        if connection.vendor != "postgresql":
            for sensor_pk, ts in ordered:
                Sensor.objects.filter(pk=sensor_pk).exclude(last_seen_at__gte=ts).update(last_seen_at=ts)
            return
        pks = np.array([pk for pk, _ in ordered], dtype=np.int64)
        us = np.array([to_unix_us(ts) for _, ts in ordered], dtype=np.int64)
    if not len(pks):
        return
    table = connection.ops.quote_name(Sensor._meta.db_table)
    sql = (
        f"UPDATE {table} AS s SET last_seen_at = v.ts FROM unnest(%b, %b) AS v(pk, ts) "
        "WHERE s.id = v.pk AND (s.last_seen_at IS NULL OR s.last_seen_at < v.ts)"
    )
    params = [Int8Array(pks), TimestamptzArray(us - PG_EPOCH_US)]
    with connection.wrap_database_errors:
        cursor = numpy_cursor()
    if overlap is not None:
        overlap.submit(cursor, sql, params)
    else:
        Overlap.result(execute_now(cursor, sql, params))


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


@transaction.atomic
def sensors_delete(*, sensor_ids: Iterable[int]) -> int:
    """Delete sensors with their readings, predictions and alerts; returns how many sensors went.

    Readings and predictions have no database foreign key (see
    ``sensors.models.Reading.sensor``), so the order matters: the sensor rows
    are locked FOR UPDATE first, which waits for any batch that has looked
    them up (``sensors.pipeline.batch_sensors_lock`` holds FOR KEY SHARE until it
    commits); the cascade that follows then sees that batch's readings, and
    later batches no longer find the sensors. Without the lock a batch
    committing between the cascade and the sensor's own DELETE would leave
    readings of a sensor that no longer exists.
    """
    pks = list(Sensor.objects.filter(pk__in=list(sensor_ids)).select_for_update().values_list("pk", flat=True))
    if not pks:
        return 0
    Sensor.objects.filter(pk__in=pks).delete()
    logger.info("sensors.deleted", extra={"count": len(pks)})
    return len(pks)
