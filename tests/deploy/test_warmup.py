"""A server worker connects its producer and loads models and sensors before its first request."""
from __future__ import annotations

import pytest

from sensors import producer as producer_module
from sensors import sensor_cache
from warning_system import warmup

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_producer():
    producer_module.producer_close(timeout=0.5)
    sensor_cache.clear()
    yield
    producer_module.producer_close(timeout=0.5)
    sensor_cache.clear()


def test_worker_warmup_connects_the_producer_and_loads_models_and_sensors(no_producer, kafka_topics, sensor):
    assert producer_module._current is None
    assert warmup.worker_warmup() == {"producer": True, "models": True, "sensors": True}
    assert producer_module._current is not None
    assert sensor_cache._snapshot is not None and sensor.sensor_id in sensor_cache._snapshot.statuses


def test_worker_warmup_survives_an_unreachable_broker(no_producer, kafka_topics, monkeypatch, sensor):
    kafka_topics.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"  # nothing listens there
    monkeypatch.setattr(warmup, "WARMUP_BROKER_TIMEOUT_SECONDS", 1.0)
    done = warmup.worker_warmup()
    assert done == {"producer": False, "models": True, "sensors": True}


def test_eager_mode_warms_no_producer(no_producer, settings):
    settings.PIPELINE_EAGER = True
    assert "producer" not in warmup.worker_warmup()
    assert producer_module._current is None
