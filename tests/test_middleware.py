"""Project middleware: API responses are freed by reference counting, and the API-key fast path keeps the full stack's checks."""
from __future__ import annotations

import gc
from datetime import timedelta

import orjson
import pytest
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.inprocess import wsgi_call


def _call(app, *, method: str, path: str, key: str, query: str = "", body: bytes = b"") -> str:
    """One request through the WSGI app as gunicorn passes it (no test client: it keeps its own references)."""
    statuses = []
    wsgi_call(app, lambda status, headers, exc_info=None: statuses.append(status), method=method, path=path, key=key, query=query, body=body)
    return statuses[0]


@pytest.fixture
def wsgi_app(settings):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "bench"]  # the host bench.inprocess.wsgi_call sends
    # As Django's test client does: the test's transaction must outlive each request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield WSGIHandler()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _cyclic_drf_objects(requests, kinds=(Response, Request, APIView)) -> list[str]:
    """Names of DRF views, requests and responses that only the cycle collector would free.

    The requests run once before the baseline collection, so whatever a first
    request sets up or releases (caches, lazily built schema objects) is not counted.
    """
    requests()
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        requests()
        gc.collect()
        return sorted({type(o).__name__ for o in gc.garbage if isinstance(o, kinds)})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def test_readings_page_is_freed_when_the_request_ends(wsgi_app, sensor, make_key):
    from sensors.models import Reading

    now = timezone.now()
    Reading.objects.bulk_create(
        Reading(sensor=sensor, timestamp=now - timedelta(minutes=i), received_at=now, rainfall=1.0) for i in range(50)
    )
    key = make_key(scopes=("read",))

    def requests():
        for _ in range(3):
            assert _call(wsgi_app, method="GET", path=f"/api/v1/sensors/{sensor.sensor_id}/readings", key=key, query="limit=20") == "200 OK"

    assert _cyclic_drf_objects(requests) == []


def test_ingest_batch_is_freed_when_the_request_ends(wsgi_app, sensor, make_key, kafka_topics):
    key = make_key(scopes=("ingest",))
    start = timezone.now() - timedelta(hours=1)

    def requests():
        for n in range(3):
            body = orjson.dumps([
                {"sensor_id": sensor.sensor_id, "timestamp": (start + timedelta(seconds=n * 100 + i)).isoformat(), "rainfall": 1.0}
                for i in range(100)
            ])
            assert _call(wsgi_app, method="POST", path="/api/v1/sensor-data", key=key, body=body) == "202 Accepted"

    assert _cyclic_drf_objects(requests) == []


def test_alert_list_is_freed_when_the_request_ends(wsgi_app, make_key):
    key = make_key(scopes=("read",))

    def requests():
        for _ in range(3):  # a miss, then hits of the rendered-page cache
            assert _call(wsgi_app, method="GET", path="/api/v1/alerts", key=key, query="status=open") == "200 OK"

    # django-filter's FilterSet and its filters reference each other and the
    # request (small objects, freed by the collector); the page itself must not wait.
    assert _cyclic_drf_objects(requests, kinds=(Response, APIView)) == []


def test_api_errors_are_freed_when_the_request_ends(wsgi_app, make_key):
    key = make_key(scopes=("read",))

    def requests():
        for _ in range(3):
            assert _call(wsgi_app, method="GET", path="/api/v1/sensors/NO-SUCH/readings", key=key) == "404 Not Found"
            assert _call(wsgi_app, method="GET", path="/api/v1/alerts", key="not-a-key") == "401 Unauthorized"

    assert _cyclic_drf_objects(requests) == []


@pytest.mark.parametrize("query", ["sensor_id=%00", "status=open&hazard=fl%00od"])
def test_nul_in_an_alert_filter_is_a_400_with_a_key_or_a_session(api_client, make_key, staff_user, query):
    key = make_key(scopes=("read",))
    with_key = api_client.get(f"/api/v1/alerts?{query}", HTTP_AUTHORIZATION=f"Api-Key {key}")
    api_client.force_login(staff_user)
    with_session = api_client.get(f"/api/v1/alerts?{query}")
    for response in (with_key, with_session):
        assert response.status_code == 400
        assert "NUL" in response.json()["detail"]


def test_alert_csv_export_streams_through_the_api_key_path(api_client, make_key):
    key = make_key(scopes=("read",))
    response = api_client.get("/api/v1/alerts?format=csv", HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert response.status_code == 200 and response.streaming
    assert b"".join(response.streaming_content).startswith(b"id,")
    assert response["X-Content-Type-Options"] == "nosniff"  # the fast path keeps the security headers


def test_a_sensor_readings_page_with_a_key_takes_the_fast_path_with_the_stacks_headers_and_errors(api_client, make_key, sensor):
    """The per-sensor pages skip the session/CSRF/auth middleware for API keys, and answer as the full stack would."""
    from django.contrib.sessions.middleware import SessionMiddleware

    key = make_key(scopes=("read",))
    calls = []
    original = SessionMiddleware.process_request
    SessionMiddleware.process_request = lambda self, request: calls.append(request.path) or original(self, request)
    try:
        ok = api_client.get(f"/api/v1/sensors/{sensor.sensor_id}/readings?limit=5", HTTP_AUTHORIZATION=f"Api-Key {key}")
        predictions = api_client.get(f"/api/v1/sensors/{sensor.sensor_id}/predictions", HTTP_AUTHORIZATION=f"Api-Key {key}")
        unknown = api_client.get("/api/v1/sensors/NOPE-1/readings", HTTP_AUTHORIZATION=f"Api-Key {key}")
        bad = api_client.get(f"/api/v1/sensors/{sensor.sensor_id}/readings?limit=0", HTTP_AUTHORIZATION=f"Api-Key {key}")
        no_key = api_client.get(f"/api/v1/sensors/{sensor.sensor_id}/readings")
    finally:
        SessionMiddleware.process_request = original
    assert calls == [f"/api/v1/sensors/{sensor.sensor_id}/readings"]  # only the request without a key took the full stack
    assert ok.status_code == 200 and ok.json()["sensor_id"] == sensor.sensor_id
    assert predictions.status_code == 200
    assert unknown.status_code == 404 and "NOPE-1" in unknown.json()["detail"]
    assert bad.status_code == 400
    assert no_key.status_code == 401
    for response in (ok, unknown, bad):
        assert response["X-Content-Type-Options"] == "nosniff" and response["X-Frame-Options"] == "DENY"
        assert int(response["Content-Length"]) == len(response.content)


def test_a_sensor_code_the_urlconf_does_not_match_falls_back_to_the_full_stack(api_client, make_key):
    key = make_key(scopes=("read",))
    response = api_client.get("/api/v1/sensors/a/b/readings", HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert response.status_code == 404
