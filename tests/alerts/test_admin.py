"""Alerts in the admin: triage lists, acknowledge/resolve actions through the services, read-only history."""
import pytest
from django.urls import reverse

from alerts.models import Alert

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:alerts_alert_changelist"


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("duty", "duty@example.org", "pw-for-tests-only")
    client.force_login(user)
    return client


def test_changelist_filters_and_searches_by_sensor_code(staff_client, sensor, make_sensor, make_alert):
    make_alert(sensor, hazard="flood", level="high")
    make_alert(make_sensor("SLP-77"), hazard="landslide", level="medium")
    url = reverse(CHANGELIST)

    assert staff_client.get(url).status_code == 200
    searched = staff_client.get(url, {"q": "SLP-77"})
    assert [a.sensor.sensor_id for a in searched.context["cl"].result_list] == ["SLP-77"]
    filtered = staff_client.get(url, {"hazard__exact": "flood", "level__exact": "high", "status__exact": "open", "source__exact": "model"})
    assert [a.sensor.sensor_id for a in filtered.context["cl"].result_list] == ["RG-001"]


def test_acknowledge_action_uses_the_service_with_the_username(staff_client, sensor, make_alert):
    alert = make_alert(sensor)

    response = staff_client.post(reverse(CHANGELIST), {"action": "acknowledge", "_selected_action": [alert.pk]})

    assert response.status_code == 302
    alert.refresh_from_db()
    assert (alert.status, alert.acknowledged_by) == ("acknowledged", "duty")
    assert alert.events.filter(kind="acknowledged", actor="duty").exists()


def test_resolve_action_skips_alerts_already_resolved(staff_client, sensor, make_sensor, make_alert):
    open_alert = make_alert(sensor)
    done = make_alert(make_sensor(), status="resolved")

    response = staff_client.post(reverse(CHANGELIST), {"action": "resolve", "_selected_action": [open_alert.pk, done.pk]}, follow=True)

    open_alert.refresh_from_db()
    assert (open_alert.status, open_alert.resolved_by) == ("resolved", "duty")
    assert done.events.filter(kind="resolved").count() == 0
    shown = [m.message for m in response.context["messages"]]
    assert "1 alert(s) resolved." in shown
    assert any(f"Skipped alert(s) {done.pk}" in m for m in shown)


def test_change_page_shows_history_read_only(staff_client, sensor, make_alert):
    alert = make_alert(sensor)
    alert.events.create(kind="acknowledged", level="medium", status="acknowledged", actor="maria", note="crew on site")

    response = staff_client.get(reverse("admin:alerts_alert_change", args=[alert.pk]))

    assert response.status_code == 200
    body = response.content.decode()
    assert "crew on site" in body and "maria" in body
    assert 'name="events-0-note"' not in body  # events are shown, not editable


def test_alerts_cannot_be_added_or_deleted_by_hand(staff_client, sensor, make_alert):
    alert = make_alert(sensor)

    assert staff_client.get(reverse("admin:alerts_alert_add")).status_code == 403
    assert staff_client.get(reverse("admin:alerts_alert_delete", args=[alert.pk])).status_code == 403
    assert Alert.objects.filter(pk=alert.pk).exists()
