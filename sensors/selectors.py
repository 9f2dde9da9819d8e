"""Reads of sensors, their readings and predictions, for the read API and the pages.

Readings and predictions are the big tables (tens of millions of rows). Every
query here filters on one sensor and orders by timestamp descending with a
LIMIT, so PostgreSQL walks the unique (sensor, timestamp DESC) index and
stops after ``limit`` rows: no sort, no COUNT(*), whatever the table size.

The window pages (``sensor_readings``, ``sensor_predictions``) are the API's
heaviest reads (500 rows per call and more), so on PostgreSQL they are one
precomposed statement that finds the sensor by its code in a sub-select and
is fetched in binary by psycopg's C loaders (``warning_system.db.fetch_rows``):
no ORM compilation, no model instances, no sensor lookup round trip. Rows are
plain dicts, as ``.values()`` gives them; other databases (the embedded SQLite
default) take the ORM path with the same result.
"""
from __future__ import annotations

from datetime import datetime

from django.db import connection
from django.db.models import Max, Model, QuerySet
from django.db.models.functions import TruncMinute

from predictions.models import Prediction
from warning_system.db import fetch_rows

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


def sensor_exists(*, sensor_id: str) -> bool:
    return Sensor.objects.filter(sensor_id=sensor_id).exists()


def _window(qs: QuerySet, since: datetime | None, until: datetime | None) -> QuerySet:
    if since is not None:
        qs = qs.filter(timestamp__gte=since)
    if until is not None:
        qs = qs.filter(timestamp__lte=until)
    return qs


def _window_sql(model: type[Model], fields: tuple[str, ...]) -> dict[tuple[bool, bool], str]:
    """The statement for each (since given, until given), built once from the model's metadata."""
    quote = connection.ops.quote_name
    meta = model._meta
    columns = ", ".join(quote(meta.get_field(name).column) for name in fields)
    ts = quote(meta.get_field("timestamp").column)
    head = (
        f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {quote(meta.get_field('sensor').column)} = "
        f"(SELECT {quote(Sensor._meta.pk.column)} FROM {quote(Sensor._meta.db_table)} WHERE {quote(Sensor._meta.get_field('sensor_id').column)} = %s)"
    )
    return {
        (since, until): head + (f" AND {ts} >= %s" if since else "") + (f" AND {ts} <= %s" if until else "")
        + f" ORDER BY {ts} DESC LIMIT %s"
        for since in (False, True) for until in (False, True)
    }


# The statements of the window pages, by model and (since given, until given); their plans are tested.
WINDOW_SQL = {Reading: _window_sql(Reading, READING_FIELDS), Prediction: _window_sql(Prediction, PREDICTION_FIELDS)}


def _window_rows(model: type[Model], fields: tuple[str, ...], sensor_id: str, since: datetime | None, until: datetime | None, limit: int) -> list[dict]:
    limit = max(1, min(limit, READINGS_MAX_LIMIT))
    if connection.vendor != "postgresql":
        qs = _window(model.objects.filter(sensor__sensor_id=sensor_id), since, until)
        return list(qs.order_by("-timestamp").values(*fields)[:limit])
    params = [sensor_id, *(v for v in (since, until) if v is not None), limit]
    return [dict(zip(fields, row)) for row in fetch_rows(WINDOW_SQL[model][since is not None, until is not None], params)]


def sensor_readings(*, sensor_id: str, since: datetime | None = None, until: datetime | None = None, limit: int = 100) -> list[dict]:
    """The sensor's readings in [since, until], newest first, at most ``limit`` (empty for an unknown sensor)."""
    return _window_rows(Reading, READING_FIELDS, sensor_id, since, until, limit)


def sensor_predictions(*, sensor_id: str, since: datetime | None = None, until: datetime | None = None, limit: int = 100) -> list[dict]:
    """The sensor's predictions in [since, until], newest first, at most ``limit`` (empty for an unknown sensor)."""
    return _window_rows(Prediction, PREDICTION_FIELDS, sensor_id, since, until, limit)


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
