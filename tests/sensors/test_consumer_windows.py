"""The consumer's windows (predictions.windows) are forgotten whenever they may no longer be complete."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from predictions.models import Prediction
from sensors import pipeline
from sensors.consumer import ReadingsConsumer
from sensors.records import ReadingIn
from tests.kafka_utils import ThreadedConsumer, committed_offsets, create_test_topics, make_readings, produce_readings, wait_for


def _windowed(consumer: ReadingsConsumer) -> ReadingsConsumer:
    consumer._windows.put(1, start=0, us=np.array([10], dtype=np.int64), values=np.zeros((4, 1)))
    assert len(consumer._windows) == 1
    return consumer


def test_a_partition_assignment_change_forgets_every_window(kafka_topics):
    consumer = ReadingsConsumer()

    _windowed(consumer)._on_assign(None, [])
    assert len(consumer._windows) == 0 and consumer._windows.rows == 0

    _windowed(consumer)._on_revoke(None, [])
    assert len(consumer._windows) == 0 and consumer._windows.rows == 0


@pytest.mark.django_db(transaction=True)
def test_a_batch_retried_after_a_failure_gets_the_features_of_the_database_path(kafka_topics, make_sensor, monkeypatch):
    """The failed attempt's readings reached the windows before its rollback; the retry must not see them."""
    consumed, twin = make_sensor("CW-CONSUMED", flood_stage_m=4.0), make_sensor("CW-TWIN", flood_stage_m=4.0)
    create_test_topics(partitions=1)
    first = make_readings([consumed.sensor_id], 30)
    second = make_readings([consumed.sensor_id], 20, start=first[-1].timestamp + timedelta(minutes=5))
    evaluate = pipeline.alerts_evaluate_batch
    failures = []

    def fails_once_after_scoring(*, batch, **kwargs):
        if armed and not failures:
            failures.append(len(batch))
            raise RuntimeError("alerting stage failed after scoring")
        return evaluate(batch=batch, **kwargs)

    monkeypatch.setattr(pipeline, "alerts_evaluate_batch", fails_once_after_scoring)
    armed = False
    ends = produce_readings(first)

    def committed(expected):
        return lambda: committed_offsets(group=kafka_topics.KAFKA_CONSUMER_GROUP, topic=kafka_topics.KAFKA_READINGS_TOPIC) == expected

    with ThreadedConsumer() as threaded:
        wait_for(committed(ends), timeout=30, message="first readings committed")
        assert len(threaded.consumer._windows) == 1
        armed = True
        ends = produce_readings(second)
        wait_for(committed(ends), timeout=30, message="second readings committed after a retry")
    assert failures  # the batch did fail once after its readings reached the window

    def as_twin(readings):
        return [ReadingIn(twin.sensor_id, *(getattr(r, f) for f in r.__slots__[1:])) for r in readings]

    pipeline.process_readings(readings=as_twin(first))
    pipeline.process_readings(readings=as_twin(second))

    def predictions(sensor):
        return {p.timestamp: (p.features, p.landslide_probability, p.flood_probability) for p in Prediction.objects.filter(sensor=sensor)}

    assert predictions(consumed) == predictions(twin)
