"""The one processing function for readings: store, score, alert.

The Kafka consumer calls it once per batch; in eager mode (no broker) the
ingestion API calls it in-process. Everything a batch changes commits in a
single transaction, and every write is idempotent (readings and predictions
are unique per (sensor, timestamp); only readings this call inserted for
the first time are scored and alerted on). So a batch that is re-delivered
after a crash — before or after the commit — changes nothing twice.
Alert events are written to an outbox in the same transaction and published
after it commits.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from django.db import connection, transaction

from alerts.services import alerts_evaluate_batch, alerts_load_batch
from predictions.services import expected_new_readings, predictions_score_stored
from predictions.windows import SensorWindows
from warning_system.db import Overlap

from .models import Sensor
from .records import ReadingIn, StoredReading, to_unix_us
from .services import readings_insert_new, readings_store_batch, sensors_touch_last_seen

logger = logging.getLogger(__name__)


class UnknownSensors(ValueError):
    """Readings name sensors that are not registered; the caller decides (400 or DLQ)."""

    def __init__(self, sensor_ids: Sequence[str]):
        self.sensor_ids = sorted(set(sensor_ids))
        super().__init__(f"unknown sensors: {', '.join(self.sensor_ids)}")


@dataclass
class PipelineResult:
    received: int
    stored: Sequence[StoredReading] = field(default_factory=list)  # StoredColumns on the overlapped path
    predictions: int = 0
    alert_changes: int = 0

    @property
    def duplicates(self) -> int:
        return self.received - len(self.stored)


@dataclass(frozen=True, slots=True)
class BatchSensors:
    """A batch's registered sensors, looked up (and locked) once for every stage."""

    pks: dict[str, int]  # by sensor code
    flood_stages: dict[int, float]  # by pk, NaN = unknown (scoring's flood features)


def batch_sensors_lock(sensor_ids: set[str]) -> BatchSensors:
    """The sensors' primary keys and flood stages, their rows locked FOR KEY SHARE until the transaction ends.

    The lock stands in for a foreign key (readings and predictions have none,
    see ``sensors.models.Reading.sensor``): ``sensors_delete`` must wait for
    this batch to commit and then deletes its readings too, and a sensor
    deleted first is simply not found (its readings go to the DLQ or get a
    400). KEY SHARE conflicts only with deletes and key changes, not with the
    ``last_seen_at`` updates of concurrent batches. Outside a transaction the
    lock ends with the statement. Other databases (SQLite) serialise writers anyway.
    The flood stages are read here, in the same query, because an admin may
    change them at any time, and scoring must not wait for the connection
    while the readings' insert holds it (``_process_overlapped``).
    """
    if connection.vendor != "postgresql":
        rows = Sensor.objects.filter(sensor_id__in=sensor_ids).values_list("sensor_id", "pk", "flood_stage_m")
    else:
        table, pk, code, stage = (
            connection.ops.quote_name(n) for n in (Sensor._meta.db_table, Sensor._meta.pk.column, "sensor_id", "flood_stage_m")
        )
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {code}, {pk}, {stage} FROM {table} WHERE {code} = ANY(%s) FOR KEY SHARE", [list(sensor_ids)])
            rows = cursor.fetchall()
    return BatchSensors(
        pks={code: pk for code, pk, _ in rows},
        flood_stages={pk: math.nan if stage is None else stage for _, pk, stage in rows},
    )


# How long the windows the overlapped path guesses with must stay valid:
# far longer than a batch takes, so scoring finds the very same windows.
_GUESS_VALID_SECONDS = 60.0


class _GuessMissed(Exception):
    """The windows' guess of the new readings was wrong: roll the batch back and take the plain path."""

    def __init__(self, sensor_pks):
        self.sensor_pks = list(sensor_pks)
        super().__init__("the windows' guess of the new readings was wrong")


