"""The readings consumer against the real broker and PostgreSQL: storing, idempotency, dead letters."""
from __future__ import annotations

import dataclasses
from datetime import timedelta

import orjson
import pytest

from alerts.models import Alert, AlertEvent
from predictions.models import Prediction
from sensors.consumer import process_batch
from sensors.models import Reading, Sensor
from sensors.pipeline import batch_sensors_lock
from sensors.records import ReadingIn
from sensors.services import readings_store_batch, sensors_touch_last_seen
from tests.kafka_utils import (
    BASE_TIME,
    ThreadedConsumer,
    committed_offsets,
    create_test_topics,
    merge_ends,
    make_readings,
    produce,
    produce_readings,
    read_topic,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _stored_keys() -> set[tuple[str, object]]:
    return set(Reading.objects.values_list("sensor__sensor_id", "timestamp"))


def _all_committed(settings, ends: dict[int, int]) -> bool:
    return committed_offsets(group=settings.KAFKA_CONSUMER_GROUP, topic=settings.KAFKA_READINGS_TOPIC) == ends


@pytest.fixture
def three_sensors(make_sensor):
    return [make_sensor(f"CS-{i}") for i in range(3)]


def test_consumed_readings_are_stored_and_offsets_committed(kafka_topics, three_sensors):
    create_test_topics()
    readings = make_readings([s.sensor_id for s in three_sensors], 200)
    ends = produce_readings(readings)

    with ThreadedConsumer():
        wait_for(lambda: Reading.objects.count() >= len(readings), timeout=30, message="all readings stored")
        wait_for(lambda: _all_committed(kafka_topics, ends), timeout=10, message="offsets committed to the end")

    assert Reading.objects.count() == len(readings)
    assert _stored_keys() == {(r.sensor_id, r.timestamp) for r in readings}
    latest = max(r.timestamp for r in readings)
    assert set(Sensor.objects.values_list("last_seen_at", flat=True)) == {latest}


def test_each_consumed_reading_gets_exactly_one_prediction(kafka_topics, three_sensors):
    """Passes once the predictions stage (predictions_score_stored) writes Prediction rows."""
    create_test_topics()
    readings = make_readings([s.sensor_id for s in three_sensors], 40)
    ends = merge_ends(produce_readings(readings), produce_readings(readings[:50]))  # re-delivery adds no prediction

    with ThreadedConsumer():
        wait_for(lambda: _all_committed(kafka_topics, ends), timeout=30, message="offsets committed to the end")

    assert Reading.objects.count() == len(readings)
    assert Prediction.objects.count() == Reading.objects.count()
    assert set(Prediction.objects.values_list("sensor__sensor_id", "timestamp")) == _stored_keys()


def test_same_batch_delivered_twice_is_stored_once(kafka_topics, three_sensors):
    create_test_topics()
    readings = make_readings([s.sensor_id for s in three_sensors], 50)
    ends = merge_ends(produce_readings(readings), produce_readings(readings))  # a gateway re-sent

    with ThreadedConsumer(batch_size=100):
        wait_for(lambda: _all_committed(kafka_topics, ends), timeout=30, message="offsets committed to the end")

    assert Reading.objects.count() == len(readings)
    assert _stored_keys() == {(r.sensor_id, r.timestamp) for r in readings}


def test_process_batch_twice_on_the_same_messages_stores_nothing_the_second_time(kafka_topics, three_sensors):
    create_test_topics()
    readings = make_readings([s.sensor_id for s in three_sensors], 10)
    produce_readings(readings)
    messages = read_topic(kafka_topics.KAFKA_READINGS_TOPIC, expected=len(readings))
    assert len(messages) == len(readings)

    first = process_batch(messages)
    second = process_batch(messages)

    assert len(first.result.stored) == len(readings) and not first.dead_letters
    assert second.result.stored == [] and second.result.duplicates == len(readings)
    assert Reading.objects.count() == len(readings)


def test_poison_messages_go_to_the_dlq_with_original_bytes_and_error_headers(kafka_topics, sensor):
    create_test_topics(partitions=1)
    good_before = make_readings([sensor.sensor_id], 3)
    good_after = make_readings([sensor.sensor_id], 3, start=BASE_TIME + timedelta(days=1))
    invalid = orjson.dumps({"v": 1, "sensor_id": sensor.sensor_id, "timestamp": "2026-11-02T00:00:00Z",
                            "received_at": "2026-11-02T00:00:00Z", "soil_moisture": 7})
    stranger = orjson.dumps({"v": 1, "sensor_id": "NOPE-404", "timestamp": "2026-11-02T00:00:00Z",
                             "received_at": "2026-11-02T00:00:00Z", "rainfall": 3.0})
    poison = [
        (b"RG-001", b"\xff not json {", [("trace", b"abc")]),
        (b"RG-001", invalid),
        (b"NOPE-404", stranger),
    ]
    ends = merge_ends(produce_readings(good_before), produce(poison), produce_readings(good_after))

    with ThreadedConsumer():
        wait_for(lambda: _all_committed(kafka_topics, ends), timeout=30, message="offsets committed past the poison")
    dead = read_topic(kafka_topics.KAFKA_DLQ_TOPIC, expected=3)

    assert _stored_keys() == {(r.sensor_id, r.timestamp) for r in good_before + good_after}
    assert [(m.key(), m.value()) for m in dead] == [(k, v) for k, v, *_ in poison]
    headers = [dict(m.headers()) for m in dead]
    assert [h["dlq.error"] for h in headers] == [b"invalid_message", b"invalid_message", b"unknown_sensor"]
    assert b"invalid JSON" in headers[0]["dlq.reason"]
    assert b"soil_moisture" in headers[1]["dlq.reason"]
    assert b"NOPE-404" in headers[2]["dlq.reason"]
    assert headers[0]["trace"] == b"abc"  # original headers are kept
    for h, offset in zip(headers, (3, 4, 5)):
        assert h["dlq.source_topic"] == kafka_topics.KAFKA_READINGS_TOPIC.encode()
        assert h["dlq.source_partition"] == b"0"
        assert h["dlq.source_offset"] == str(offset).encode()


@pytest.fixture
def stricter_database():
    """A CHECK the message validation does not know (an operator's rule, schema drift): rainfall 123.4 is refused."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE sensors_reading ADD CONSTRAINT test_no_123_4 CHECK (rainfall IS DISTINCT FROM 123.4)")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE sensors_reading DROP CONSTRAINT IF EXISTS test_no_123_4")


def test_rows_the_database_rejects_are_dead_lettered_and_the_rest_stored(kafka_topics, sensor, stricter_database):
    """Data the database refuses is poison, not an outage: retrying it would block the partition for ever."""
    create_test_topics(partitions=1)
    readings = make_readings([sensor.sensor_id], 40)
    culprits = {5, 31}
    readings = [dataclasses.replace(r, rainfall=123.4) if i in culprits else r for i, r in enumerate(readings)]
    ends = produce_readings(readings)

    with ThreadedConsumer(batch_size=100):
        wait_for(lambda: _all_committed(kafka_topics, ends), timeout=30, message="offsets committed past the rejected rows")
    dead = read_topic(kafka_topics.KAFKA_DLQ_TOPIC, expected=2)

    assert _stored_keys() == {(r.sensor_id, r.timestamp) for i, r in enumerate(readings) if i not in culprits}
    assert Prediction.objects.count() == len(readings) - 2
    headers = [dict(m.headers()) for m in dead]
    assert [h["dlq.error"] for h in headers] == [b"rejected_by_database"] * 2
    assert all(b"test_no_123_4" in h["dlq.reason"] for h in headers)
    assert sorted(int(h["dlq.source_offset"]) for h in headers) == sorted(culprits)


def test_consumer_publishes_pending_alert_events_after_a_committed_batch(kafka_topics, sensor):
    alert = Alert.objects.create(
        sensor=sensor, hazard="flood", level="high", source="threshold", triggered_at=BASE_TIME,
        last_triggered_at=BASE_TIME, value=5.2, threshold=4.0, message="water level 5.2 m above flood stage",
    )
    event = alert.events.create(kind="raised", level="high", status="open")
    create_test_topics()
    produce_readings(make_readings([sensor.sensor_id], 1, start=BASE_TIME + timedelta(hours=1)))

    with ThreadedConsumer():
        wait_for(lambda: AlertEvent.objects.filter(pk=event.pk, published_at__isnull=False).exists(), timeout=30, message="the event published")

    published = [orjson.loads(m.value()) for m in read_topic(kafka_topics.KAFKA_ALERTS_TOPIC, expected=1)]
    mine = [p for p in published if p["event_id"] == event.id]
    assert len(mine) == 1
    assert (mine[0]["event"], mine[0]["alert_id"], mine[0]["sensor_id"], mine[0]["level"]) == ("raised", alert.id, "RG-001", "high")


def test_readings_posted_to_the_api_reach_postgresql_through_the_broker(kafka_topics, sensor, key_client):
    create_test_topics()
    client = key_client(scopes=("ingest",))
    body = [
        {"sensor_id": sensor.sensor_id, "timestamp": (BASE_TIME + timedelta(minutes=i)).isoformat(), "rainfall": 2.5, "water_level": 1.0}
        for i in range(20)
    ]
    response = client.post("/api/v1/sensor-data", body, format="json")
    assert response.status_code == 202, response.content
    assert Reading.objects.count() == 0  # not eager: only the consumer writes

    with ThreadedConsumer():
        wait_for(lambda: Reading.objects.count() >= 20, timeout=30, message="posted readings stored")

    assert Reading.objects.count() == 20
    assert set(Reading.objects.values_list("rainfall", flat=True)) == {2.5}


def test_store_batch_returns_only_new_readings_and_collapses_duplicates(three_sensors):
    codes = [s.sensor_id for s in three_sensors]
    readings = make_readings(codes, 5)
    pks = batch_sensors_lock(set(codes)).pks
    first = readings_store_batch(readings=readings[:8], sensor_pks=pks)
    second = readings_store_batch(readings=readings + readings[:2], sensor_pks=pks)

    assert len(first) == 8 and len(second) == len(readings) - 8
    assert {(s.sensor_id, s.timestamp) for s in first + second} == {(r.sensor_id, r.timestamp) for r in readings}
    stored = {(s.sensor_id, s.timestamp): s for s in second}
    for r in readings[8:]:
        s = stored[(r.sensor_id, r.timestamp)]
        assert (s.rainfall, s.soil_moisture, s.ground_movement, s.water_level) == (r.rainfall, r.soil_moisture, None, r.water_level)
    assert Reading.objects.count() == len(readings)


def test_store_batch_keeps_nulls_and_integer_values(sensor):
    reading = ReadingIn(sensor_id=sensor.sensor_id, timestamp=BASE_TIME, received_at=BASE_TIME, ground_movement=3)
    (stored,) = readings_store_batch(readings=[reading], sensor_pks={sensor.sensor_id: sensor.pk})
    row = Reading.objects.get()
    assert (row.rainfall, row.soil_moisture, row.ground_movement, row.water_level) == (None, None, 3.0, None)
    assert stored.id == row.id and stored.timestamp == BASE_TIME


def test_touch_last_seen_never_moves_backwards(three_sensors):
    codes = [s.sensor_id for s in three_sensors]
    pks = batch_sensors_lock(set(codes)).pks
    late = readings_store_batch(readings=make_readings(codes, 3, start=BASE_TIME + timedelta(hours=1)), sensor_pks=pks)
    sensors_touch_last_seen(stored=late)
    early = readings_store_batch(readings=make_readings(codes[:1], 3), sensor_pks=pks)
    sensors_touch_last_seen(stored=early)

    expected = BASE_TIME + timedelta(hours=1, minutes=10)
    assert set(Sensor.objects.values_list("last_seen_at", flat=True)) == {expected}


def test_an_outbox_backlog_is_drained_sweep_after_sweep_not_one_sweep_per_batch(kafka_topics, sensor):
    """A storm raises more events per batch than one sweep sends: the drain goes on while sweeps come back full."""
    from confluent_kafka import Producer

    from sensors.consumer import OUTBOX_SWEEP_EVENTS, ReadingsConsumer
    from warning_system.kafka import producer_config

    alert = Alert.objects.create(
        sensor=sensor, hazard="flood", level="high", source="threshold", triggered_at=BASE_TIME,
        last_triggered_at=BASE_TIME, value=5.2, threshold=4.0, message="water level 5.2 m above flood stage",
    )
    backlog = 2 * OUTBOX_SWEEP_EVENTS + 500
    AlertEvent.objects.bulk_create([AlertEvent(alert=alert, kind="raised", level="high", status="open") for _ in range(backlog)])
    create_test_topics()
    consumer = ReadingsConsumer()
    consumer._events_producer = Producer(producer_config())

    consumer._publish_outbox()  # what runs after a batch that wrote alert events

    assert AlertEvent.objects.filter(published_at__isnull=True).count() == 0
    assert len(read_topic(kafka_topics.KAFKA_ALERTS_TOPIC, expected=backlog, timeout=30)) == backlog
