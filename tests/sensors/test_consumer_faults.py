"""The consumer process under faults: SIGKILL and restart, SIGTERM, PostgreSQL connections terminated.

Each test runs ``manage.py consume_readings`` as a subprocess against the
test database, so the process really dies or really loses its connections.
"""
from __future__ import annotations

import time

import pytest
from django.db import connection

from sensors.models import Reading
from tests.kafka_utils import committed_offsets, create_test_topics, make_readings, produce_readings, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]



@pytest.fixture
def stream(kafka_topics, make_sensor):
    """Produce ``per_sensor`` readings for each of 10 sensors; returns (readings, end offsets)."""
    create_test_topics(partitions=3)

    def _produce(per_sensor: int):
        codes = [make_sensor(f"FS-{i:02d}").sensor_id for i in range(10)]
        readings = make_readings(codes, per_sensor)
        return readings, produce_readings(readings)

    return _produce


def _stored() -> list[tuple[str, object]]:
    return list(Reading.objects.values_list("sensor__sensor_id", "timestamp"))


def _committed(settings) -> dict[int, int]:
    return committed_offsets(group=settings.KAFKA_CONSUMER_GROUP, topic=settings.KAFKA_READINGS_TOPIC)


def test_killed_and_restarted_consumer_stores_every_reading_exactly_once(kafka_topics, stream, consumers):
    readings, ends = stream(per_sensor=1000)

    first = consumers(batch_size=100)
    wait_for(lambda: Reading.objects.exists(), timeout=40, interval=0.05, message="first rows from the first consumer")
    first.kill()
    stored_at_kill = Reading.objects.count()
    assert stored_at_kill < len(readings), "the consumer finished before it was killed; the test proved nothing"

    second = consumers(batch_size=1000)
    wait_for(lambda: _committed(kafka_topics) == ends, timeout=60, interval=0.5, message="the restarted consumer to commit everything")
    assert second.terminate() == 0

    stored = _stored()
    assert len(stored) == len(readings)
    assert set(stored) == {(r.sensor_id, r.timestamp) for r in readings}


def test_sigterm_commits_the_current_batch_and_exits_zero(kafka_topics, stream, consumers):
    readings, ends = stream(per_sensor=1000)

    process = consumers(batch_size=50)
    wait_for(lambda: Reading.objects.exists(), timeout=40, interval=0.05, message="first rows")
    assert process.terminate() == 0, process.log()

    committed = _committed(kafka_topics)
    stored = Reading.objects.count()
    # Every stored reading is committed and nothing unstored is: readings are
    # unique and offsets start at 0, so committed offsets add up to the rows.
    assert 0 < stored < len(readings)
    assert sum(committed.values()) == stored
    assert "consumer.stopped" in process.log()


def test_terminated_database_connections_are_retried_without_loss_or_duplicates(kafka_topics, stream, consumers):
    readings, ends = stream(per_sensor=800)
    process = consumers(batch_size=100)

    # Cut every connection of the consumer, again and again, until one cut
    # lands inside a batch (the consumer logs the failed batch and retries).
    database = connection.settings_dict["NAME"]
    deadline = time.monotonic() + 45
    while "consumer.batch_failed" not in process.log():
        assert time.monotonic() < deadline, "no batch failed: the connections were never cut inside a batch"
        assert process.proc.poll() is None, process.log()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [database],
            )
        time.sleep(0.05)
    assert Reading.objects.count() < len(readings), "the stream was done before the cut; the test proved nothing"

    wait_for(lambda: _committed(kafka_topics) == ends, timeout=60, interval=0.5, message="the consumer to catch up")
    assert process.terminate() == 0

    stored = _stored()
    assert len(stored) == len(readings)
    assert set(stored) == {(r.sensor_id, r.timestamp) for r in readings}
