"""The consumer publishes alert events it did not write itself, even when no batch arrives."""
from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from alerts.models import Alert, AlertEvent
from sensors.models import Reading
from tests.kafka_utils import BASE_TIME, ThreadedConsumer, create_test_topics, make_readings, produce_readings, read_topic, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_idle_consumer_publishes_events_left_unpublished_by_the_api_within_the_sweep_interval(kafka_topics, sensor, settings):
    settings.KAFKA_OUTBOX_SWEEP_SECONDS = 0.5
    create_test_topics()
    produce_readings(make_readings([sensor.sensor_id], 2))
    with ThreadedConsumer():
        wait_for(lambda: Reading.objects.count() == 2, timeout=30, message="the readings stored")
        # As an acknowledge whose immediate publish failed (broker blip) leaves it:
        # committed, unpublished, and no further reading to trigger a batch.
        alert = Alert.objects.create(
            sensor=sensor, hazard="flood", level="high", source="threshold", triggered_at=BASE_TIME,
            last_triggered_at=BASE_TIME + timedelta(minutes=5), value=5.2, threshold=4.0, message="water level 5.2 m",
        )
        event = alert.events.create(kind="acknowledged", level="high", status="acknowledged", actor="duty officer")
        wait_for(lambda: AlertEvent.objects.filter(pk=event.pk, published_at__isnull=False).exists(), timeout=15,
                 message="the event published by the periodic sweep")

    mine = [m for m in map(orjson.loads, (m.value() for m in read_topic(kafka_topics.KAFKA_ALERTS_TOPIC, expected=1)))
            if m["event_id"] == event.id]
    assert len(mine) == 1
    assert (mine[0]["event"], mine[0]["actor"], mine[0]["sensor_id"]) == ("acknowledged", "duty officer", sensor.sensor_id)
