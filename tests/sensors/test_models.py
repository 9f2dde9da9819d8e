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


# -- readings and predictions keep their sensor without a database foreign key ------

@pytest.mark.django_db(transaction=True)
def test_sensor_delete_waits_for_a_batch_that_locked_it_and_removes_its_readings(make_sensor):
    """The guarantee the foreign key gave: no reading outlives its sensor, even when a batch commits mid-delete."""
    import threading

    from django.db import connections

    from predictions.models import Prediction
    from sensors.pipeline import process_readings
    from sensors.records import ReadingIn
    from sensors.services import sensors_delete

    sensor = make_sensor("DEL-001", flood_stage_m=4.0)
    now = timezone.now().replace(microsecond=0)
    batch = [ReadingIn(sensor_id="DEL-001", timestamp=now - timedelta(minutes=i), received_at=now, water_level=1.0) for i in range(5)]
    locked, release, deleted = threading.Event(), threading.Event(), threading.Event()
    errors = []

    def batch_holding_its_lock():
        # process_readings looks the sensor up (FOR KEY SHARE) inside its transaction;
        # hold that transaction open until the delete has been started.
        import sensors.pipeline as pipeline

        original = pipeline.readings_store_batch

        def store_then_wait(**kwargs):
            stored = original(**kwargs)
            locked.set()
            release.wait(10)
            return stored

        pipeline.readings_store_batch = store_then_wait
        try:
            process_readings(readings=batch)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            pipeline.readings_store_batch = original
            connections.close_all()

    def delete():
        try:
            sensors_delete(sensor_ids=[sensor.pk])
            deleted.set()
        finally:
            connections.close_all()

    writer = threading.Thread(target=batch_holding_its_lock)
    writer.start()
    assert locked.wait(10)
    deleter = threading.Thread(target=delete)
    deleter.start()
    assert not deleted.wait(1.0), "the delete must wait for the batch that locked the sensor"
    release.set()
    writer.join(10)
    deleter.join(10)
    assert not errors and deleted.is_set()
    assert not Reading.objects.filter(sensor_id=sensor.pk).exists()
    assert not Prediction.objects.filter(sensor_id=sensor.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_batch_for_a_deleted_sensor_is_refused_as_unknown(make_sensor):
    from sensors.pipeline import UnknownSensors, process_readings
    from sensors.records import ReadingIn
    from sensors.services import sensors_delete

    sensor = make_sensor("DEL-002")
    sensors_delete(sensor_ids=[sensor.pk])
    now = timezone.now()
    with pytest.raises(UnknownSensors):
        process_readings(readings=[ReadingIn(sensor_id="DEL-002", timestamp=now, received_at=now, rainfall=1.0)])
    assert not Reading.objects.exists()


def test_prediction_features_are_stored_as_a_float32_vector_and_read_back_by_name(sensor):
    from predictions.features import FEATURE_NAMES
    from predictions.models import Prediction

    now = timezone.now()
    Prediction.objects.create(sensor=sensor, timestamp=now, landslide_probability=0.1, flood_probability=0.2,
                              landslide_risk="low", flood_risk="low", landslide_model_version="a", flood_model_version="b",
                              features={"rain_72h": 0.1, "water_level": 2.5})
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_typeof(features)::text, features FROM predictions_prediction")
        (kind, stored), = cursor.fetchall()
    assert kind == "real[]" and len(stored) == len(FEATURE_NAMES)
    features = Prediction.objects.get().features
    assert list(features) == list(FEATURE_NAMES)
    assert features["rain_72h"] == 0.1 and features["water_level"] == 2.5  # float32, printed shortest
    assert features["rainfall"] is None  # absent: missing, not zero
    with pytest.raises(ValueError, match="unknown feature"):
        Prediction.objects.create(sensor=sensor, timestamp=now + timedelta(seconds=1), landslide_probability=0.1,
                                  flood_probability=0.2, landslide_risk="low", flood_risk="low",
                                  landslide_model_version="a", flood_model_version="b", features={"rain_99h": 1.0})


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_for_the_same_sensors_both_commit(make_sensor):
    """Two pipelines (eager API workers, or consumers during a rebalance) that looked up the same sensors must not deadlock."""
    import threading

    from django.db import connections

    from predictions.models import Prediction
    from sensors.pipeline import process_readings
    from sensors.records import ReadingIn

    for code in ("CON-1", "CON-2"):
        make_sensor(code, flood_stage_m=1.0)
    now = timezone.now().replace(microsecond=0)
    both_looked_up = threading.Barrier(2, timeout=10)
    errors = []

    import sensors.pipeline as pipeline

    original = pipeline.readings_store_batch

    def store_after_both_locked(**kwargs):
        both_looked_up.wait()  # both transactions now hold their lookup locks on both sensors
        return original(**kwargs)

    def batch(offset: int):
        try:
            readings = [ReadingIn(sensor_id=code, timestamp=now - timedelta(minutes=offset + i), received_at=now, water_level=2.0)
                        for code in ("CON-2", "CON-1") for i in range(3)]
            process_readings(readings=readings)  # water above flood stage: the alert stage locks the sensors too
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    pipeline.readings_store_batch = store_after_both_locked
    try:
        threads = [threading.Thread(target=batch, args=(offset,)) for offset in (0, 10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        pipeline.readings_store_batch = original
    assert not errors, errors
    assert Reading.objects.count() == 12 and Prediction.objects.count() == 12
