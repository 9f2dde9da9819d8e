"""Reads of sensors, their readings and predictions, for the read API and the pages.

Readings and predictions are the big tables (tens of millions of rows). Every
query here filters on one sensor and orders by timestamp descending with a
LIMIT, so PostgreSQL walks the unique (sensor, timestamp DESC) index and
stops after ``limit`` rows: no sort, no COUNT(*), whatever the table size.
Rows are plain dicts from ``.values()``: building model instances would cost
more than the query.
"""
from __future__ import annotations

from datetime import datetime

from django.db.models import Max, QuerySet
from django.db.models.functions import TruncMinute

from predictions.models import Prediction

from .models import Reading, Sensor
from .records import MEASUREMENTS

READING_FIELDS = ("timestamp", "received_at", *MEASUREMENTS)
PREDICTION_FIELDS = (
    "timestamp", "landslide_probability", "flood_probability", "landslide_risk", "flood_risk",
    "landslide_model_version", "flood_model_version",
)
READINGS_MAX_LIMIT = 5000


def sensor_list(*, allowed_sensor_ids: frozenset[str] | None = None) -> QuerySet[Sensor]:
    """All sensors, or only those a device key is restricted to (None: no restriction)."""
    qs = Sensor.objects.select_related("site").order_by("sensor_id")
    if allowed_sensor_ids is not None:
        qs = qs.filter(sensor_id__in=allowed_sensor_ids)
    return qs


def sensor_get(*, sensor_id: str) -> Sensor:
    """One sensor by its code; raises Sensor.DoesNotExist."""
    return Sensor.objects.select_related("site").get(sensor_id=sensor_id)


def _window(qs: QuerySet, since: datetime | None, until: datetime | None) -> QuerySet:
    if since is not None:
        qs = qs.filter(timestamp__gte=since)
    if until is not None:
        qs = qs.filter(timestamp__lte=until)
    return qs


def sensor_readings(*, sensor: Sensor, since: datetime | None = None, until: datetime | None = None, limit: int = 100) -> list[dict]:
    """The sensor's readings in [since, until], newest first, at most ``limit``."""
    limit = max(1, min(limit, READINGS_MAX_LIMIT))
    qs = _window(Reading.objects.filter(sensor=sensor), since, until)
    return list(qs.order_by("-timestamp").values(*READING_FIELDS)[:limit])


def sensor_predictions(*, sensor: Sensor, since: datetime | None = None, until: datetime | None = None, limit: int = 100) -> list[dict]:
    """The sensor's predictions in [since, until], newest first, at most ``limit``."""
    limit = max(1, min(limit, READINGS_MAX_LIMIT))
    qs = _window(Prediction.objects.filter(sensor=sensor), since, until)
    return list(qs.order_by("-timestamp").values(*PREDICTION_FIELDS)[:limit])


def sensor_reading_series(*, sensor: Sensor, since: datetime, until: datetime) -> list[dict]:
    """Readings in the window for charts, oldest first, one row per minute (the maxima).

    Stations may report every few seconds; a chart of 72 h needs at most a
    few thousand points, and the per-minute maximum keeps every peak.
    """
    qs = _window(Reading.objects.filter(sensor=sensor), since, until)
    return list(
        qs.annotate(minute=TruncMinute("timestamp")).values("minute")
        .annotate(**{name: Max(name) for name in MEASUREMENTS}).order_by("minute")
    )


def sensor_prediction_series(*, sensor: Sensor, since: datetime, until: datetime) -> list[dict]:
    """Predicted probabilities in the window for charts, oldest first, per-minute maxima."""
    qs = _window(Prediction.objects.filter(sensor=sensor), since, until)
    return list(
        qs.annotate(minute=TruncMinute("timestamp")).values("minute")
        .annotate(landslide=Max("landslide_probability"), flood=Max("flood_probability")).order_by("minute")
    )
