"""Database constraints on PostgreSQL: what no code path can violate."""
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from sensors.models import Reading

pytestmark = pytest.mark.django_db


def test_suite_runs_on_postgresql():
    assert connection.vendor == "postgresql"


def _reading(sensor, **values):
    now = timezone.now()
    return Reading(sensor=sensor, timestamp=values.pop("timestamp", now), received_at=now, **values)


def test_duplicate_sensor_timestamp_is_rejected_by_the_database(sensor):
    ts = timezone.now()
    _reading(sensor, timestamp=ts, rainfall=1.0).save()
    with pytest.raises(IntegrityError), transaction.atomic():
        _reading(sensor, timestamp=ts, rainfall=2.0).save()


def test_reading_without_any_measurement_is_rejected(sensor):
    with pytest.raises(IntegrityError), transaction.atomic():
        _reading(sensor).save()


@pytest.mark.parametrize(
    "field,value",
    [("rainfall", -0.1), ("rainfall", 500.1), ("soil_moisture", -0.01), ("soil_moisture", 1.01),
     ("ground_movement", -1), ("ground_movement", 1000.5), ("water_level", -50.1), ("water_level", 100.1)],
)
def test_out_of_range_measurement_is_rejected(sensor, field, value):
    with pytest.raises(IntegrityError), transaction.atomic():
        _reading(sensor, **{field: value}).save()


@pytest.mark.parametrize(
    "field,value",
    [("rainfall", 0), ("rainfall", 500), ("soil_moisture", 0), ("soil_moisture", 1),
     ("ground_movement", 0), ("ground_movement", 1000), ("water_level", -50), ("water_level", 100)],
)
def test_boundary_measurement_is_accepted(sensor, field, value):
    _reading(sensor, **{field: value}).save()
    assert Reading.objects.filter(sensor=sensor).count() == 1


def test_readings_index_serves_latest_readings_of_a_sensor(sensor):
    now = timezone.now()
    Reading.objects.bulk_create([_reading(sensor, timestamp=now - timedelta(minutes=i), rainfall=1.0) for i in range(50)])
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT * FROM sensors_reading WHERE sensor_id = %s ORDER BY timestamp DESC LIMIT 10", [sensor.pk]
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "reading_sensor_timestamp_uniq" in plan


def test_brin_index_exists_on_reading_timestamp():
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'reading_timestamp_brin'")
        row = cursor.fetchone()
    assert row and "brin" in row[0].lower()


def test_only_one_active_alert_per_sensor_and_hazard(sensor):
    from alerts.models import Alert

    now = timezone.now()
    common = dict(sensor=sensor, hazard="flood", level="medium", source="model", triggered_at=now, last_triggered_at=now)
    Alert.objects.create(**common)
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(**common, status="acknowledged")
    Alert.objects.filter(sensor=sensor).update(status="resolved")
    Alert.objects.create(**common)  # a new alert after resolution is fine
    assert Alert.objects.filter(sensor=sensor).count() == 2


def test_prediction_is_unique_per_sensor_and_timestamp(sensor):
    from predictions.models import Prediction

    ts = timezone.now()
    fields = dict(sensor=sensor, timestamp=ts, landslide_probability=0.1, flood_probability=0.2, landslide_risk="low",
                  flood_risk="low", landslide_model_version="a", flood_model_version="b")
    Prediction.objects.create(**fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        Prediction.objects.create(**fields)
