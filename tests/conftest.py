"""Shared fixtures. Integration tests run against the real PostgreSQL, Redis and broker.

``make test`` sets DATABASE_URL, REDIS_URL and KAFKA_BOOTSTRAP_SERVERS; the
session fixture below refuses to run silently on the embedded defaults, so a
missing service is a loud failure naming it, never a skipped suite.
"""
from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache

from management.authentication import key_cache

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import services as _services  # noqa: E402  (scripts/services.py: broker start/stop shared with make test)

REQUIRED_ENV = ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS")


def pytest_sessionstart(session):
    missing = [name for name in REQUIRED_ENV if not os.environ.get(name)]
    if missing and not os.environ.get("WARNING_SYSTEM_ALLOW_EMBEDDED_TESTS"):
        raise pytest.UsageError(
            "The suite runs against real services; set " + ", ".join(missing) + " (make test does)."
        )


@pytest.fixture(autouse=True)
def _clean_caches():
    """Each test starts with empty caches (the test Redis DB is shared across tests)."""
    from alerts.cache import page_writes as alert_page_writes
    from management.ratelimit import leases_clear
    from predictions.serving import memo as prediction_memo
    from predictions.serving import shared_writes as prediction_writes
    from sensors import sensor_cache

    prediction_writes.flush()  # a previous test's results must not land after the clear
    alert_page_writes.flush()
    cache.clear()
    key_cache.clear()
    sensor_cache.clear()
    prediction_memo.clear()
    leases_clear()
    yield
    key_cache.clear()
    sensor_cache.clear()


@pytest.fixture
def site(db):
    from sensors.models import Site

    return Site.objects.create(name=f"Site {uuid.uuid4().hex[:6]}", region="Test", latitude=10.0, longitude=20.0)


@pytest.fixture
def make_sensor(db, site):
    from sensors.models import Sensor

    def _make(sensor_id: str | None = None, **kwargs):
        kwargs.setdefault("site", site)
        return Sensor.objects.create(sensor_id=sensor_id or f"S-{uuid.uuid4().hex[:8]}", **kwargs)

    return _make


@pytest.fixture
def sensor(make_sensor):
    return make_sensor("RG-001", flood_stage_m=4.0, rainfall_limit_mm_h=40, ground_movement_limit_mm_h=5, soil_moisture_limit=0.45)


@pytest.fixture
def make_key(db):
    """Create an API key; returns the plain key."""
    from management.services import api_key_create

    def _make(scopes=("ingest", "read", "predict", "manage"), sensors=(), expires_in_days=None, name="test"):
        _, plain = api_key_create(name=name, scopes=scopes, sensor_ids=sensors, expires_in_days=expires_in_days)
        return plain

    return _make


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def key_client(make_key):
    """An APIClient authenticated with a key of the given scopes."""
    from rest_framework.test import APIClient

    def _client(scopes=("ingest", "read", "predict", "manage"), sensors=()):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {make_key(scopes=scopes, sensors=sensors)}")
        return client

    return _client


@pytest.fixture
def staff_user(db, django_user_model):
    return django_user_model.objects.create_user("analyst", "analyst@example.org", "correct-horse-battery", is_staff=True)


@pytest.fixture
def kafka_topics(settings):
    """Fresh, uniquely named topics for one test, so tests never see each other's messages."""
    suffix = uuid.uuid4().hex[:10]
    settings.KAFKA_READINGS_TOPIC = f"test.sensor.data.{suffix}"
    settings.KAFKA_ALERTS_TOPIC = f"test.alerts.{suffix}"
    settings.KAFKA_DLQ_TOPIC = f"test.sensor.data.dlq.{suffix}"
    settings.KAFKA_CONSUMER_GROUP = f"test-group-{suffix}"
    settings.PIPELINE_EAGER = False
    return settings


class PrivateBroker:
    """A Kafka-protocol broker (tansu) owned by one test, which may stop and restart it.

    Tests of broker outages must not take down the shared broker the rest of
    the suite uses. Tansu keeps data in memory, so a restart starts empty.
    """

    def __init__(self, port: int):
        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"
        self.proc = None

    def start(self) -> None:
        self.proc = _services.start_broker("127.0.0.1", self.port, log_path=f"/tmp/warning-system-broker-{self.port}.log")

    def stop(self) -> None:
        if self.proc is not None:
            _services.stop(self.proc)
            self.proc = None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_broker(settings):
    """A started private broker; settings point the app at it. Stopped after the test."""
    broker = PrivateBroker(_free_port())
    broker.start()
    settings.KAFKA_BOOTSTRAP_SERVERS = broker.bootstrap
    settings.PIPELINE_EAGER = False
    yield broker
    broker.stop()


@pytest.fixture
def consumers():
    """Start ``manage.py consume_readings`` subprocesses; any still running are killed after the test."""
    from tests.kafka_utils import ConsumerProcess

    started: list = []

    def _start(**options):
        process = ConsumerProcess(**options).start()
        started.append(process)
        return process

    yield _start
    for process in started:
        process.ensure_stopped()
