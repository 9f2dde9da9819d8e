"""The scoring stage inside the pipeline: one prediction per stored reading, order-independent."""
import random
from datetime import datetime, timedelta, timezone

import pytest

from predictions.models import Prediction
from sensors.pipeline import process_readings
from sensors.records import ReadingIn

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 6, 1, tzinfo=timezone.utc)


def _series(sensor_id: str, hours: int = 30) -> list[ReadingIn]:
    rng = random.Random(4)
    out = []
    for h in range(hours):
        out.append(ReadingIn(
            sensor_id=sensor_id, timestamp=T0 + timedelta(hours=h), received_at=T0 + timedelta(hours=h),
            rainfall=round(rng.uniform(0, 40), 1), soil_moisture=round(rng.uniform(0.2, 0.5), 3),
            ground_movement=round(rng.uniform(0, 3), 2), water_level=round(rng.uniform(1, 5), 2),
        ))
    return out


def _snapshot(sensor):
    return {
        p.timestamp: (p.features, round(p.landslide_probability, 6), round(p.flood_probability, 6))
        for p in Prediction.objects.filter(sensor=sensor)
    }


def test_every_stored_reading_gets_exactly_one_prediction(sensor):
    readings = _series(sensor.sensor_id)
    result = process_readings(readings=readings)
    assert result.predictions == len(readings)
    process_readings(readings=readings)  # re-delivery
    assert Prediction.objects.filter(sensor=sensor).count() == len(readings)


def test_late_and_shuffled_readings_give_the_same_features_as_in_order(make_sensor):
    in_order, shuffled = make_sensor("ORDERED"), make_sensor("SHUFFLED")
    readings = _series("ORDERED")
    for r in readings:
        process_readings(readings=[r])
    late = [ReadingIn(**{**{f: getattr(r, f) for f in r.__slots__}, "sensor_id": "SHUFFLED"}) for r in readings]
    random.Random(9).shuffle(late)
    for start in range(0, len(late), 7):
        process_readings(readings=late[start : start + 7])
    assert _snapshot(in_order) == _snapshot(shuffled)


def test_prediction_stores_model_versions_and_feature_snapshot(sensor):
    from predictions.scoring import get_registry

    process_readings(readings=_series(sensor.sensor_id, hours=3))
    p = Prediction.objects.filter(sensor=sensor).latest("timestamp")
    assert p.landslide_model_version == get_registry().versions["landslide"]
    assert p.features["rain_3h"] is not None and p.features["flood_stage"] == sensor.flood_stage_m
    assert p.landslide_risk in ("low", "medium", "high")
