"""Faults in the stream and around it: broker outage, late and shuffled readings, poison messages.

Each runs the real consumer against the real broker and PostgreSQL.
"""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from rest_framework.test import APIClient

from predictions.models import Prediction
from sensors.models import Reading
from sensors.producer import producer_close
from sensors.records import ReadingIn
from tests.kafka_utils import (
    ThreadedConsumer, committed_offsets, create_test_topics, encode_reading, produce, produce_readings, read_topic, wait_for,
)

from .checks import exactly_once_counts

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _committed(settings) -> dict[int, int]:
    return committed_offsets(group=settings.KAFKA_CONSUMER_GROUP, topic=settings.KAFKA_READINGS_TOPIC)


# --- broker stopped during ingestion --------------------------------------------------------

@pytest.fixture
def ingest_client(make_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {make_key(scopes=('ingest',))}")
    yield client
    producer_close()  # the process-wide producer points at the private broker


def _post(client, reading: dict):
    return client.post("/api/v1/sensor-data", orjson.dumps(reading), content_type="application/json")


def test_broker_outage_answers_503_never_202_and_every_acknowledged_reading_is_stored(
    kafka_topics, private_broker, make_sensor, ingest_client, consumers, record_counts, settings,
):
    """Tansu keeps data in memory: what it acknowledged before a stop is gone after it (docs/reliability.md).

    So the readings acknowledged before the stop are consumed and stored
    before the stop, and those acknowledged after the restart are consumed
    after it; every 202 of both phases must be stored, no 503 may be.
    """
    settings.KAFKA_PRODUCE_TIMEOUT_SECONDS = 1.5
    make_sensor("OUT-1")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    readings = ({"sensor_id": "OUT-1", "timestamp": (start + timedelta(minutes=i)).isoformat(), "rainfall": float(i % 30)} for i in range(1000))
    acknowledged, refused = [], []

    def post_next() -> int:
        reading = next(readings)
        status = _post(ingest_client, reading).status_code
        assert status in (202, 503), status
        (acknowledged if status == 202 else refused).append(reading["timestamp"])
        return status

    create_test_topics(partitions=3)
    before = [post_next() for _ in range(40)]
    assert set(before) == {202}
    first = consumers(batch_size=50)
    wait_for(lambda: Reading.objects.count() == len(acknowledged), timeout=60, message="the readings acknowledged before the outage to be stored")
    assert first.terminate() == 0, first.log()

    private_broker.stop()
    during = [post_next() for _ in range(5)]
    assert set(during) == {503}, "a reading was acknowledged while the broker was down"
    health = APIClient().get("/api/v1/health")
    assert health.status_code == 503 and health.json()["checks"]["broker"] == "error"

    private_broker.start()
    create_test_topics(partitions=3)
    recovering = []
    while not recovering or recovering[-1] != 202:
        assert len(recovering) < 20, f"ingestion did not recover after the broker restart: {recovering}"
        recovering.append(post_next())  # the producer reconnects; 503 until it has
    after = [post_next() for _ in range(40)]
    assert set(after) == {202}
    second = consumers(batch_size=50)
    wait_for(lambda: Reading.objects.count() >= len(acknowledged), timeout=60, message="the readings acknowledged after the restart to be stored")
    assert second.terminate() == 0, second.log()
    assert APIClient().get("/api/v1/health").status_code == 200

    stored = [ts.isoformat() for ts in Reading.objects.order_by("timestamp").values_list("timestamp", flat=True)]
    assert sorted(stored) == sorted(acknowledged), "stored readings differ from the acknowledged ones"
    assert not set(stored) & set(refused), "a reading answered 503 was stored"
    record_counts(sent=len(acknowledged) + len(refused), acknowledged=len(acknowledged), refused_503=len(refused),
                  stored=len(stored), duplicates=len(stored) - len(set(stored)))


# --- late and out-of-order readings ---------------------------------------------------------

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _series(sensor_id: str, hours: int = 48) -> list[ReadingIn]:
    rng = random.Random(4)
    return [
        ReadingIn(
            sensor_id=sensor_id, timestamp=T0 + timedelta(hours=h), received_at=T0 + timedelta(hours=h),
            rainfall=round(rng.uniform(0, 40), 1), soil_moisture=round(rng.uniform(0.2, 0.5), 3),
            ground_movement=round(rng.uniform(0, 3), 2), water_level=round(rng.uniform(1, 5), 2),
        )
        for h in range(hours)
    ]


def _snapshot(code: str) -> tuple[dict, dict]:
    readings = {r[0]: r[1:] for r in Reading.objects.filter(sensor__sensor_id=code).values_list(
        "timestamp", "rainfall", "soil_moisture", "ground_movement", "water_level")}
    predictions = {p.timestamp: (p.features, round(p.landslide_probability, 6), round(p.flood_probability, 6))
                   for p in Prediction.objects.filter(sensor__sensor_id=code)}
    return readings, predictions


def test_late_and_shuffled_readings_through_kafka_store_the_same_data_and_features_as_in_order(kafka_topics, make_sensor, record_counts):
    make_sensor("ORDERED", flood_stage_m=4.0)
    make_sensor("SHUFFLED", flood_stage_m=4.0)
    create_test_topics(partitions=3)
    in_order = _series("ORDERED")
    # The same readings for the second sensor, shuffled and received up to 30 hours late.
    late = [ReadingIn(**{**{f: getattr(r, f) for f in r.__slots__}, "sensor_id": "SHUFFLED",
                         "received_at": r.timestamp + timedelta(hours=random.Random(i).uniform(1, 30))})
            for i, r in enumerate(in_order)]
    random.Random(9).shuffle(late)
    ends = produce_readings(in_order)
    with ThreadedConsumer(batch_size=7):  # small batches: late readings arrive after later ones are stored and scored
        ends = {**ends, **produce_readings(late)}
        wait_for(lambda: _committed(kafka_topics) == ends, timeout=60, message="both series to be consumed")

    ordered_readings, ordered_predictions = _snapshot("ORDERED")
    late_readings, late_predictions = _snapshot("SHUFFLED")
    assert len(ordered_readings) == len(late_readings) == len(in_order)
    assert late_readings == ordered_readings
    assert late_predictions == ordered_predictions
    record_counts(sent=2 * len(in_order), acknowledged=2 * len(in_order), stored=len(ordered_readings) + len(late_readings), duplicates=0)


# --- poison messages ----------------------------------------------------------------------

POISON = [
    (b"MIX-00", b"{not json"),
    (b"MIX-00", b"\xff\xfe\x00garbage"),
    (b"MIX-00", None),
    (b"MIX-00", b"[1, 2, 3]"),
    (b"MIX-00", b'{"v": 99, "sensor_id": "MIX-00"}'),
    (b"MIX-00", b'{"v": 1, "sensor_id": "MIX-00", "received_at": "2026-11-01T00:00:00+00:00"}'),
    (b"MIX-00", b'{"v": 1, "sensor_id": "MIX-00", "timestamp": "2026-11-01T00:00:00+00:00", "received_at": "2026-11-01T00:00:00+00:00", "rainfall": -5}'),
    (b"MIX-00", b'{"v": 1, "sensor_id": "MIX-00", "timestamp": "yesterday", "received_at": "2026-11-01T00:00:00+00:00", "rainfall": 1}'),
    (b"NOPE", b'{"v": 1, "sensor_id": "NOPE", "timestamp": "2026-11-01T00:00:00+00:00", "received_at": "2026-11-01T00:00:00+00:00", "rainfall": 1}'),
    (b"MIX-00", b'{"v": 1, "sensor_id": "MIX-00", "timestamp": "2026-11-01T00:00:00+00:00", "received_at": "2026-11-01T00:00:00+00:00", "rainfall": 1e400}'),
    (b"MIX-00", b'{"v": 1, "sensor_id": "MIX-00", "timestamp": "2026-11-01T00:00:00+00:00", "received_at": "2026-11-01T00:00:00+00:00", "extra": 1, "rainfall": 1}'),
]
NUL_SENSOR_ID = b'{"v": 1, "sensor_id": "MIX-\\u0000", "timestamp": "2026-11-01T00:00:00+00:00", "received_at": "2026-11-01T00:00:00+00:00", "rainfall": 1}'


def test_poison_mixed_into_the_stream_goes_to_the_dlq_and_the_consumer_keeps_up(kafka_topics, make_sensor, record_counts):
    codes = [make_sensor(f"MIX-{i:02d}").sensor_id for i in range(5)]
    create_test_topics(partitions=3)
    rng = random.Random(5)
    good = [ReadingIn(sensor_id=codes[i % 5], timestamp=T0 + timedelta(minutes=i), received_at=T0 + timedelta(minutes=i), rainfall=1.0)
            for i in range(1900)]
    poison = [POISON[i % len(POISON)] for i in range(100)]  # 5 % of 2,000
    stream = [encode_reading(r) for r in good] + poison
    rng.shuffle(stream)
    ends = produce(stream)
    with ThreadedConsumer(batch_size=100) as consumer:
        wait_for(lambda: _committed(kafka_topics) == ends, timeout=90, message="the mixed stream to be consumed")
        assert consumer.thread.is_alive(), "the consumer died on poison"
    dead = read_topic(kafka_topics.KAFKA_DLQ_TOPIC, expected=len(poison))
    assert len(dead) == len(poison)
    assert all(dict(m.headers())["dlq.error"] in (b"invalid_message", b"unknown_sensor") for m in dead)
    counts = exactly_once_counts(good)
    record_counts(acknowledged=len(stream), poison=len(poison), dead_lettered=len(dead), **counts)


def test_message_whose_sensor_id_holds_a_nul_byte_is_dead_lettered_not_retried_forever(kafka_topics, make_sensor):
    """PostgreSQL text cannot hold NUL: such a message can never be stored, so it is poison, not a transient failure."""
    make_sensor("MIX-00")
    create_test_topics(partitions=1)
    after = encode_reading(ReadingIn(sensor_id="MIX-00", timestamp=T0, received_at=T0, rainfall=1.0))
    ends = produce([(b"MIX-00", NUL_SENSOR_ID), after])
    with ThreadedConsumer(batch_size=10):
        wait_for(lambda: _committed(kafka_topics) == ends, timeout=30, message="the stream behind the NUL message to be consumed")
    assert len(read_topic(kafka_topics.KAFKA_DLQ_TOPIC, expected=1)) == 1
    assert Reading.objects.filter(sensor__sensor_id="MIX-00").count() == 1
