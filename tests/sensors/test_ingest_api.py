"""POST /api/v1/sensor-data against the real broker, PostgreSQL and Redis."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from sensors.messages import decode_reading
from sensors.models import Reading, Sensor

from .conftest import consume, create_topic

pytestmark = pytest.mark.django_db(transaction=False)


def _ts(minutes_ago: float = 0) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()


@pytest.fixture
def ingest_key(make_key):
    return make_key(scopes=("ingest",))


@pytest.fixture
def eager(settings):
    """Eager mode: validation failures must leave the database untouched."""
    settings.PIPELINE_EAGER = True
    return settings


# --- 202 path through the broker -----------------------------------------------------------

def test_batch_is_published_keyed_by_sensor_and_decodable(readings_topic, settings, make_sensor, ingest_key, post_json):
    make_sensor("RG-A")
    make_sensor("RG-B")
    batch = [
        {"sensor_id": "RG-A", "timestamp": _ts(3), "rainfall": 12.5, "soil_moisture": 0.31},
        {"sensor_id": "RG-B", "timestamp": _ts(2), "water_level": -1.5},
        {"sensor_id": "RG-A", "timestamp": _ts(1), "ground_movement": 0.0, "rainfall": None},
    ]
    response = post_json(batch, key=ingest_key)
    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": 3}

    messages = consume(settings.KAFKA_BOOTSTRAP_SERVERS, readings_topic, expected=3, settle=0.5)
    assert len(messages) == 3
    decoded = sorted(((m.key(), decode_reading(m.value())) for m in messages), key=lambda kv: kv[1].timestamp)
    assert [key for key, _ in decoded] == [b"RG-A", b"RG-B", b"RG-A"]
    first = decoded[0][1]
    assert first.sensor_id == "RG-A" and first.rainfall == 12.5 and first.soil_moisture == 0.31
    assert first.timestamp == datetime.fromisoformat(batch[0]["timestamp"])
    assert decoded[1][1].water_level == -1.5
    assert decoded[2][1].ground_movement == 0.0 and decoded[2][1].rainfall is None
    assert orjson.loads(messages[0].value())["v"] == 1


def test_reading_without_timestamp_is_stamped_with_receive_time(readings_topic, settings, sensor, ingest_key, post_json):
    before = datetime.now(UTC)
    response = post_json({"sensor_id": "RG-001", "rainfall": 3.0}, key=ingest_key)
    after = datetime.now(UTC)
    assert response.status_code == 202, response.content
    [message] = consume(settings.KAFKA_BOOTSTRAP_SERVERS, readings_topic, expected=1)
    reading = decode_reading(message.value())
    assert before <= reading.timestamp <= after
    assert reading.received_at == reading.timestamp


def test_same_batch_posted_twice_is_accepted_both_times(readings_topic, settings, sensor, ingest_key, post_json):
    batch = [{"sensor_id": "RG-001", "timestamp": _ts(5), "rainfall": 1.0}]
    assert post_json(batch, key=ingest_key).status_code == 202
    assert post_json(batch, key=ingest_key).status_code == 202
    messages = consume(settings.KAFKA_BOOTSTRAP_SERVERS, readings_topic, expected=2)
    assert len(messages) == 2  # storing it once is the consumer's job


def test_batch_with_one_bad_item_produces_nothing(readings_topic, settings, sensor, ingest_key, post_json):
    bad = [{"sensor_id": "RG-001", "timestamp": _ts(2), "rainfall": 1.0}, {"sensor_id": "RG-001", "timestamp": _ts(1), "soil_moisture": 1.5}]
    response = post_json(bad, key=ingest_key)
    assert response.status_code == 400
    assert response.json()["errors"] == [{"index": 1, "field": "soil_moisture", "message": "must be between 0 and 1"}]
    # A good reading after it is the only message on the topic.
    assert post_json({"sensor_id": "RG-001", "timestamp": _ts(0), "rainfall": 7.0}, key=ingest_key).status_code == 202
    messages = consume(settings.KAFKA_BOOTSTRAP_SERVERS, readings_topic, expected=1, settle=1.0)
    assert [decode_reading(m.value()).rainfall for m in messages] == [7.0]


def test_full_batch_of_max_size_is_accepted(readings_topic, settings, sensor, ingest_key, post_json):
    start = datetime.now(UTC) - timedelta(days=1)
    batch = [{"sensor_id": "RG-001", "timestamp": (start + timedelta(seconds=i)).isoformat(), "rainfall": i % 500} for i in range(settings.INGEST_MAX_BATCH)]
    response = post_json(batch, key=ingest_key)
    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": settings.INGEST_MAX_BATCH}
    messages = consume(settings.KAFKA_BOOTSTRAP_SERVERS, readings_topic, expected=settings.INGEST_MAX_BATCH, timeout=20)
    assert len(messages) == settings.INGEST_MAX_BATCH


def test_sensor_in_maintenance_may_still_post(readings_topic, make_sensor, ingest_key, post_json):
    make_sensor("MX-1", status=Sensor.Status.MAINTENANCE)
    assert post_json({"sensor_id": "MX-1", "rainfall": 1.0}, key=ingest_key).status_code == 202


# --- broker outage -------------------------------------------------------------------------

def test_broker_down_answers_503_with_retry_after_and_recovers(close_producer_after, private_broker, settings, sensor, make_key, post_json):
    settings.KAFKA_READINGS_TOPIC = "test.sensor.data.outage"
    settings.KAFKA_PRODUCE_TIMEOUT_SECONDS = 1.5
    settings.KAFKA_RETRY_AFTER_SECONDS = 7
    key = make_key(scopes=("ingest",))
    create_topic(private_broker.bootstrap, settings.KAFKA_READINGS_TOPIC)
    assert post_json({"sensor_id": "RG-001", "timestamp": _ts(3), "rainfall": 1.0}, key=key).status_code == 202

    private_broker.stop()
    response = post_json({"sensor_id": "RG-001", "timestamp": _ts(2), "rainfall": 2.0}, key=key)
    assert response.status_code == 503
    assert response["Retry-After"] == "7"
    assert "broker" in response.json()["detail"]

    private_broker.start()
    create_topic(private_broker.bootstrap, settings.KAFKA_READINGS_TOPIC)
    statuses = []
    for _ in range(10):  # the producer reconnects (and may re-initialise) after the restart
        response = post_json({"sensor_id": "RG-001", "timestamp": _ts(1), "rainfall": 3.0}, key=key)
        statuses.append(response.status_code)
        if response.status_code == 202:
            break
    assert statuses[-1] == 202
    assert set(statuses[:-1]) <= {503}
    messages = consume(private_broker.bootstrap, settings.KAFKA_READINGS_TOPIC, expected=1)
    assert decode_reading(messages[0].value()).rainfall == 3.0


def test_unreachable_broker_is_never_a_202(close_producer_after, kafka_topics, settings, sensor, ingest_key, post_json):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{port}"
    settings.KAFKA_PRODUCE_TIMEOUT_SECONDS = 1.0
    response = post_json({"sensor_id": "RG-001", "rainfall": 1.0}, key=ingest_key)
    assert response.status_code == 503
    assert response["Retry-After"] == str(settings.KAFKA_RETRY_AFTER_SECONDS)


# --- eager mode ----------------------------------------------------------------------------

def test_eager_mode_stores_readings_before_answering(eager, sensor, ingest_key, post_json):
    batch = [{"sensor_id": "RG-001", "timestamp": _ts(10), "rainfall": 4.0}, {"sensor_id": "RG-001", "timestamp": _ts(5), "water_level": 1.25}]
    response = post_json(batch, key=ingest_key)
    assert response.status_code == 202, response.content
    rows = list(Reading.objects.filter(sensor=sensor).order_by("timestamp").values_list("rainfall", "water_level"))
    assert rows == [(4.0, None), (None, 1.25)]
    # Re-posting the same batch is accepted and stores nothing twice.
    assert post_json(batch, key=ingest_key).status_code == 202
    assert Reading.objects.filter(sensor=sensor).count() == 2


# --- validation matrix (eager mode: a rejected request must store nothing) -----------------

GOOD = {"sensor_id": "RG-001", "rainfall": 1.0}
FUTURE_BY_6_MINUTES = "<now + 6 min>"

FIELD_CASES = [
    ("rainfall_below_range", {"sensor_id": "RG-001", "rainfall": -0.1}, "rainfall"),
    ("rainfall_above_range", {"sensor_id": "RG-001", "rainfall": 500.01}, "rainfall"),
    ("soil_moisture_below_range", {"sensor_id": "RG-001", "soil_moisture": -0.01}, "soil_moisture"),
    ("soil_moisture_above_range", {"sensor_id": "RG-001", "soil_moisture": 1.01}, "soil_moisture"),
    ("ground_movement_below_range", {"sensor_id": "RG-001", "ground_movement": -1}, "ground_movement"),
    ("ground_movement_above_range", {"sensor_id": "RG-001", "ground_movement": 1000.5}, "ground_movement"),
    ("water_level_below_range", {"sensor_id": "RG-001", "water_level": -50.1}, "water_level"),
    ("water_level_above_range", {"sensor_id": "RG-001", "water_level": 100.1}, "water_level"),
    ("string_number", {"sensor_id": "RG-001", "rainfall": "12.5"}, "rainfall"),
    ("boolean_number", {"sensor_id": "RG-001", "soil_moisture": True}, "soil_moisture"),
    ("unknown_field", {"sensor_id": "RG-001", "rainfall": 1.0, "temperature": 20}, "temperature"),
    ("missing_sensor_id", {"rainfall": 1.0}, "sensor_id"),
    ("numeric_sensor_id", {"sensor_id": 17, "rainfall": 1.0}, "sensor_id"),
    ("no_measurement", {"sensor_id": "RG-001", "rainfall": None}, None),
    ("timestamp_without_offset", {"sensor_id": "RG-001", "rainfall": 1.0, "timestamp": "2026-11-26T10:00:00"}, "timestamp"),
    ("timestamp_not_iso", {"sensor_id": "RG-001", "rainfall": 1.0, "timestamp": "yesterday"}, "timestamp"),
    ("timestamp_too_far_in_future", {"sensor_id": "RG-001", "rainfall": 1.0, "timestamp": FUTURE_BY_6_MINUTES}, "timestamp"),
    ("unknown_sensor", {"sensor_id": "NOPE-404", "rainfall": 1.0}, "sensor_id"),
    ("retired_sensor", {"sensor_id": "OLD-1", "rainfall": 1.0}, "sensor_id"),
]


@pytest.mark.parametrize("case,item,field", FIELD_CASES, ids=[c[0] for c in FIELD_CASES])
def test_invalid_item_is_rejected_naming_index_and_field(eager, sensor, make_sensor, ingest_key, post_json, case, item, field):
    make_sensor("OLD-1", status=Sensor.Status.RETIRED)
    if item.get("timestamp") == FUTURE_BY_6_MINUTES:  # computed now, not at collection time
        item = item | {"timestamp": (datetime.now(UTC) + timedelta(minutes=6)).isoformat()}
    response = post_json([GOOD, GOOD | {"timestamp": _ts(1)}, item], key=ingest_key)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["detail"]
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(2, field)]
    assert body["errors"][0]["message"]
    assert Reading.objects.count() == 0


def test_values_on_the_range_bounds_are_accepted(eager, sensor, ingest_key, post_json):
    batch = [
        {"sensor_id": "RG-001", "timestamp": _ts(4), "rainfall": 0, "soil_moisture": 0, "ground_movement": 0, "water_level": -50},
        {"sensor_id": "RG-001", "timestamp": _ts(3), "rainfall": 500, "soil_moisture": 1, "ground_movement": 1000, "water_level": 100},
        {"sensor_id": "RG-001", "timestamp": (datetime.now(UTC) + timedelta(minutes=4)).isoformat(), "rainfall": 1},
    ]
    response = post_json(batch, key=ingest_key)
    assert response.status_code == 202, response.content
    assert Reading.objects.count() == 3


RAW_BODY_CASES = [
    ("nan", b'{"sensor_id":"RG-001","rainfall":NaN}'),
    ("infinity", b'{"sensor_id":"RG-001","rainfall":Infinity}'),
    ("truncated_json", b'{"sensor_id":"RG-001","rainfall":'),
    ("not_json", b"sensor_id=RG-001&rainfall=1"),
]


@pytest.mark.parametrize("case,raw", RAW_BODY_CASES, ids=[c[0] for c in RAW_BODY_CASES])
def test_body_that_is_not_strict_json_is_a_400(eager, sensor, ingest_key, post_json, case, raw):
    response = post_json(raw, key=ingest_key)
    assert response.status_code == 400
    body = response.json()
    assert "JSON" in body["detail"]
    assert body["errors"][0]["index"] is None
    assert Reading.objects.count() == 0


@pytest.mark.parametrize("body,message", [
    ([], "empty"),
    ("a string", "reading object or an array"),
    (42, "reading object or an array"),
], ids=["empty_array", "string_body", "number_body"])
def test_body_of_the_wrong_shape_is_a_400(eager, sensor, ingest_key, post_json, body, message):
    response = post_json(body, key=ingest_key)
    assert response.status_code == 400
    assert message in response.json()["errors"][0]["message"]


def test_non_object_item_in_array_is_named(eager, sensor, ingest_key, post_json):
    response = post_json([GOOD, "RG-001,1.0"], key=ingest_key)
    assert response.status_code == 400
    assert response.json()["errors"] == [{"index": 1, "field": None, "message": "must be a JSON object"}]


def test_more_than_max_batch_items_is_a_400(eager, settings, sensor, ingest_key, post_json):
    batch = [{"sensor_id": "RG-001", "timestamp": _ts(i), "rainfall": 1.0} for i in range(settings.INGEST_MAX_BATCH + 1)]
    response = post_json(batch, key=ingest_key)
    assert response.status_code == 400
    assert str(settings.INGEST_MAX_BATCH) in response.json()["errors"][0]["message"]
    assert Reading.objects.count() == 0


def test_body_over_one_mebibyte_is_a_413(eager, sensor, ingest_key, post_json):
    raw = b'{"sensor_id":"RG-001","rainfall":1.0,"pad":"' + b"x" * (1024 * 1024) + b'"}'
    assert len(raw) > 1024 * 1024
    response = post_json(raw, key=ingest_key)
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_body_of_exactly_the_limit_is_not_a_413(eager, sensor, ingest_key, post_json):
    head = b'[{"sensor_id":"RG-001","rainfall":1.0}'
    raw = head + b" " * (1024 * 1024 - len(head) - 1) + b"]"
    assert len(raw) == 1024 * 1024
    response = post_json(raw, key=ingest_key)
    assert response.status_code == 202, response.content


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_content_type_other_than_json_is_a_415(eager, sensor, ingest_key, post_json, content_type):
    response = post_json(GOOD, key=ingest_key, content_type=content_type)
    assert response.status_code == 415
    assert response.json()["detail"]
    assert Reading.objects.count() == 0


def test_json_content_type_with_charset_is_accepted(eager, sensor, ingest_key, post_json):
    response = post_json(GOOD, key=ingest_key, content_type="application/json; charset=utf-8")
    assert response.status_code == 202, response.content


def test_sensor_registered_after_a_rejection_is_accepted_at_once(eager, make_sensor, ingest_key, post_json):
    assert post_json({"sensor_id": "NEW-1", "rainfall": 1.0}, key=ingest_key).status_code == 400
    make_sensor("NEW-1")  # saving a sensor in this process forgets the cached "unknown"
    assert post_json({"sensor_id": "NEW-1", "rainfall": 1.0}, key=ingest_key).status_code == 202


def test_sensor_retired_without_signals_is_refused_within_the_cache_bound(eager, settings, sensor, ingest_key, post_json):
    settings.INGEST_SENSOR_CACHE_SECONDS = 0.3
    assert post_json({"sensor_id": sensor.sensor_id, "rainfall": 1.0}, key=ingest_key).status_code == 202
    Sensor.objects.filter(pk=sensor.pk).update(status=Sensor.Status.RETIRED)  # bulk update: no signal, no forgetting
    deadline = time.monotonic() + 2 * settings.INGEST_SENSOR_CACHE_SECONDS + 0.5
    while True:
        response = post_json({"sensor_id": sensor.sensor_id, "rainfall": 1.0}, key=ingest_key)
        if response.status_code == 400:
            break
        assert response.status_code == 202
        assert time.monotonic() < deadline, "retirement not seen within the cache bound"
        time.sleep(0.05)
    assert response.json()["errors"] == [{"index": 0, "field": "sensor_id", "message": f"{sensor.sensor_id!r} is retired"}]


def test_many_sensors_cost_one_status_query_per_cache_period(eager, settings, make_sensor, ingest_key, post_json, django_assert_max_num_queries):
    from sensors import sensor_cache

    codes = [make_sensor(f"FLEET-{i}").sensor_id for i in range(50)]
    sensor_cache.clear()
    settings.INGEST_SENSOR_CACHE_SECONDS = 60
    sensor_cache.sensor_statuses(["FLEET-0"])  # the one snapshot load
    with django_assert_max_num_queries(0):
        assert sensor_cache.sensor_statuses(codes) == {code: "active" for code in codes}


def test_unknown_code_is_looked_up_once_per_cache_period(settings, sensor, django_assert_num_queries):
    from sensors import sensor_cache

    settings.INGEST_SENSOR_CACHE_SECONDS = 60
    sensor_cache.sensor_statuses([sensor.sensor_id])
    with django_assert_num_queries(1):
        assert sensor_cache.sensor_statuses(["TYPO-1"]) == {"TYPO-1": sensor_cache.UNKNOWN}
    with django_assert_num_queries(0):
        assert sensor_cache.sensor_statuses(["TYPO-1", sensor.sensor_id]) == {"TYPO-1": "", sensor.sensor_id: "active"}


# --- rate limits ---------------------------------------------------------------------------

def test_ingest_past_the_per_key_limit_is_a_429_with_retry_after(readings_topic, settings, sensor, make_key, post_json):
    settings.INGEST_RATE_LIMIT = "3/d"  # a day-long window: a boundary cannot fall inside the test
    key, other_key = make_key(scopes=("ingest",)), make_key(scopes=("ingest",), name="other")
    statuses = [post_json({"sensor_id": "RG-001", "timestamp": _ts(i), "rainfall": 1.0}, key=key).status_code for i in range(3)]
    assert statuses == [202, 202, 202]
    limited = post_json({"sensor_id": "RG-001", "timestamp": _ts(9), "rainfall": 1.0}, key=key)
    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 86400
    assert "detail" in limited.json()
    # The limit is per key: another gateway is unaffected.
    assert post_json({"sensor_id": "RG-001", "timestamp": _ts(8), "rainfall": 1.0}, key=other_key).status_code == 202


def test_ingestion_keeps_working_when_redis_is_down(readings_topic, settings, sensor, ingest_key, post_json):
    """Rate limiting fails open: an outage of Redis must not stop readings."""
    settings.INGEST_RATE_LIMIT = "1/m"
    dead = dict(settings.CACHES["default"], LOCATION="redis://127.0.0.1:1/0")
    settings.CACHES = {"default": dead}
    for i in range(3):
        response = post_json({"sensor_id": "RG-001", "timestamp": _ts(i), "rainfall": 1.0}, key=ingest_key)
        assert response.status_code == 202, response.content
