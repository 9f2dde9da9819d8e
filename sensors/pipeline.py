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
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import connection, transaction

from alerts.services import alerts_evaluate_batch
from predictions.services import predictions_score_stored
from predictions.windows import SensorWindows

from .models import Sensor
from .records import ReadingIn, StoredReading
from .services import readings_store_batch, sensors_touch_last_seen

logger = logging.getLogger(__name__)


class UnknownSensors(ValueError):
    """Readings name sensors that are not registered; the caller decides (400 or DLQ)."""

    def __init__(self, sensor_ids: Sequence[str]):
        self.sensor_ids = sorted(set(sensor_ids))
        super().__init__(f"unknown sensors: {', '.join(self.sensor_ids)}")


@dataclass
class PipelineResult:
    received: int
    stored: list[StoredReading] = field(default_factory=list)
    predictions: int = 0
    alert_changes: int = 0

    @property
    def duplicates(self) -> int:
        return self.received - len(self.stored)


def sensor_pks_for(sensor_ids: set[str]) -> dict[str, int]:
    """The sensors' primary keys by code, their rows locked FOR KEY SHARE until the transaction ends.

    The lock stands in for a foreign key (readings and predictions have none,
    see ``sensors.models.Reading.sensor``): ``sensors_delete`` must wait for
    this batch to commit and then deletes its readings too, and a sensor
    deleted first is simply not found (its readings go to the DLQ or get a
    400). KEY SHARE conflicts only with deletes and key changes, not with the
    ``last_seen_at`` updates of concurrent batches. Outside a transaction the
    lock ends with the statement. Other databases (SQLite) serialise writers anyway.
    """
    if connection.vendor != "postgresql":
        return dict(Sensor.objects.filter(sensor_id__in=sensor_ids).values_list("sensor_id", "pk"))
    table, pk, code = (connection.ops.quote_name(n) for n in (Sensor._meta.db_table, Sensor._meta.pk.column, "sensor_id"))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {code}, {pk} FROM {table} WHERE {code} = ANY(%s) FOR KEY SHARE", [list(sensor_ids)])
        return dict(cursor.fetchall())


def process_readings(*, readings: Sequence[ReadingIn], windows: SensorWindows | None = None) -> PipelineResult:
    """Store, score and alert on one batch of validated readings, atomically and idempotently.

    ``windows``: the consumer's per-sensor history (``predictions.windows``);
    the caller must clear it when this raises, since the rolled-back readings
    may already be in it. The API's eager mode passes none: several web
    processes write the same sensors, so only the database is complete.
    """
    result = PipelineResult(received=len(readings))
    if not readings:
        return result
    with transaction.atomic():
        sensor_pks = sensor_pks_for({r.sensor_id for r in readings})
        unknown = [r.sensor_id for r in readings if r.sensor_id not in sensor_pks]
        if unknown:
            raise UnknownSensors(unknown)
        result.stored = readings_store_batch(readings=readings, sensor_pks=sensor_pks)
        if result.stored:
            sensors_touch_last_seen(stored=result.stored)
            scored = predictions_score_stored(stored=result.stored, windows=windows)
            result.predictions = len(scored)
            result.alert_changes = alerts_evaluate_batch(batch=scored)
    logger.debug(
        "pipeline.batch_processed",
        extra={"received": result.received, "stored": len(result.stored), "alert_changes": result.alert_changes},
    )
    return result
