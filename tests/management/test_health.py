"""GET /api/v1/health: dependency checks against the real PostgreSQL, Redis, broker and models."""
from __future__ import annotations

import pytest

from management import health
from predictions.scoring import reset_registry

URL = "/api/v1/health"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_state():
    """Health remembers the broker answer for 2 s and the models registry per process: start clean."""
    reset_registry()
    health._broker_state.update(checked=0.0, servers=None, result=None)
    yield
    reset_registry()
    health._broker_state.update(checked=0.0, servers=None, result=None)


def test_health_is_ok_when_every_dependency_answers(api_client, settings):
    settings.PIPELINE_EAGER = False
    response = api_client.get(URL)
    assert response.status_code == 200, response.content
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "cache": "ok", "models": "ok", "broker": "ok"},
    }


def test_health_needs_no_key(api_client, settings):
    settings.PIPELINE_EAGER = False
    response = api_client.get(URL, HTTP_X_API_KEY="not-a-key")
    assert response.status_code == 200


def test_stopped_broker_makes_health_503_naming_the_broker(private_broker, api_client):
    assert api_client.get(URL).status_code == 200
    private_broker.stop()
    health._broker_state.update(checked=0.0, servers=None, result=None)  # skip the 2 s memo
    response = api_client.get(URL)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"]["broker"] == "error"
    assert "broker" in body["errors"]["broker"]
    assert body["checks"]["database"] == "ok"


def test_broker_check_is_skipped_in_eager_mode(api_client, settings):
    settings.PIPELINE_EAGER = True
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"  # would fail if it were checked
    response = api_client.get(URL)
    assert response.status_code == 200
    assert response.json()["checks"]["broker"] == "skipped (eager mode)"


def test_redis_down_is_degraded_not_fatal(api_client, settings):
    settings.PIPELINE_EAGER = False
    settings.CACHES = {"default": dict(settings.CACHES["default"], LOCATION="redis://127.0.0.1:1/0")}
    response = api_client.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["cache"] == "error"
    assert "redis" in body["errors"]["cache"]


def test_missing_models_make_health_503_naming_the_models(api_client, settings, tmp_path):
    settings.PIPELINE_EAGER = False
    settings.MODEL_DIR = tmp_path
    response = api_client.get(URL)
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["models"] == "error"
    assert "model" in body["errors"]["models"]
