"""The admin is where field staff work: every page loads, actions do what they say."""
from datetime import timedelta

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from sensors.models import Reading, Sensor

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("fieldstaff", "f@example.org", "pw-for-tests-only")
    client.force_login(user)
    return client


@pytest.fixture
def populated(sensor, make_key):
    from django.contrib.auth.models import Group

    from alerts.models import Alert
    from predictions.models import Prediction

    now = timezone.now()
    Reading.objects.create(sensor=sensor, timestamp=now, received_at=now, rainfall=3.0, water_level=1.5)
    Prediction.objects.create(sensor=sensor, timestamp=now, landslide_probability=0.1, flood_probability=0.2,
                              landslide_risk="low", flood_risk="low", landslide_model_version="v", flood_model_version="v")
    alert = Alert.objects.create(sensor=sensor, hazard="flood", level="high", source="threshold", triggered_at=now, last_triggered_at=now)
    alert.events.create(kind="raised", level="high", status="open")
    Group.objects.create(name="field staff")
    make_key(name="populated")
    return sensor


def _registered_models():
    return [model for model in admin.site._registry]


@pytest.mark.parametrize("model", _registered_models(), ids=lambda m: m._meta.label)
def test_admin_changelist_loads(staff_client, populated, model):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    assert staff_client.get(url).status_code == 200


@pytest.mark.parametrize("model", _registered_models(), ids=lambda m: m._meta.label)
def test_admin_add_page_loads_or_is_forbidden_for_system_written_models(staff_client, populated, model):
    """Readings, predictions and alerts are written by the pipeline only; everything else can be added."""
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")
    system_written = {"sensors.Reading", "predictions.Prediction", "alerts.Alert"}
    expected = 403 if model._meta.label in system_written else 200
    assert staff_client.get(url).status_code == expected


@pytest.mark.parametrize("model", _registered_models(), ids=lambda m: m._meta.label)
def test_admin_change_page_loads(staff_client, populated, model):
    obj = model.objects.first()
    assert obj is not None, f"no {model._meta.label} row to open"
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[obj.pk])
    assert staff_client.get(url).status_code == 200


def test_sensor_changelist_shows_latest_reading(staff_client, populated):
    body = staff_client.get(reverse("admin:sensors_sensor_changelist")).content.decode()
    assert "rain 3" in body and "level 1.5" in body


@pytest.mark.parametrize("action,status", [("put_in_maintenance", "maintenance"), ("retire", "retired"), ("activate", "active")])
def test_sensor_bulk_actions_change_status(staff_client, make_sensor, action, status):
    sensors = [make_sensor(), make_sensor()]
    if status == "active":
        Sensor.objects.update(status="retired")
    response = staff_client.post(
        reverse("admin:sensors_sensor_changelist"),
        {"action": action, "_selected_action": [s.pk for s in sensors]},
    )
    assert response.status_code == 302
    assert set(Sensor.objects.values_list("status", flat=True)) == {status}


def test_readings_changelist_defaults_to_recent_period(staff_client, sensor):
    now = timezone.now()
    Reading.objects.create(sensor=sensor, timestamp=now - timedelta(days=3), received_at=now, rainfall=7.25)
    Reading.objects.create(sensor=sensor, timestamp=now - timedelta(hours=1), received_at=now, rainfall=1.25)
    body = staff_client.get(reverse("admin:sensors_reading_changelist")).content.decode()
    assert "1.25" in body and "7.25" not in body
    body = staff_client.get(reverse("admin:sensors_reading_changelist") + "?period=7d").content.decode()
    assert "7.25" in body


def test_api_key_created_in_admin_is_shown_once_and_works(staff_client, sensor):
    from management.authentication import authenticate_key
    from management.models import APIKey

    response = staff_client.post(
        reverse("admin:management_apikey_add"),
        {"name": "gateway-7", "scopes": ["ingest"], "sensors": [sensor.pk]},
        follow=True,
    )
    assert response.status_code == 200
    api_key = APIKey.objects.get(name="gateway-7")
    shown = [m.message for m in response.context["messages"]]
    plain = next(word for m in shown for word in m.split() if word.startswith(api_key.prefix + "."))
    principal = authenticate_key(plain.rstrip("."))
    assert principal is not None and principal.scopes == {"ingest"} and principal.sensors == {sensor.sensor_id}
    # The stored key is a hash, never the plain key.
    assert plain not in api_key.hashed_key
    page = staff_client.get(reverse("admin:management_apikey_change", args=[api_key.pk])).content.decode()
    assert plain.rstrip(".") not in page


def test_api_key_revoke_action(staff_client, make_key):
    from management.authentication import authenticate_key
    from management.models import APIKey

    plain = make_key(name="to-revoke")
    api_key = APIKey.objects.get(name="to-revoke")
    staff_client.post(reverse("admin:management_apikey_changelist"), {"action": "revoke", "_selected_action": [api_key.pk]})
    api_key.refresh_from_db()
    assert api_key.revoked
    assert authenticate_key(plain) is None
