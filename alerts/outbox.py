"""Publishing alert events from the transactional outbox to the ``alerts`` topic.

Alert changes and their ``AlertEvent`` rows commit in one transaction; this
module sends the committed, unpublished events afterwards and marks them
``published_at`` only once the broker acknowledged them. So an event is
never lost when a process dies between commit and publish — but it can be
sent twice (acknowledged by the broker, then the process died before
marking it). The ``alerts`` topic is therefore **at-least-once**:
subscribers de-duplicate on ``event_id`` (the AlertEvent primary key).

Message key: the sensor code (one sensor's events stay in order on one
partition). Value, schema version 1::

    {"v": 1, "event_id", "event", "alert_id", "sensor_id", "site", "hazard",
     "level", "status", "probability", "triggered_at", "last_triggered_at",
     "at", "actor", "note", "source", "message"}

Two publishers (several consumers, an API process) never send the same row
concurrently: rows are claimed with ``SELECT ... FOR UPDATE SKIP LOCKED``
for the duration of the send.
"""
from __future__ import annotations

import logging
import threading

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from warning_system.db import fetch_rows, joined_select

from .models import AlertEvent

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_producer = None
_producer_servers: str | None = None
_producer_lock = threading.Lock()


class OutboxPublishError(RuntimeError):
    """Some claimed events were not acknowledged by the broker; they stay unpublished for the next sweep."""


# What an event message needs, as (message key, query field), read in one query
# as plain values (no model instances: a storm publishes thousands of events per sweep).
_EVENT_COLUMNS = (
    ("event_id", "id"), ("event", "kind"), ("alert_id", "alert_id"), ("sensor_id", "alert__sensor__sensor_id"),
    ("site", "alert__sensor__site__name"), ("hazard", "alert__hazard"), ("level", "level"), ("status", "status"),
    ("probability", "probability"), ("triggered_at", "alert__triggered_at"),
    ("last_triggered_at", "alert__last_triggered_at"), ("at", "at"), ("actor", "actor"), ("note", "note"),
    ("source", "alert__source"), ("message", "alert__message"),
)
_EVENT_KEYS = tuple(key for key, _ in _EVENT_COLUMNS)
_EVENT_FIELDS = tuple(field for _, field in _EVENT_COLUMNS)
_SENSOR_ID = _EVENT_KEYS.index("sensor_id")


def _events_sql() -> str:
    """The events of an id array (``%s``, a list), in id order: one statement built from the models' metadata.

    Fetched in binary by psycopg's C loaders (``warning_system.db.fetch_rows``):
    the ORM's ``values()`` parsed each event's three timestamps in Django's
    pure-Python loader, ~30 µs of the ~45 µs of CPU an event cost to publish
    (bench/bench_consumer.py --profile on storm data).
    """
    columns, table, joins = joined_select(
        AlertEvent, _EVENT_FIELDS, {(): "e", ("alert",): "a", ("alert", "sensor"): "s", ("alert", "sensor", "site"): "st"},
    )
    pk = connection.ops.quote_name(AlertEvent._meta.pk.column)
    return f"SELECT {columns} FROM {table} {joins} WHERE e.{pk} = ANY(%s) ORDER BY e.{pk}"


_EVENTS_SQL = _events_sql()


def _event_rows(ids: list[int]) -> list[tuple]:
    if connection.vendor != "postgresql":  # the embedded SQLite default: the ORM's own loaders
        return list(AlertEvent.objects.filter(pk__in=ids).order_by("id").values_list(*_EVENT_FIELDS))
    return fetch_rows(_EVENTS_SQL, [ids])


def encode_event(row: tuple) -> tuple[bytes, bytes]:
    """(key, value) of one event, from a row of ``_EVENT_FIELDS`` values.

    Datetimes are rendered by orjson, the same text as ``isoformat()``
    (tests/alerts/test_outbox.py compares the message with the models' values).
    """
    value = {"v": SCHEMA_VERSION}
    value.update(zip(_EVENT_KEYS, row))
    return row[_SENSOR_ID].encode(), orjson.dumps(value)


