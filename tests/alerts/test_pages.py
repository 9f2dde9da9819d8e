"""Analyst pages: login, rendering with data, filters, the live fragment, staff-only actions."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from alerts.models import Alert, AlertEvent
from sensors.models import Sensor
from tests.browser_conftest import alert_scene, analyst_user  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def viewer_client(client, analyst_user):
    client.force_login(analyst_user)
    return client


def _alert(sensor, *, hazard="flood", level="medium", status=Alert.Status.OPEN, hours_ago=1, message=""):
    at = timezone.now() - timedelta(hours=hours_ago)
    return Alert.objects.create(sensor=sensor, hazard=hazard, level=level, source=Alert.Source.THRESHOLD, status=status,
                                triggered_at=at, last_triggered_at=at, message=message or f"{hazard} {level} at {sensor.sensor_id}")


def test_pages_redirect_anonymous_users_to_login(client, alert_scene):
    for url in (reverse("dashboard"), reverse("open-alerts-partial"), reverse("alert-list"),
                reverse("alert-detail", args=[alert_scene.alert.pk]), reverse("sensor-list"),
                reverse("sensor-detail", args=["RG-001"])):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url


def test_anonymous_acknowledge_is_redirected_and_changes_nothing(client, alert_scene):
    response = client.post(reverse("alert-acknowledge", args=[alert_scene.alert.pk]), {"note": "x"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    alert_scene.alert.refresh_from_db()
    assert alert_scene.alert.status == Alert.Status.OPEN


def test_login_page_renders_and_logs_in(client, staff_user):
    page = client.get(reverse("login"))
    assert page.status_code == 200 and b'name="username"' in page.content and b"csrfmiddlewaretoken" in page.content
    response = client.post(reverse("login"), {"username": "analyst", "password": "correct-horse-battery"})
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")


def test_dashboard_counts_active_alerts_by_hazard_and_level(staff_client, make_sensor):
    a, b = make_sensor("A-1"), make_sensor("B-1")
    _alert(a, hazard="flood", level="medium")
    _alert(b, hazard="flood", level="high", status=Alert.Status.ACKNOWLEDGED)
    _alert(a, hazard="landslide", level="high")
    _alert(b, hazard="landslide", level="high", status=Alert.Status.RESOLVED)
    response = staff_client.get(reverse("dashboard"))
    assert response.status_code == 200
    grid = {row["hazard"]: {cell["level"]: cell["count"] for cell in row["levels"]} for row in response.context["grid"]}
    assert grid == {"landslide": {"medium": 0, "high": 1}, "flood": {"medium": 1, "high": 1}, "no_data": {"medium": 0, "high": 0}}
    html = response.content.decode()
    assert 'data-count="flood-total">2<' in html
    assert 'data-refresh-url="/partials/open-alerts"' in html
    assert len(response.context["alerts"]) == 3  # the resolved one is not on the dashboard


def test_dashboard_filters_open_alerts(staff_client, make_sensor):
    a, b = make_sensor("A-1"), make_sensor("B-1")
    _alert(a, hazard="flood", message="flood at A")
    _alert(b, hazard="landslide", message="slide at B")
    response = staff_client.get(reverse("dashboard"), {"hazard": "landslide"})
    assert [x.sensor.sensor_id for x in response.context["alerts"]] == ["B-1"]
    response = staff_client.get(reverse("dashboard"), {"sensor_id": "A-1"})
    assert [x.sensor.sensor_id for x in response.context["alerts"]] == ["A-1"]


def test_open_alerts_partial_returns_the_table_fragment(staff_client, alert_scene):
    response = staff_client.get(reverse("open-alerts-partial"), {"hazard": "landslide"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and "<table" in html
    assert f'data-alert-id="{alert_scene.alert.pk}"' in html
    assert staff_client.get(reverse("open-alerts-partial"), {"hazard": "flood"}).content.decode().count("data-alert-id") == 0


def test_alert_list_filters_and_paginates(staff_client, make_sensor):
    a, b = make_sensor("A-1"), make_sensor("B-1")
    for h in range(55):
        _alert(a, hazard="flood", status=Alert.Status.RESOLVED, hours_ago=h + 10)
    _alert(b, hazard="landslide", level="high")
    first = staff_client.get(reverse("alert-list"))
    assert first.status_code == 200
    assert first.context["page"].paginator.count == 56 and len(first.context["alerts"]) == 50
    second = staff_client.get(reverse("alert-list"), {"page": 2})
    assert len(second.context["alerts"]) == 6
    assert 'href="?page=1"' in second.content.decode()
    only = staff_client.get(reverse("alert-list"), {"status": "open", "level": "high"})
    assert [x.sensor.sensor_id for x in only.context["alerts"]] == ["B-1"]
    kept = staff_client.get(reverse("alert-list"), {"hazard": "flood", "page": 1}).content.decode()
    assert "hazard=flood&amp;page=2" in kept


def test_alert_list_shows_invalid_filter_as_form_error_not_500(staff_client, alert_scene):
    response = staff_client.get(reverse("alert-list"), {"level": "apocalyptic", "since": "not-a-date"})
    assert response.status_code == 200
    assert len(response.context["alerts"]) == 0
    assert "level" in response.context["filterset"].errors and "since" in response.context["filterset"].errors


def test_alert_detail_shows_location_timeline_chart_and_actions_for_staff(staff_client, alert_scene):
    alert = alert_scene.alert
    response = staff_client.get(reverse("alert-detail", args=[alert.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "RG-001" in html and alert_scene.sensor.site.name in html
    assert "10.00000, 20.00000" in html and "openstreetmap.org/?mlat=10.000000&amp;mlon=20.000000" in html
    assert 'class="event kind-raised"' in html
    assert html.count("<svg") >= 2 and 'data-marker="trigger"' in html
    assert reverse("alert-acknowledge", args=[alert.pk]) in html and reverse("alert-resolve", args=[alert.pk]) in html


def test_alert_detail_hides_actions_from_non_staff(viewer_client, alert_scene):
    response = viewer_client.get(reverse("alert-detail", args=[alert_scene.alert.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<svg" in html
    assert reverse("alert-acknowledge", args=[alert_scene.alert.pk]) not in html
    assert reverse("alert-resolve", args=[alert_scene.alert.pk]) not in html


def test_non_staff_cannot_acknowledge_or_resolve(viewer_client, alert_scene):
    for name in ("alert-acknowledge", "alert-resolve"):
        response = viewer_client.post(reverse(name, args=[alert_scene.alert.pk]), {"note": "mine"})
        assert response.status_code == 403, name
    alert_scene.alert.refresh_from_db()
    assert alert_scene.alert.status == Alert.Status.OPEN


def test_staff_acknowledges_with_note_then_resolves(staff_client, alert_scene):
    alert = alert_scene.alert
    response = staff_client.post(reverse("alert-acknowledge", args=[alert.pk]), {"note": "team dispatched"}, follow=True)
    assert response.status_code == 200
    alert.refresh_from_db()
    assert alert.status == Alert.Status.ACKNOWLEDGED and alert.acknowledged_by == "analyst"
    assert AlertEvent.objects.filter(alert=alert, kind="acknowledged", actor="analyst", note="team dispatched").exists()
    html = response.content.decode()
    assert "Alert acknowledged." in html and "team dispatched" in html

    staff_client.post(reverse("alert-resolve", args=[alert.pk]), {"note": "slope stable"})
    alert.refresh_from_db()
    assert alert.status == Alert.Status.RESOLVED and alert.resolved_by == "analyst"


def test_invalid_transition_becomes_a_message_not_a_500(staff_client, alert_scene):
    alert = alert_scene.alert
    staff_client.post(reverse("alert-resolve", args=[alert.pk]))
    response = staff_client.post(reverse("alert-acknowledge", args=[alert.pk]), {"note": "late"}, follow=True)
    assert response.status_code == 200
    assert "Could not acknowledge this alert" in response.content.decode()
    alert.refresh_from_db()
    assert alert.status == Alert.Status.RESOLVED


def test_acknowledge_requires_post(staff_client, alert_scene):
    assert staff_client.get(reverse("alert-acknowledge", args=[alert_scene.alert.pk])).status_code == 405


def test_unknown_alert_and_sensor_pages_are_404(staff_client, db):
    assert staff_client.get(reverse("alert-detail", args=[999999])).status_code == 404
    assert staff_client.get(reverse("sensor-detail", args=["NOPE"])).status_code == 404


def test_sensor_list_shows_status_last_seen_and_stale_flag(staff_client, make_sensor):
    now = timezone.now()
    make_sensor("FRESH-1", last_seen_at=now - timedelta(minutes=5))
    make_sensor("SILENT-1", last_seen_at=now - timedelta(days=2))
    make_sensor("FIX-1", status=Sensor.Status.MAINTENANCE)
    response = staff_client.get(reverse("sensor-list"))
    assert response.status_code == 200
    stale = {row["sensor"].sensor_id: row["stale"] for row in response.context["rows"]}
    assert stale == {"FIX-1": False, "FRESH-1": False, "SILENT-1": True}
    html = response.content.decode()
    assert "In maintenance" in html and (now - timedelta(minutes=5)).strftime("%Y-%m-%d") in html
    filtered = staff_client.get(reverse("sensor-list"), {"status": "maintenance"})
    assert [row["sensor"].sensor_id for row in filtered.context["rows"]] == ["FIX-1"]


def test_sensor_detail_shows_latest_readings_and_risk_chart(viewer_client, alert_scene):
    response = viewer_client.get(reverse("sensor-detail", args=["RG-001"]))
    assert response.status_code == 200
    readings = response.context["readings"]
    assert len(readings) == 24 and readings[0]["timestamp"] > readings[-1]["timestamp"]
    assert readings[0]["prediction"]["landslide_probability"] > 0
    html = response.content.decode()
    assert 'data-panel="Risk"' in html and 'data-series="landslide"' in html
    assert 'data-panel="Water level"' in html
    assert f'href="/alerts/{alert_scene.alert.pk}/"' in html
