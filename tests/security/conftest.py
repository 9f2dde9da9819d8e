"""Fixtures for the security tests: one principal of each kind and a scene of real objects to point URLs at."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone


@pytest.fixture
def scene(db, make_sensor, django_user_model):
    """A sensor with a stored, scored reading that raised an alert; ids for building URLs."""
    from django.contrib.auth.models import Group
    from django.contrib.contenttypes.models import ContentType

    from alerts.models import Alert
    from management.models import APIKey
    from management.services import api_key_create
    from predictions.models import Prediction
    from sensors.models import Reading, Sensor
    from sensors.pipeline import process_readings
    from sensors.records import ReadingIn

    sensor = make_sensor("SEC-001", flood_stage_m=4.0, rainfall_limit_mm_h=40)
    other = make_sensor("SEC-002", flood_stage_m=4.0, rainfall_limit_mm_h=40)
    now = timezone.now().replace(microsecond=0) - timedelta(minutes=10)
    for code in (sensor.sensor_id, other.sensor_id):
        process_readings(readings=[ReadingIn(sensor_id=code, timestamp=now, received_at=now, rainfall=80.0, water_level=6.0)])
    api_key, _ = api_key_create(name="scene", scopes=["read"])
    group = Group.objects.create(name="operators")
    fieldworker = django_user_model.objects.create_user("fieldworker", "f@example.org", "fieldworker-password-1")
    return {
        "sensor": sensor.sensor_id,
        "other_sensor": other.sensor_id,
        "alert": Alert.objects.filter(sensor=sensor).values_list("pk", flat=True).first(),
        "other_alert": Alert.objects.filter(sensor=other).values_list("pk", flat=True).first(),
        "obj_sensor": sensor.pk,
        "obj_site": sensor.site_id,
        "obj_reading": Reading.objects.filter(sensor=sensor).values_list("pk", flat=True).first(),
        "obj_prediction": Prediction.objects.filter(sensor=sensor).values_list("pk", flat=True).first(),
        "obj_alert": Alert.objects.filter(sensor=sensor).values_list("pk", flat=True).first(),
        "obj_apikey": api_key.pk,
        "obj_group": group.pk,
        "obj_user": fieldworker.pk,
        "ct_sensor": ContentType.objects.get_for_model(Sensor).pk,
    }


@pytest.fixture
def users(db, django_user_model):
    """analyst (active, not staff), staff (no model permissions), admin (superuser)."""
    return {
        "analyst": django_user_model.objects.create_user("analyst", "a@example.org", "analyst-password-1"),
        "staff": django_user_model.objects.create_user("staff", "s@example.org", "staff-password-1", is_staff=True),
        "admin": django_user_model.objects.create_superuser("admin", "root@example.org", "admin-password-1"),
    }


@pytest.fixture
def scope_keys(make_key):
    """One key per scope, each with that scope only, for every sensor."""
    return {f"key:{scope}": make_key(scopes=(scope,), name=f"only-{scope}") for scope in ("ingest", "read", "predict", "manage")}