def _claim_pending_ids(limit: int) -> list[int]:
    """Lock and return the oldest ``limit`` unpublished event ids (inside the caller's transaction).

    On PostgreSQL the claim must walk the partial index ``alertevent_pending_idx``
    as an ordered index scan, not as a bitmap scan. Marking an event published
    moves it out of the index's predicate, but its old index entry stays until
    VACUUM. An index scan marks such entries dead (LP_DEAD) the first time it
    meets them, and later scans skip them without a heap visit. A bitmap scan
    never does, so each sweep re-reads the heap page of every event published
    since the last VACUUM. After a storm (1.2 M events published between two
    vacuums) that cost 174 ms per sweep against 10 ms for the index scan
    (docs/benchmarks.md, 2026-12-07 14:05). The planner picks the bitmap scan
    because it expects few pending rows, so bitmap scans are switched off for
    this one statement and the previous setting is put back.
    """
    claim = (
        AlertEvent.objects.filter(published_at__isnull=True, kind__in=AlertEvent.PUBLISHED_KINDS)
        .select_for_update(skip_locked=True)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    if connection.vendor != "postgresql":
        return list(claim)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('enable_bitmapscan'), set_config('enable_bitmapscan', 'off', true)")
        previous = cursor.fetchone()[0]
        ids = list(claim)
        # On an error the transaction (or savepoint) rolls back, which undoes the SET LOCAL as well.
        cursor.execute("SELECT set_config('enable_bitmapscan', %s, true)", [previous])
    return ids


def publish_pending(*, producer, limit: int = 1000) -> int:
    """Send up to ``limit`` unpublished events, oldest first; returns how many the broker acknowledged.

    Acknowledged events are marked even when others failed; the failed ones
    stay unpublished and ``OutboxPublishError`` is raised so the caller logs
    and retries on its next sweep.
    """
    topic = settings.KAFKA_ALERTS_TOPIC
    with transaction.atomic():
        # Claim the oldest pending ids first (the partial index alertevent_pending_idx, in id
        # order, LIMIT applied to it), then read their fields. One query joining alert, sensor
        # and site before the LIMIT made PostgreSQL join and sort every pending event: 2.3 s per
        # sweep with 500,000 pending after a storm (bench 7's alert latency rose to 2.2 s).
        ids = _claim_pending_ids(limit)
        if not ids:
            return 0
        events = _event_rows(ids)
        delivered: list[int] = []
        failures: list[str] = []

        def on_delivery(err, msg, event_id):
            if err is None:
                delivered.append(event_id)
            else:
                failures.append(str(err))

        for event in events:
            key, value = encode_event(event)
            producer.produce(topic, key=key, value=value, on_delivery=lambda err, msg, eid=event[0]: on_delivery(err, msg, eid))
        producer.flush(settings.KAFKA_PRODUCE_TIMEOUT_SECONDS)
        if delivered:
            AlertEvent.objects.filter(pk__in=delivered).update(published_at=timezone.now())
    logger.info("outbox.published", extra={"published": len(delivered), "failed": len(events) - len(delivered), "topic": topic})
    if len(delivered) < len(events):
        raise OutboxPublishError(
            f"{len(events) - len(delivered)} of {len(events)} alert events not acknowledged: {'; '.join(failures[:3]) or 'timed out'}"
        )
    return len(delivered)


def _shared_producer():
    """One producer per process (they are thread-safe and expensive to create), rebuilt if the broker setting changes."""
    global _producer, _producer_servers
    from confluent_kafka import Producer

    from warning_system.kafka import producer_config

    with _producer_lock:
        if _producer is None or _producer_servers != settings.KAFKA_BOOTSTRAP_SERVERS:
            _producer = Producer(producer_config())
            _producer_servers = settings.KAFKA_BOOTSTRAP_SERVERS
        return _producer


def publish_pending_now() -> int:
    """Publish right away, e.g. from ``transaction.on_commit`` after an acknowledge or resolve.

    Never raises: the change itself is committed, and anything not sent now
    stays in the outbox for the consumer's periodic sweep. Does nothing in
    eager mode (no broker).
    """
    if settings.PIPELINE_EAGER or not settings.KAFKA_BOOTSTRAP_SERVERS:
        return 0
    global _producer
    try:
        return publish_pending(producer=_shared_producer())
    except Exception:
        logger.warning("outbox.publish_failed", exc_info=True)
        # An idempotent producer can be left in a fatal state (e.g. the broker lost
        # its producer id on restart); the next call starts from a fresh one.
        with _producer_lock:
            _producer = None
        return 0
