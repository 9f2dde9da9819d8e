"""Keys (restriction to sensors, hashed, never shown again), CSRF, sessions (Redis in front of PostgreSQL), login rate limiting, model files."""
from __future__ import annotations

import logging
import shutil

import orjson
import pytest
from django.conf import settings as django_settings
from django.test import Client

from management.models import APIKey

pytestmark = pytest.mark.django_db


# --- device keys restricted to sensors ----------------------------------------------------

def test_key_restricted_to_a_sensor_cannot_post_for_or_read_any_other_sensor(scene, key_client, settings):
    settings.PIPELINE_EAGER = True
    own, other = scene["sensor"], scene["other_sensor"]
    device = key_client(scopes=("ingest", "read", "predict"), sensors=(own,))
    post = lambda path, body: device.post(path, orjson.dumps(body), content_type="application/json")  # noqa: E731

    assert post("/api/v1/sensor-data", {"sensor_id": own, "rainfall": 1.0}).status_code == 202
    assert post("/api/v1/sensor-data", {"sensor_id": other, "rainfall": 1.0}).status_code == 403
    assert post("/api/v1/sensor-data", [{"sensor_id": own, "rainfall": 2.0}, {"sensor_id": other, "rainfall": 2.0}]).status_code == 403
    assert post("/api/v1/predictions", {"sensor_id": own}).status_code == 200
    assert post("/api/v1/predictions", {"sensor_id": other}).status_code == 403
    for suffix in ("", "/readings", "/predictions"):
        assert device.get(f"/api/v1/sensors/{own}{suffix}").status_code == 200
        assert device.get(f"/api/v1/sensors/{other}{suffix}").status_code == 403
    assert [s["sensor_id"] for s in device.get("/api/v1/sensors").json()["results"]] == [own]
    listed = device.get("/api/v1/alerts").json()["results"]
    assert listed and {a["sensor_id"] for a in listed} == {own}
    assert device.get(f"/api/v1/alerts/{scene['alert']}").status_code == 200
    assert device.get(f"/api/v1/alerts/{scene['other_alert']}").status_code == 404
    assert device.get("/api/v1/alerts", {"sensor_id": other}).json()["results"] == []


# --- stored keys ----------------------------------------------------------------------------

def test_keys_are_stored_hashed_and_never_logged_or_shown_again(admin_client, make_sensor, caplog, settings):
    settings.PIPELINE_EAGER = True
    make_sensor("KEY-1")
    caplog.set_level(logging.DEBUG)
    response = admin_client.post("/admin/management/apikey/add/", {"name": "gateway-7", "scopes": ["ingest", "read"]}, follow=True)
    assert response.redirect_chain and response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]  # the one time the plain key is displayed
    plain = next(word for message in shown for word in message.split() if "." in word and len(word) > 30).strip(".,:")
    key = APIKey.objects.get(name="gateway-7")
    assert plain.startswith(key.prefix) and plain not in key.hashed_key and key.hashed_key.startswith(("pbkdf2", "sha512", "argon2"))

    api = Client(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    assert api.post("/api/v1/sensor-data", orjson.dumps({"sensor_id": "KEY-1", "rainfall": 1.0}), content_type="application/json").status_code == 202
    assert Client(HTTP_X_API_KEY=plain + "x").get("/api/v1/sensors").status_code == 401
    for page in (f"/admin/management/apikey/{key.pk}/change/", "/admin/management/apikey/"):
        assert plain.encode() not in admin_client.get(page).content
    logged = "\n".join(r.getMessage() + " " + repr(r.__dict__) for r in caplog.records)
    assert plain not in logged
    assert plain.split(".", 1)[1] not in logged  # not even the secret part


# --- CSRF, sessions, login rate limiting ------------------------------------------------------

def test_page_acknowledge_without_csrf_token_is_a_403_and_changes_nothing(scene, users):
    from alerts.models import Alert

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(users["staff"])
    response = browser.post(f"/alerts/{scene['alert']}/acknowledge", {"note": "no token"})
    assert response.status_code == 403
    assert Alert.objects.get(pk=scene["alert"]).status == Alert.Status.OPEN


def test_sessions_are_cached_in_redis_and_stored_in_postgresql(users):
    """With REDIS_URL set a session is a Redis key and a database row (the cookie flags of production: test_production_http.py)."""
    from django.contrib.sessions.models import Session
    from django_redis import get_redis_connection

    assert django_settings.SESSION_ENGINE == "django.contrib.sessions.backends.cached_db"
    browser = Client()
    assert browser.post("/accounts/login/", {"username": "analyst", "password": "analyst-password-1"}).status_code == 302
    session_key = browser.cookies[django_settings.SESSION_COOKIE_NAME].value
    assert get_redis_connection("default").keys(f"*{session_key}*")
    assert Session.objects.filter(session_key=session_key).exists()


def test_signed_in_analyst_stays_signed_in_when_redis_loses_the_session(users):
    """Redis keeps nothing on disk and evicts under its memory cap: losing the cached copy must not sign anyone out."""
    from django_redis import get_redis_connection

    browser = Client()
    assert browser.post("/accounts/login/", {"username": "analyst", "password": "analyst-password-1"}).status_code == 302
    session_key = browser.cookies[django_settings.SESSION_COOKIE_NAME].value
    redis = get_redis_connection("default")
    evicted = redis.keys(f"*{session_key}*")
    assert evicted and redis.delete(*evicted) == len(evicted)  # what a restart or an LRU eviction does
    page = browser.get("/")
    assert page.status_code == 200, page.status_code  # not a redirect to the sign-in page


@pytest.mark.parametrize("login_path", ["/accounts/login/", "/admin/login/"])
def test_failed_logins_are_rate_limited_per_ip_with_a_429(users, settings, login_path):
    settings.LOGIN_RATE_LIMIT = "3/d"  # a day-long window: a boundary cannot fall inside the test
    browser = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(3):
        assert browser.post(login_path, {"username": "staff", "password": "wrong"}).status_code == 200  # the form with an error
    refused = browser.post(login_path, {"username": "staff", "password": "staff-password-1"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "_auth_user_id" not in browser.session  # not even the right password gets in while limited
    other = Client(REMOTE_ADDR="198.51.100.4")
    assert other.post(login_path, {"username": "staff", "password": "staff-password-1"}).status_code == 302


def test_successful_logins_do_not_count_against_the_limit(users, settings):
    settings.LOGIN_RATE_LIMIT = "2/d"
    for _ in range(4):
        assert Client(REMOTE_ADDR="203.0.113.10").post("/accounts/login/", {"username": "analyst", "password": "analyst-password-1"}).status_code == 302


# --- model files ------------------------------------------------------------------------------

@pytest.fixture
def model_dir(tmp_path, settings):
    directory = tmp_path / "models"
    shutil.copytree(settings.MODEL_DIR, directory)
    return directory


def test_a_pickle_in_place_of_a_model_is_never_unpickled(model_dir, tmp_path):
    import pickle

    from predictions.scoring import ModelRegistry, ModelUnavailable

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (marker.touch, ())

    (model_dir / "landslide.ubj").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(ModelUnavailable):
        ModelRegistry(model_dir)
    assert not marker.exists()


def test_a_symlink_escaping_the_model_directory_is_not_loaded(model_dir, tmp_path):
    from predictions.scoring import ModelRegistry, ModelUnavailable

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for name in ("landslide.ubj", "landslide.json"):
        shutil.move(model_dir / name, outside / name)
        (model_dir / name).symlink_to(outside / name)
    with pytest.raises(ModelUnavailable):
        ModelRegistry(model_dir)
