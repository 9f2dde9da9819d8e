"""SIGKILL of the consumer, repeatedly, mid-stream: every acknowledged reading stored once, alerts not duplicated.

``manage.py consume_readings`` runs as a subprocess on the test database and
is killed at seeded random points (by rows stored, so every kill lands inside
the stream); a fresh process resumes from the last committed offsets. The
readings cross each sensor's rainfall limit again and again, so alerts are
raised and resolved throughout the stream, also around the kills.
"""
from __future__ import annotations

import json
import random

import pytest

from sensors.models import Reading
from tests.kafka_utils import committed_offsets, create_test_topics, make_readings, produce_readings, wait_for

from .checks import exactly_once_counts

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

KILL_SEED = 20261101


@pytest.fixture
def alerting_sensors(make_sensor):
    """Sensors whose rainfall limit (40 mm/h) the test readings (rain = i % 50) cross every 50 readings."""

    def _make(count: int, prefix: str) -> list[str]:
        return [make_sensor(f"{prefix}-{i:02d}", rainfall_limit_mm_h=40, flood_stage_m=4.0).sensor_id for i in range(count)]

    return _make


def _committed(settings) -> dict[int, int]:
    return committed_offsets(group=settings.KAFKA_CONSUMER_GROUP, topic=settings.KAFKA_READINGS_TOPIC)


def test_consumer_killed_repeatedly_mid_stream_stores_each_acknowledged_reading_exactly_once(kafka_topics, alerting_sensors, consumers, record_counts):
    create_test_topics(partitions=3)
    readings = make_readings(alerting_sensors(20, "KILL"), per_sensor=1000)  # 20,000
    ends = produce_readings(readings)  # every one acknowledged by the broker (acks=all)
    kill_points = sorted(random.Random(KILL_SEED).sample(range(1_000, 18_000, 100), 4))

    kills = []
    for point in kill_points:
        process = consumers(batch_size=250)
        wait_for(lambda: Reading.objects.count() >= point, timeout=90, interval=0.02, message=f"{point} rows stored")
        process.kill()
        kills.append(Reading.objects.count())
    assert kills[-1] < len(readings), "the stream was drained before the last kill; the test proved nothing"

    last = consumers(batch_size=1000)
    wait_for(lambda: _committed(kafka_topics) == ends, timeout=120, interval=0.5, message="the last consumer to commit everything")
    assert last.terminate() == 0, last.log()

    counts = exactly_once_counts(readings)
    assert counts["alerts_raised"] > 0, "no alert was raised: the alert checks proved nothing"
    record_counts(acknowledged=len(readings), kill_points=kill_points, stored_at_kills=kills, **counts)


def _assigned(process) -> list[list[int]]:
    """Every partition list the process logged as assigned, in order."""
    events = []
    for line in process.log().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == "consumer.partitions_assigned":
            events.append(record["partitions"])
    return events


def test_surviving_consumer_of_a_group_takes_over_a_killed_members_partitions_exactly_once(kafka_topics, alerting_sensors, consumers, record_counts):
    create_test_topics(partitions=6)
    readings = make_readings(alerting_sensors(12, "PAIR"), per_sensor=800)  # 9,600

    survivor = consumers(batch_size=100)
    wait_for(lambda: _assigned(survivor), timeout=60, message="the first member to be assigned partitions")
    victim = consumers(batch_size=100)
    wait_for(lambda: _assigned(victim), timeout=60, message="the second member to be assigned partitions")
    victim_partitions = {p for event in _assigned(victim) for p in event}
    assert victim_partitions, "the second member got no partitions; nothing to take over"
    # Produce only once both members share the partitions, so the victim has work to die in.
    ends = produce_readings(readings)
    wait_for(lambda: Reading.objects.count() > 0, timeout=60, interval=0.02, message="first rows")
    victim.kill()
    stored_at_kill = Reading.objects.count()
    assert stored_at_kill < len(readings), "the stream was drained before the kill; the test proved nothing"

    wait_for(lambda: _committed(kafka_topics) == ends, timeout=120, interval=0.5, message="the survivor to commit everything")
    assert survivor.terminate() == 0, survivor.log()
    # Cooperative-sticky: the survivor kept its own partitions and was given the victim's incrementally.
    assert victim_partitions <= {p for event in _assigned(survivor)[1:] for p in event}

    counts = exactly_once_counts(readings)
    record_counts(acknowledged=len(readings), stored_at_kill=stored_at_kill, victim_partitions=sorted(victim_partitions), **counts)
