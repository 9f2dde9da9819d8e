"""What "exactly once" means in the database, checked after every fault."""
from __future__ import annotations

from django.db.models import Count

from alerts.models import Alert, AlertEvent
from predictions.models import Prediction
from sensors.models import Reading
from sensors.records import ReadingIn


def exactly_once_counts(readings: list[ReadingIn]) -> dict:
    """Assert every reading is stored once with one prediction and alerts are not duplicated; return the counts."""
    expected = {(r.sensor_id, r.timestamp) for r in readings}
    stored = list(Reading.objects.values_list("sensor__sensor_id", "timestamp"))
    predicted = list(Prediction.objects.values_list("sensor__sensor_id", "timestamp"))
    assert len(stored) == len(set(stored)), "a reading is stored twice"
    assert set(stored) == expected, f"missing {len(expected - set(stored))}, unexpected {len(set(stored) - expected)}"
    assert len(predicted) == len(set(predicted)) == len(stored), "not exactly one prediction per stored reading"
    assert set(predicted) == expected

    active = (
        Alert.objects.filter(status__in=Alert.ACTIVE_STATUSES).values("sensor_id", "hazard")
        .annotate(n=Count("id")).filter(n__gt=1)
    )
    assert not list(active), f"more than one active alert per (sensor, hazard): {list(active)}"
    same_trigger = Alert.objects.values("sensor_id", "hazard", "triggered_at").annotate(n=Count("id")).filter(n__gt=1)
    assert not list(same_trigger), f"an alert was raised twice for the same trigger: {list(same_trigger)}"
    raised = AlertEvent.objects.filter(kind=AlertEvent.Kind.RAISED).values("alert_id").annotate(n=Count("id"))
    raised_per_alert = {row["alert_id"]: row["n"] for row in raised}
    alerts = Alert.objects.count()
    assert len(raised_per_alert) == alerts and set(raised_per_alert.values()) <= {1}, "an alert has no or several raised events"
    return {
        "sent": len(readings),
        "stored": len(stored),
        "duplicates": len(stored) - len(set(stored)),
        "predictions": len(predicted),
        "alerts_raised": alerts,
        "active_alerts": Alert.objects.filter(status__in=Alert.ACTIVE_STATUSES).count(),
    }
