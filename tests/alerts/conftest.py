"""Builders for alert tests: hand-made scored readings for real sensors, and ready-made alerts."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest
from django.conf import settings

from sensors.records import ScoredReading, StoredReading

T0 = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)
_ids = itertools.count(1)


def _risk(p: float) -> str:
    if p > settings.RISK_HIGH:
        return "high"
    if p > settings.RISK_MEDIUM:
        return "medium"
    return "low"


@pytest.fixture
def scored():
    """scored(sensor, minute, landslide=p, flood=p, water_level=..., ...) -> ScoredReading at T0 + minute."""

    def _make(sensor, minute: float = 0, *, landslide: float = 0.05, flood: float = 0.05, features=None, **measurements):
        reading = StoredReading(
            id=next(_ids), sensor_pk=sensor.pk, sensor_id=sensor.sensor_id, timestamp=T0 + timedelta(minutes=minute),
            rainfall=measurements.get("rainfall"), soil_moisture=measurements.get("soil_moisture"),
            ground_movement=measurements.get("ground_movement"), water_level=measurements.get("water_level"),
        )
        return ScoredReading(
            reading=reading, landslide_probability=landslide, flood_probability=flood,
            landslide_risk=_risk(landslide), flood_risk=_risk(flood),
            landslide_model_version="landslide-test-1", flood_model_version="flood-test-1",
            features=features if features is not None else {"rain_72h": 12.5, "rain_24h": None},
        )

    return _make


@pytest.fixture
def make_alert(db):
    """An alert as the rules would have raised it, with its "raised" event."""
    from alerts.models import Alert

    def _make(sensor, *, hazard="flood", level="medium", status="open", minute: float = 0, probability=0.5):
        ts = T0 + timedelta(minutes=minute)
        alert = Alert.objects.create(
            sensor=sensor, hazard=hazard, level=level, source="model", status=status, probability=probability,
            peak_probability=probability, triggered_at=ts, last_triggered_at=ts,
            message=f"{hazard} {level} at {sensor.sensor_id}",
            resolved_at=ts if status == "resolved" else None,
        )
        alert.events.create(kind="raised", level=level, status="open", probability=probability)
        return alert

    return _make
