"""Reads for predictions: a sensor's latest feature window, prediction history."""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from sensors.models import Reading, Sensor
from sensors.records import MEASUREMENTS

from .features import compute_features
from .models import Prediction

WINDOW = timedelta(hours=72)


def sensor_latest_features(*, sensor: Sensor) -> tuple[np.ndarray, datetime] | None:
    """Feature row ``(1, F)`` at the sensor's latest stored reading, or None without readings.

    Uses the same feature code as the consumer: two index range scans on
    (sensor, timestamp DESC).
    """
    latest = Reading.objects.filter(sensor=sensor).order_by("-timestamp").values_list("timestamp", flat=True).first()
    if latest is None:
        return None
    rows = list(
        Reading.objects.filter(sensor=sensor, timestamp__gt=latest - WINDOW, timestamp__lte=latest)
        .order_by("timestamp")
        .values_list("timestamp", *MEASUREMENTS)
    )
    ts = np.array([r[0].timestamp() for r in rows], dtype=np.float64)
    values = {
        name: np.array([np.nan if r[1 + i] is None else r[1 + i] for r in rows], dtype=np.float64)
        for i, name in enumerate(MEASUREMENTS)
    }
    X = compute_features(ts, values, np.array([latest.timestamp()]), flood_stage=sensor.flood_stage_m)
    return X, latest


def sensor_predictions(*, sensor: Sensor, since: datetime | None = None, until: datetime | None = None, limit: int = 100):
    qs = Prediction.objects.filter(sensor=sensor)
    if since is not None:
        qs = qs.filter(timestamp__gte=since)
    if until is not None:
        qs = qs.filter(timestamp__lte=until)
    return qs.order_by("-timestamp")[:limit]
