"""Alert rules and lifecycle, driven through the pipeline stage with hand-built scored readings."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from alerts.models import Alert, AlertEvent
from alerts.services import InvalidTransition, alert_acknowledge, alert_resolve, alerts_evaluate_scored, alerts_raise_stale
from sensors.models import Sensor

from .conftest import T0

pytestmark = pytest.mark.django_db


def kinds(alert) -> list[str]:
    return list(alert.events.order_by("at", "id").values_list("kind", flat=True))


def test_medium_model_risk_raises_one_explained_alert(sensor, scored):
    changes = alerts_evaluate_scored(scored=[scored(sensor, 0, flood=0.55, water_level=3.1, rainfall=8.0)])

    assert changes == 1
    alert = Alert.objects.get()
    assert (alert.hazard, alert.level, alert.source, alert.status) == ("flood", "medium", "model", "open")
    assert alert.probability == alert.peak_probability == 0.55
    assert alert.triggered_at == alert.last_triggered_at == T0
    assert alert.model_version == "flood-test-1"
    assert alert.features == {"rain_72h": 12.5, "rain_24h": None}
    assert alert.message == "Flood risk medium (p=0.55) at RG-001: water level 3.1 m, rain 8 mm/h, 72 h rain 12.5 mm"
    event = alert.events.get()
    assert (event.kind, event.level, event.status, event.probability, event.published_at) == ("raised", "medium", "open", 0.55, None)


def test_low_risk_raises_nothing(sensor, scored):
    assert alerts_evaluate_scored(scored=[scored(sensor, m, landslide=0.39, flood=0.2) for m in range(5)]) == 0
    assert not Alert.objects.exists()


def test_repeated_trigger_keeps_one_alert_and_adds_no_events(sensor, scored):
    alerts_evaluate_scored(scored=[scored(sensor, m, flood=0.5) for m in range(5)])
    changes = alerts_evaluate_scored(scored=[scored(sensor, m, flood=0.52) for m in range(5, 10)])

    assert changes == 0
    alert = Alert.objects.get()
    assert alert.last_triggered_at == T0 + timedelta(minutes=9)
    assert alert.triggered_at == T0
    assert alert.peak_probability == 0.52
    assert kinds(alert) == ["raised"]


def test_escalation_updates_the_same_alert_and_keeps_peak_probability(sensor, scored):
    alerts_evaluate_scored(scored=[scored(sensor, 0, landslide=0.5)])
    changes = alerts_evaluate_scored(scored=[scored(sensor, 1, landslide=0.91), scored(sensor, 2, landslide=0.5)])

    assert changes == 1
    alert = Alert.objects.get()
    assert alert.level == "high"
    assert alert.probability == alert.peak_probability == 0.91
    assert alert.triggered_at == T0
    assert alert.message.startswith("Landslide risk high (p=0.91) at RG-001")
    assert kinds(alert) == ["raised", "escalated"]
    escalated = alert.events.get(kind="escalated")
    assert (escalated.level, escalated.payload) == ("high", {"from_level": "medium"})


def test_escalation_reopens_an_acknowledged_alert(sensor, scored):
    alerts_evaluate_scored(scored=[scored(sensor, 0, flood=0.5)])
    alert_acknowledge(alert=Alert.objects.get(), actor="duty-officer")
    alerts_evaluate_scored(scored=[scored(sensor, 1, flood=0.8)])

    alert = Alert.objects.get()
    assert (alert.status, alert.level, alert.acknowledged_by) == ("open", "high", "")
    assert kinds(alert) == ["raised", "acknowledged", "escalated"]


def test_same_level_retrigger_keeps_an_acknowledged_alert_acknowledged(sensor, scored):
    alerts_evaluate_scored(scored=[scored(sensor, 0, flood=0.5)])
    alert_acknowledge(alert=Alert.objects.get(), actor="duty-officer")
    alerts_evaluate_scored(scored=[scored(sensor, 1, flood=0.6)])

    assert Alert.objects.get().status == "acknowledged"


def test_oscillating_signal_raises_once_and_resolves_only_after_it_calms(sensor, scored, settings):
    settings.ALERT_CLEAR_READINGS = 3
    oscillating = [scored(sensor, m, flood=0.45 if m % 2 == 0 else 0.35) for m in range(50)]
    for start in range(0, 50, 10):  # several consumer batches
        alerts_evaluate_scored(scored=oscillating[start:start + 10])

    alert = Alert.objects.get()
    assert alert.status == "open"
    assert kinds(alert) == ["raised"]

    alerts_evaluate_scored(scored=[scored(sensor, 50, flood=0.1), scored(sensor, 51, flood=0.1)])
    assert Alert.objects.get().status == "open"
    changes = alerts_evaluate_scored(scored=[scored(sensor, 52, flood=0.1)])

    assert changes == 1
    alert.refresh_from_db()
    assert alert.status == "resolved"
    assert alert.resolution_reason == "below clear level for 3 consecutive readings"
    assert alert.resolved_by == ""
    assert kinds(alert) == ["raised", "resolved"]


def test_signal_crossing_the_clear_level_keeps_restarting_the_clear_count(sensor, scored, settings):
    settings.ALERT_CLEAR_READINGS = 2
    alerts_evaluate_scored(scored=[scored(sensor, m, flood=0.45 if m % 2 == 0 else 0.2) for m in range(40)])

    alert = Alert.objects.get()
    assert alert.status == "open"
    assert alert.clear_streak == 1


def test_alert_resolves_after_clear_minutes_of_calm_in_reading_time(sensor, scored, settings):
    settings.ALERT_CLEAR_READINGS = 100
    settings.ALERT_CLEAR_MINUTES = 120
    alerts_evaluate_scored(scored=[scored(sensor, 0, flood=0.5)])
    alerts_evaluate_scored(scored=[scored(sensor, 10, flood=0.1), scored(sensor, 129, flood=0.1)])
    assert Alert.objects.get().status == "open"

    alerts_evaluate_scored(scored=[scored(sensor, 130, flood=0.1)])

    alert = Alert.objects.get()
    assert alert.status == "resolved"
    assert alert.resolution_reason == "below clear level for 120 minutes"


def test_dead_band_reading_neither_raises_nor_resets_the_clear_count(sensor, scored, settings):
    settings.ALERT_CLEAR_READINGS = 3
    alerts_evaluate_scored(scored=[scored(sensor, 0, landslide=0.35)])
    assert not Alert.objects.exists()

    alerts_evaluate_scored(scored=[scored(sensor, 1, landslide=0.6)])
    alerts_evaluate_scored(scored=[scored(sensor, 2, landslide=0.1), scored(sensor, 3, landslide=0.1), scored(sensor, 4, landslide=0.35)])
    alert = Alert.objects.get()
    assert (alert.status, alert.clear_streak) == ("open", 2)

    alerts_evaluate_scored(scored=[scored(sensor, 5, landslide=0.1)])
    assert Alert.objects.get().status == "resolved"


def test_readings_of_a_batch_are_applied_in_timestamp_order(sensor, scored, settings):
    settings.ALERT_CLEAR_READINGS = 2
    # Delivered out of order: in time order it is trigger, calm, calm (resolved).
    alerts_evaluate_scored(scored=[scored(sensor, 2, flood=0.1), scored(sensor, 0, flood=0.5), scored(sensor, 1, flood=0.1)])

    assert Alert.objects.get().status == "resolved"


def test_late_readings_do_not_count_towards_clearing(sensor, scored, make_alert, settings):
    settings.ALERT_CLEAR_READINGS = 2
    make_alert(sensor, hazard="flood", minute=100)
    alerts_evaluate_scored(scored=[scored(sensor, m, flood=0.1) for m in (10, 20, 30)])

    assert Alert.objects.get().status == "open"


def test_resolution_and_new_trigger_in_one_batch_leave_one_active_alert(sensor, scored, make_alert, settings):
    settings.ALERT_CLEAR_READINGS = 2
    old = make_alert(sensor, hazard="flood", minute=0)
    changes = alerts_evaluate_scored(scored=[scored(sensor, 1, flood=0.1), scored(sensor, 2, flood=0.1), scored(sensor, 3, flood=0.8)])

    assert changes == 2
    old.refresh_from_db()
    assert old.status == "resolved"
    new = Alert.objects.get(status="open")
    assert (new.level, new.triggered_at) == ("high", T0 + timedelta(minutes=3))


@pytest.mark.parametrize(
    "changes",
    [
        {"status": Sensor.Status.MAINTENANCE},
        {"maintenance_until": timezone.now() + timedelta(hours=2)},
        {"status": Sensor.Status.RETIRED},
    ],
    ids=["status-maintenance", "maintenance-until-future", "retired"],
)
def test_sensors_in_maintenance_or_retired_raise_no_alerts(sensor, scored, changes):
    Sensor.objects.filter(pk=sensor.pk).update(**changes)

    changes = alerts_evaluate_scored(scored=[scored(sensor, 0, landslide=0.95, flood=0.95, water_level=9.0, ground_movement=50.0)])

    assert changes == 0
    assert not Alert.objects.exists()


def test_past_maintenance_window_no_longer_suppresses(sensor, scored):
    Sensor.objects.filter(pk=sensor.pk).update(maintenance_until=timezone.now() - timedelta(minutes=1))

    alerts_evaluate_scored(scored=[scored(sensor, 0, flood=0.9)])

    assert Alert.objects.filter(hazard="flood", level="high").exists()


@pytest.mark.parametrize(
    "kind,measurements,expected",
    [
        ("multi", {"water_level": 4.5}, {("flood", "medium", 4.5, 4.0)}),
        ("multi", {"water_level": 5.0}, {("flood", "high", 5.0, 4.0)}),
        ("multi", {"ground_movement": 6.0}, {("landslide", "medium", 6.0, 5.0)}),
        ("multi", {"ground_movement": 10.0}, {("landslide", "high", 10.0, 5.0)}),
        ("multi", {"soil_moisture": 0.5}, {("landslide", "medium", 0.5, 0.45)}),
        ("multi", {"soil_moisture": 0.7}, {("landslide", "high", 0.7, 0.45)}),
        ("multi", {"rainfall": 50.0}, {("landslide", "medium", 50.0, 40.0), ("flood", "medium", 50.0, 40.0)}),
        ("rain_gauge", {"rainfall": 60.0}, {("landslide", "high", 60.0, 40.0), ("flood", "high", 60.0, 40.0)}),
        ("river_gauge", {"rainfall": 50.0}, {("flood", "medium", 50.0, 40.0)}),
        ("extensometer", {"rainfall": 50.0}, {("landslide", "medium", 50.0, 40.0)}),
        ("soil_moisture", {"rainfall": 50.0}, {("landslide", "medium", 50.0, 40.0)}),
        ("multi", {"water_level": 4.0, "rainfall": 40.0, "ground_movement": 5.0, "soil_moisture": 0.45}, set()),
    ],
)
def test_threshold_rules(make_sensor, scored, kind, measurements, expected):
    sensor = make_sensor(kind=kind, flood_stage_m=4.0, rainfall_limit_mm_h=40, ground_movement_limit_mm_h=5, soil_moisture_limit=0.45)

    alerts_evaluate_scored(scored=[scored(sensor, 0, **measurements)])

    got = set(Alert.objects.values_list("hazard", "level", "value", "threshold"))
    assert got == expected
    assert set(Alert.objects.values_list("source", flat=True)) <= {"threshold"}


def test_threshold_alert_message_names_value_and_limit(sensor, scored):
    alerts_evaluate_scored(scored=[scored(sensor, 0, water_level=4.6, flood=0.2)])

    assert Alert.objects.get().message == (
        "Flood risk medium (p=0.20) at RG-001: water level 4.6 m above flood stage 4 m; water level 4.6 m, 72 h rain 12.5 mm"
    )


def test_sensor_without_thresholds_raises_only_on_model_risk(make_sensor, scored):
    bare = make_sensor()
    alerts_evaluate_scored(scored=[scored(bare, 0, water_level=90.0, rainfall=400.0, ground_movement=900.0, soil_moisture=1.0)])

    assert not Alert.objects.exists()


def test_model_and_threshold_triggers_merge_into_one_alert(sensor, scored):
    alerts_evaluate_scored(scored=[scored(sensor, 0, flood=0.5)])
    alerts_evaluate_scored(scored=[scored(sensor, 1, flood=0.5, water_level=5.5)])

    alert = Alert.objects.get(hazard="flood")
    assert (alert.level, alert.source, alert.value, alert.threshold) == ("high", "threshold", 5.5, 4.0)
    assert kinds(alert) == ["raised", "escalated"]


def test_threshold_alert_clears_only_below_its_clear_point(sensor, scored, settings):
    settings.ALERT_CLEAR_READINGS = 3
    alerts_evaluate_scored(scored=[scored(sensor, 0, water_level=4.5)])
    # 3.9 m is under the 4.0 m stage but above the 3.75 m clear point: the dead band.
    alerts_evaluate_scored(scored=[scored(sensor, m, water_level=3.9) for m in range(1, 10)])
    assert Alert.objects.get().status == "open"

    alerts_evaluate_scored(scored=[scored(sensor, m, water_level=3.7) for m in range(10, 13)])
    assert Alert.objects.get().status == "resolved"


def test_non_finite_features_are_stored_as_null(sensor, scored):
    alerts_evaluate_scored(scored=[scored(sensor, 0, flood=0.9, features={"rain_72h": float("nan"), "rain_24h": 3.0})])

    assert Alert.objects.get().features == {"rain_72h": None, "rain_24h": 3.0}


def test_silent_sensor_raises_one_no_data_alert_until_data_arrives(sensor, make_sensor, scored):
    quiet_in_maintenance = make_sensor(status=Sensor.Status.MAINTENANCE)
    retired = make_sensor(status=Sensor.Status.RETIRED)
    now = timezone.now()
    Sensor.objects.filter(pk=sensor.pk).update(last_seen_at=now - timedelta(hours=5))
    fresh = make_sensor()
    Sensor.objects.filter(pk=fresh.pk).update(last_seen_at=now - timedelta(minutes=5))

    assert alerts_raise_stale(now=now) == 1
    assert alerts_raise_stale(now=now + timedelta(minutes=1)) == 0

    alert = Alert.objects.get()
    assert (alert.sensor_id, alert.hazard, alert.source, alert.level, alert.status) == (sensor.pk, "no_data", "stale", "medium", "open")
    assert alert.message.startswith("No data from RG-001 for 300 min")
    assert kinds(alert) == ["raised"]
    assert not Alert.objects.filter(sensor__in=[quiet_in_maintenance, retired, fresh]).exists()

    changes = alerts_evaluate_scored(scored=[scored(sensor, 0, flood=0.1)])

    assert changes == 1
    alert.refresh_from_db()
    assert (alert.status, alert.resolution_reason) == ("resolved", "data received")
    assert kinds(alert) == ["raised", "resolved"]


def test_never_seen_sensor_is_stale_counted_from_its_registration(sensor):
    assert alerts_raise_stale(now=timezone.now() + timedelta(minutes=10)) == 0
    assert alerts_raise_stale(now=timezone.now() + timedelta(days=1)) == 1
    alert = Alert.objects.get()
    assert alert.hazard == "no_data"
    assert "never reported" in alert.message


def test_check_stale_sensors_command_raises_alerts(sensor, capsys):
    Sensor.objects.filter(pk=sensor.pk).update(last_seen_at=timezone.now() - timedelta(days=2))

    call_command("check_stale_sensors")

    assert "1 no-data alert(s) raised." in capsys.readouterr().out
    assert Alert.objects.filter(sensor=sensor, hazard="no_data", status="open").exists()


def test_acknowledge_records_who_when_and_note(sensor, make_alert):
    alert = alert_acknowledge(alert=make_alert(sensor), actor="maria", note="crew dispatched")

    alert.refresh_from_db()
    assert (alert.status, alert.acknowledged_by, alert.note) == ("acknowledged", "maria", "crew dispatched")
    assert alert.acknowledged_at is not None
    event = alert.events.get(kind="acknowledged")
    assert (event.actor, event.note, event.status) == ("maria", "crew dispatched", "acknowledged")


def test_resolve_records_who_and_why(sensor, make_alert):
    alert = alert_resolve(alert=make_alert(sensor, status="acknowledged"), actor="maria", note="river receding")

    alert.refresh_from_db()
    assert (alert.status, alert.resolved_by, alert.resolution_reason, alert.note) == ("resolved", "maria", "resolved manually", "river receding")
    assert alert.events.filter(kind="resolved", actor="maria").exists()


@pytest.mark.parametrize(
    "status,service",
    [("acknowledged", alert_acknowledge), ("resolved", alert_acknowledge), ("resolved", alert_resolve)],
    ids=["ack-acknowledged", "ack-resolved", "resolve-resolved"],
)
def test_invalid_transitions_are_refused_and_change_nothing(sensor, make_alert, status, service):
    alert = make_alert(sensor, status=status)

    with pytest.raises(InvalidTransition):
        service(alert=alert, actor="maria")

    alert.refresh_from_db()
    assert alert.status == status
    assert AlertEvent.objects.filter(alert=alert).count() == 1


def test_manual_resolution_frees_the_slot_for_a_new_alert(sensor, scored):
    alerts_evaluate_scored(scored=[scored(sensor, 0, flood=0.5)])
    alert_resolve(alert=Alert.objects.get(), actor="maria")
    alerts_evaluate_scored(scored=[scored(sensor, 1, flood=0.5)])

    assert list(Alert.objects.order_by("id").values_list("status", flat=True)) == ["resolved", "open"]


@pytest.mark.django_db(transaction=True)
def test_consumer_batch_waits_for_a_concurrent_acknowledge_and_keeps_it(sensor, scored, make_alert):
    import threading
    import time

    from django.db import connection, transaction

    alert = make_alert(sensor, hazard="flood", minute=0)
    acknowledged, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def run(fn):
        try:
            fn()
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    def acknowledge_and_hold():
        with transaction.atomic():
            alert_acknowledge(alert=alert, actor="maria")
            acknowledged.set()
            release.wait(10)

    def consume():
        with transaction.atomic():
            alerts_evaluate_scored(scored=[scored(sensor, 5, flood=0.5)])

    holder = threading.Thread(target=run, args=(acknowledge_and_hold,))
    holder.start()
    assert acknowledged.wait(10)
    consumer = threading.Thread(target=run, args=(consume,))
    consumer.start()
    deadline = time.monotonic() + 10
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:  # until the consumer is blocked on the alert's row lock
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")
            if cursor.fetchone()[0]:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the consumer never waited for the acknowledge's lock")
    release.set()
    holder.join(10)
    consumer.join(10)

    assert errors == []
    alert.refresh_from_db()
    assert (alert.status, alert.acknowledged_by) == ("acknowledged", "maria")
    assert alert.last_triggered_at == T0 + timedelta(minutes=5)


@pytest.mark.parametrize(
    "kind,raised",
    [("river_gauge", {"flood"}), ("extensometer", {"landslide"}), ("soil_moisture", {"landslide"}),
     ("rain_gauge", {"landslide", "flood"}), ("multi", {"landslide", "flood"})],
)
def test_model_verdicts_raise_only_hazards_the_sensor_kind_observes(make_sensor, scored, kind, raised):
    """A river gauge says nothing about slopes: its landslide score must not cry wolf (and vice versa)."""
    sensor = make_sensor(f"K-{kind}", kind=kind)
    alerts_evaluate_scored(scored=[scored(sensor, 0, landslide=0.95, flood=0.95)])
    assert set(Alert.objects.filter(sensor=sensor).values_list("hazard", flat=True)) == raised
