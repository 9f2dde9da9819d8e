"""warning_system.db.bulk_create_binary: what Django's bulk_create would have stored, pks included."""
import pytest
from django.utils import timezone

from alerts.models import Alert, AlertEvent
from warning_system.db import bulk_create_binary

pytestmark = pytest.mark.django_db


def test_binary_bulk_create_stores_what_bulk_create_would_and_sets_pks_in_order(make_sensor):
    sensors = [make_sensor(f"BC-{i}") for i in range(3)]
    now = timezone.now()
    alerts = [
        Alert(sensor=s, hazard=hazard, level="high", source="model", triggered_at=now, last_triggered_at=now,
              probability=None if i else 0.9, message=f"m{i}", features={"rain_72h": 1.5 * i, "none": None})
        for i, (s, hazard) in enumerate(zip(sensors, ("flood", "landslide", "flood")))
    ]
    events = [AlertEvent(alert=a, kind="raised", level=a.level, status=a.status, payload={"n": i}) for i, a in enumerate(alerts)]
    bulk_create_binary(Alert, alerts)
    bulk_create_binary(AlertEvent, events)  # the alerts' new pks become the events' alert_id

    for i, a in enumerate(alerts):
        stored = Alert.objects.get(pk=a.pk)
        assert (stored.sensor_id, stored.hazard, stored.message) == (sensors[i].pk, a.hazard, f"m{i}")
        assert stored.probability == (None if i else 0.9) and stored.features == {"rain_72h": 1.5 * i, "none": None}
        assert stored.created_at == stored.updated_at == a.created_at  # auto_now(_add) filled in
        assert stored.status == "open" and stored.clear_streak == 0  # model defaults
    for i, e in enumerate(events):
        stored = AlertEvent.objects.get(pk=e.pk)
        assert stored.alert_id == alerts[i].pk and stored.payload == {"n": i} and stored.published_at is None
        assert stored.at is not None
