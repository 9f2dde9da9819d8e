"""API-key authentication and scope matrix, on the ingestion endpoint (real broker, PostgreSQL, Redis)."""
from __future__ import annotations

import time
from datetime import timedelta

import orjson
import pytest
from django.utils import timezone

from management.models import APIKey
from management.services import api_key_revoke
from tests.sensors.conftest import _forget_sensor_statuses, readings_topic  # noqa: F401  (shared fixtures)

URL = "/api/v1/sensor-data"
READING = orjson.dumps({"sensor_id": "RG-001", "rainfall": 2.0})


@pytest.fixture
def ingest(readings_topic, sensor, api_client):
    """POST one valid reading with the given headers; the topic exists, so a good key gets 202."""

    def _post(remote_addr: str = "10.0.0.1", **headers):
        return api_client.generic("POST", URL, READING, content_type="application/json", REMOTE_ADDR=remote_addr, **headers)

    return _post


def _assert_401(response):
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == "Api-Key"
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["detail"]


def test_missing_key_is_a_401_with_www_authenticate(ingest):
    _assert_401(ingest())


def test_unknown_key_is_a_401(ingest):
    _assert_401(ingest(HTTP_AUTHORIZATION="Api-Key abcdefgh.notarealkeyatall0000000000000000"))


def test_other_authorization_scheme_is_a_401(ingest, make_key):
    _assert_401(ingest(HTTP_AUTHORIZATION=f"Bearer {make_key(scopes=('ingest',))}"))


@pytest.mark.parametrize("header", ["HTTP_AUTHORIZATION", "HTTP_X_API_KEY"])
def test_both_header_forms_authenticate(ingest, make_key, header):
    key = make_key(scopes=("ingest",))
    value = f"Api-Key {key}" if header == "HTTP_AUTHORIZATION" else key
    response = ingest(**{header: value})
    assert response.status_code == 202, response.content


def test_key_revoked_through_the_service_is_refused_at_once(ingest, make_key):
    key = make_key(scopes=("ingest",))
    assert ingest(HTTP_X_API_KEY=key).status_code == 202
    api_key_revoke(keys=APIKey.objects.all())
    _assert_401(ingest(HTTP_X_API_KEY=key))


def test_key_revoked_elsewhere_is_refused_within_the_cache_bound(ingest, make_key, settings):
    """Another process revoking the key (a plain UPDATE here) takes effect within API_KEY_CACHE_SECONDS."""
    settings.API_KEY_CACHE_SECONDS = 1
    key = make_key(scopes=("ingest",))
    assert ingest(HTTP_X_API_KEY=key).status_code == 202
    APIKey.objects.update(revoked=True)  # no cache clear: as seen from another process
    assert ingest(HTTP_X_API_KEY=key).status_code == 202  # still cached, as documented
    time.sleep(1.05)
    _assert_401(ingest(HTTP_X_API_KEY=key))


def test_expired_key_is_a_401(ingest, make_key):
    key = make_key(scopes=("ingest",), expires_in_days=1)
    APIKey.objects.update(expiry_date=timezone.now() - timedelta(seconds=1))
    _assert_401(ingest(HTTP_X_API_KEY=key))


def test_cached_key_stops_working_when_it_expires(ingest, make_key, settings):
    settings.API_KEY_CACHE_SECONDS = 60
    key = make_key(scopes=("ingest",))
    APIKey.objects.update(expiry_date=timezone.now() + timedelta(seconds=0.5))
    assert ingest(HTTP_X_API_KEY=key).status_code == 202
    time.sleep(0.6)
    _assert_401(ingest(HTTP_X_API_KEY=key))


@pytest.mark.parametrize("scopes", [("read",), ("predict",), ("manage",), ("read", "predict", "manage")])
def test_key_without_ingest_scope_is_a_403(ingest, make_key, scopes):
    response = ingest(HTTP_X_API_KEY=make_key(scopes=scopes))
    assert response.status_code == 403
    assert "scope" in response.json()["detail"]


def test_device_key_may_post_only_for_its_sensors(ingest, make_key, make_sensor, api_client):
    make_sensor("OTHER-1")
    key = make_key(scopes=("ingest",), sensors=("RG-001",))
    assert ingest(HTTP_X_API_KEY=key).status_code == 202
    foreign = api_client.generic(
        "POST", URL, orjson.dumps([{"sensor_id": "RG-001", "rainfall": 1.0}, {"sensor_id": "OTHER-1", "rainfall": 1.0}]),
        content_type="application/json", HTTP_X_API_KEY=key,
    )
    assert foreign.status_code == 403
    assert "OTHER-1" in foreign.json()["detail"]


def test_device_key_gets_403_not_400_for_a_sensor_that_does_not_exist(ingest, make_key, api_client):
    """A restricted key learns nothing about which sensors exist outside its set."""
    key = make_key(scopes=("ingest",), sensors=("RG-001",))
    response = api_client.generic("POST", URL, orjson.dumps({"sensor_id": "GHOST-9", "rainfall": 1.0}), content_type="application/json", HTTP_X_API_KEY=key)
    assert response.status_code == 403


def test_failed_authentications_per_ip_are_rate_limited(ingest, make_key, settings):
    settings.AUTH_FAILURE_RATE_LIMIT = "3/d"  # a day-long window: a boundary cannot fall inside the test
    bad = {"HTTP_X_API_KEY": "abcdefgh.wrongwrongwrongwrongwrongwrong"}
    assert [ingest(remote_addr="10.9.9.9", **bad).status_code for _ in range(3)] == [401, 401, 401]
    limited = ingest(remote_addr="10.9.9.9", **bad)
    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 86400
    assert limited.json()["detail"]
    # Another address is unaffected, and a key already verified keeps working from the limited one.
    _assert_401(ingest(remote_addr="10.8.8.8", **bad))
    good = make_key(scopes=("ingest",))
    assert ingest(remote_addr="10.8.8.8", HTTP_X_API_KEY=good).status_code == 202
    assert ingest(remote_addr="10.9.9.9", HTTP_X_API_KEY=good).status_code == 202


def test_unverified_key_from_a_limited_ip_is_not_looked_up(ingest, make_key, settings):
    settings.AUTH_FAILURE_RATE_LIMIT = "2/d"
    bad = {"HTTP_X_API_KEY": "abcdefgh.wrongwrongwrongwrongwrongwrong"}
    assert [ingest(remote_addr="10.7.7.7", **bad).status_code for _ in range(2)] == [401, 401]
    good = make_key(scopes=("ingest",))  # never used before: not in the process cache
    assert ingest(remote_addr="10.7.7.7", HTTP_X_API_KEY=good).status_code == 429


def test_failed_authentication_without_a_client_address_is_401_not_500(api_client, db):
    """Some servers (unix sockets) set no or an empty REMOTE_ADDR; per-IP limits must cope."""
    from django.test import RequestFactory

    from management.ratelimit import client_ip

    request = RequestFactory().get("/api/v1/alerts")
    del request.META["REMOTE_ADDR"]
    assert client_ip("group", request) == "unknown"
    response = api_client.get("/api/v1/alerts", HTTP_AUTHORIZATION="Api-Key nope.nope", REMOTE_ADDR="")
    assert response.status_code == 401
