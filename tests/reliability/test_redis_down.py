"""Redis down: ingestion, the API and the pages keep working; limits and caches fail open.

The shared Redis cannot be stopped, so the default cache (and REDIS_URL) is
pointed at a port nothing listens on, with the same options (short timeouts,
IGNORE_EXCEPTIONS). Every endpoint is walked; none may answer 5xx. Sessions
are stored in PostgreSQL behind the Redis cache, so signing in still works.
"""
from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from django.test import Client
from rest_framework.test import APIClient

from alerts.models import Alert
from management import ratelimit
from sensors.models import Reading

pytestmark = pytest.mark.django_db


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_down(settings, monkeypatch):
    """Point the cache and REDIS_URL at a dead port; put the ingest limiter's breaker back afterwards."""
    monkeypatch.setattr(ratelimit, "_breaker_open_until", 0.0)

    def _down() -> None:
        dead = f"redis://127.0.0.1:{_unused_port()}/0"
        settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": dead}}
        settings.REDIS_URL = dead

    return _down


def test_every_endpoint_works_or_fails_cleanly_while_redis_is_down(redis_down, settings, make_sensor, make_key, django_user_model, record_counts):
    settings.PIPELINE_EAGER = True
    settings.INGEST_RATE_LIMIT = "2/m"  # would refuse the third request if the limiter were working
    make_sensor("RD-1", flood_stage_m=4.0)
    staff = django_user_model.objects.create_user("duty", "d@example.org", "duty-officer-password", is_staff=True)
    browser = Client()
    assert browser.login(username="duty", password="duty-officer-password")  # session stored while Redis is up
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {make_key()}")

    redis_down()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    posted = []
    for i in range(5):
        reading = {"sensor_id": "RD-1", "timestamp": (start + timedelta(minutes=i)).isoformat(), "water_level": 6.0}
        response = api.post("/api/v1/sensor-data", orjson.dumps(reading), content_type="application/json")
        assert response.status_code == 202, response.content  # rate limit fails open
        posted.append(reading)
    assert Reading.objects.count() == len(posted)
    alert = Alert.objects.get(sensor__sensor_id="RD-1")

    health = api.get("/api/v1/health")
    assert health.status_code == 200 and health.json()["status"] == "degraded" and health.json()["checks"]["cache"] == "error"
    for path in ("/api/v1/alerts", "/api/v1/alerts?status=open", f"/api/v1/alerts/{alert.pk}", "/api/v1/sensors", "/api/v1/sensors/RD-1",
                 "/api/v1/sensors/RD-1/readings", "/api/v1/sensors/RD-1/predictions", "/api/v1/model-info", "/api/v1/schema/"):
        response = api.get(path)
        assert response.status_code == 200, (path, response.status_code, response.content[:200])
    assert api.get("/api/v1/alerts").json()["count"] == 1  # uncached, still correct
    assert api.post("/api/v1/predictions", orjson.dumps({"sensor_id": "RD-1"}), content_type="application/json").status_code == 200
    ack = api.post(f"/api/v1/alerts/{alert.pk}/acknowledge", orjson.dumps({"note": "on it"}), content_type="application/json")
    assert ack.status_code == 200 and ack.json()["status"] == "acknowledged"

    # Pages: the session is read from PostgreSQL, so the duty officer stays signed in and can still act;
    # a fresh sign-in works too (pages and admin) and its session is usable.
    page = browser.get("/")
    assert page.status_code == 200, page.status_code
    assert Client().get("/accounts/login/").status_code == 200
    for login, home in (("/accounts/login/", "/"), ("/admin/login/", "/admin/")):
        fresh = Client()
        response = fresh.post(login, {"username": staff.username, "password": "duty-officer-password"})
        assert response.status_code == 302, (login, response.status_code, response.content[:200])
        assert fresh.get(home).status_code == 200, login
    record_counts(sent=len(posted), acknowledged=len(posted), stored=Reading.objects.count(), duplicates=0)