def process_readings(*, readings: Sequence[ReadingIn], windows: SensorWindows | None = None) -> PipelineResult:
    """Store, score and alert on one batch of validated readings, atomically and idempotently.

    ``windows``: the consumer's per-sensor history (``predictions.windows``);
    the caller must clear it when this raises, since the rolled-back readings
    may already be in it. The API's eager mode passes none: several web
    processes write the same sensors, so only the database is complete.
    With windows on PostgreSQL the batch takes the overlapped path
    (``_process_overlapped``), which writes the same rows.
    """
    result = PipelineResult(received=len(readings))
    if not readings:
        return result
    if windows is not None and connection.vendor == "postgresql":
        try:
            with transaction.atomic():
                _process_overlapped(readings, windows, result)
        except _GuessMissed as missed:
            # Rolled back; the windows of these sensors were wrong (and hold the guess).
            for pk in missed.sensor_pks:
                windows.forget(pk)
            logger.info("pipeline.guess_missed", extra={"readings": len(readings), "sensors": len(missed.sensor_pks)})
            result = PipelineResult(received=len(readings))
            with transaction.atomic():
                _process_plain(readings, _lock_known(readings), windows, result)
    else:
        with transaction.atomic():
            _process_plain(readings, _lock_known(readings), windows, result)
    logger.debug(
        "pipeline.batch_processed",
        extra={"received": result.received, "stored": len(result.stored), "alert_changes": result.alert_changes},
    )
    return result


def _lock_known(readings: Sequence[ReadingIn]) -> BatchSensors:
    sensors = batch_sensors_lock({r.sensor_id for r in readings})
    unknown = [r.sensor_id for r in readings if r.sensor_id not in sensors.pks]
    if unknown:
        raise UnknownSensors(unknown)
    return sensors


def _process_plain(readings: Sequence[ReadingIn], sensors: BatchSensors, windows: SensorWindows | None, result: PipelineResult) -> None:
    """Store, then score what was stored, then alert: each stage waits for the one before."""
    result.stored = readings_store_batch(readings=readings, sensor_pks=sensors.pks)
    if result.stored:
        sensors_touch_last_seen(stored=result.stored)
        scored = predictions_score_stored(stored=result.stored, windows=windows, flood_stages=sensors.flood_stages)
        result.predictions = len(scored)
        result.alert_changes = alerts_evaluate_batch(batch=scored)


def _process_overlapped(readings: Sequence[ReadingIn], windows: SensorWindows, result: PipelineResult) -> None:
    """The consumer's path: the plain path's writes, with PostgreSQL and Python working at the same time.

    Why: run one after the other, the stages left one of the 2 cores idle
    much of the time (PostgreSQL inserting while Python waited, then Python
    scoring while PostgreSQL waited). The windows know every stored reading
    of their sensors, so they tell which readings are new before the insert
    (``expected_new_readings``). Those are inserted while Python scores them,
    and the predictions' upsert runs while Python applies the alert rules
    (``warning_system.db.Overlap``); the alert state is loaded and locked
    before all that, so the rules need no query. The insert's row count
    checks the guess: all of them inserted, or the guess was wrong
    (readings written behind the consumer's back), and ``_GuessMissed``
    rolls the batch back to be redone on the plain path. Sensors without a complete window (a
    restart, a rebalance) take the plain path in this transaction, which
    loads their windows.
    """
    sensors = _lock_known(readings)
    guess = expected_new_readings(readings=readings, sensor_pks=sensors.pks, windows=windows, valid_for=_GUESS_VALID_SECONDS)
    if guess is None:
        _process_plain(readings, sensors, windows, result)
        return
    stored, positions = guess
    if not len(stored):
        return  # all of them stored before (a re-delivery)
    received_us = np.fromiter((to_unix_us(readings[k].received_at) for k in positions.tolist()), np.int64, len(positions))
    # Alert state first (two short queries), so nothing needs the connection
    # while the predictions' upsert runs.
    loaded = alerts_load_batch(sensor_pks=np.unique(stored.sensor_pks).tolist())
    with Overlap() as overlap:
        inserted = readings_insert_new(stored=stored, received_us=received_us, overlap=overlap)
        # The predictions are upserted group by group as they are scored, behind the insert.
        scored = predictions_score_stored(stored=stored, windows=windows, flood_stages=sensors.flood_stages, overlap=overlap)
        if Overlap.result(inserted) != len(stored):
            raise _GuessMissed(sensors.pks.values())
        result.stored = stored
        result.predictions = len(scored)
        sensors_touch_last_seen(stored=stored, overlap=overlap)
        result.alert_changes = alerts_evaluate_batch(batch=scored, loaded=loaded)
