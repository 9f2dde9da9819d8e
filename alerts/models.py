"""Alerts and their history.

At most one *active* (open or acknowledged) alert exists per (sensor, hazard):
a partial unique index enforces it so that concurrent consumers cannot raise
duplicates. Every change is an AlertEvent; events double as a transactional
outbox for the ``alerts`` Kafka topic (``published_at`` is set once sent), so
an event committed with the alert is never lost if the process dies before
publishing.
"""
from django.db import models
from django.db.models import Q


class Hazard(models.TextChoices):
    LANDSLIDE = "landslide", "Landslide"
    FLOOD = "flood", "Flood"
    NO_DATA = "no_data", "No data"


class Level(models.TextChoices):
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


LEVEL_RANK = {Level.MEDIUM: 1, Level.HIGH: 2}


class Alert(models.Model):
    class Source(models.TextChoices):
        MODEL = "model", "Model"
        THRESHOLD = "threshold", "Threshold"
        STALE = "stale", "No data"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    ACTIVE_STATUSES = (Status.OPEN, Status.ACKNOWLEDGED)

    id = models.BigAutoField(primary_key=True)
    # Indexed by alert_sensor_triggered_idx (sensor, -triggered_at, -id), whose prefix serves the FK.
    sensor = models.ForeignKey("sensors.Sensor", on_delete=models.CASCADE, related_name="alerts", db_index=False)
    hazard = models.CharField(max_length=12, choices=Hazard.choices)
    level = models.CharField(max_length=8, choices=Level.choices)
    source = models.CharField(max_length=12, choices=Source.choices)
    status = models.CharField(max_length=14, choices=Status.choices, default=Status.OPEN)
    probability = models.FloatField(null=True, blank=True, help_text="Model probability at the trigger.")
    peak_probability = models.FloatField(null=True, blank=True)
    value = models.FloatField(null=True, blank=True, help_text="Measured value for threshold alerts.")
    threshold = models.FloatField(null=True, blank=True)
    message = models.TextField(blank=True)

    triggered_at = models.DateTimeField(help_text="Time of the reading that raised the alert.")
    last_triggered_at = models.DateTimeField()
    model_version = models.CharField(max_length=64, blank=True)
    features = models.JSONField(default=dict, blank=True, help_text="Feature snapshot at the trigger.")

    # Hysteresis bookkeeping: consecutive readings below the clear level, and since when.
    clear_streak = models.PositiveIntegerField(default=0)
    below_since = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True, help_text="Who resolved it; empty when automatic.")
    resolution_reason = models.CharField(max_length=200, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-triggered_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["sensor", "hazard"],
                condition=Q(status__in=["open", "acknowledged"]),
                name="alert_one_active_per_sensor_hazard",
            ),
            models.CheckConstraint(condition=Q(probability__gte=0, probability__lte=1) | Q(probability__isnull=True), name="alert_probability_range"),
        ]
        indexes = [
            # The analysts' main queries: open alerts newest first, filtered by status/hazard.
            models.Index(fields=["status", "-triggered_at"], name="alert_status_triggered_idx"),
            models.Index(fields=["-triggered_at", "-id"], name="alert_triggered_idx"),
            models.Index(fields=["hazard", "level", "-triggered_at"], name="alert_hazard_level_idx"),
            # One sensor's alerts newest first (sensor pages, device keys, ?sensor_id=): without it
            # the planner walks every alert in time order looking for the sensor's few.
            models.Index(fields=["sensor", "-triggered_at", "-id"], name="alert_sensor_triggered_idx"),
            # One sensor's alerts of one hazard (?sensor_id=&hazard=, an analyst's drill-down): with only
            # the index above, a sensor with 1,358 alerts, 39 of them floods, cost 455 heap pages per count.
            models.Index(fields=["sensor", "hazard", "-triggered_at", "-id"], name="alert_sensor_hazard_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.hazard} {self.level} @ {self.sensor_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES


class AlertEvent(models.Model):
    class Kind(models.TextChoices):
        RAISED = "raised", "Raised"
        ESCALATED = "escalated", "Escalated"
        RETRIGGERED = "retriggered", "Re-triggered"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    # Kinds that integrators receive on the `alerts` topic.
    PUBLISHED_KINDS = (Kind.RAISED, Kind.ESCALATED, Kind.ACKNOWLEDGED, Kind.RESOLVED)

    id = models.BigAutoField(primary_key=True)
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    at = models.DateTimeField(auto_now_add=True)
    actor = models.CharField(max_length=150, blank=True, help_text="User or API key; empty for the system.")
    note = models.TextField(blank=True)
    level = models.CharField(max_length=8, choices=Level.choices)
    status = models.CharField(max_length=14, choices=Alert.Status.choices)
    probability = models.FloatField(null=True, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            # Exactly the outbox's pending set: re-triggers are never published and must not pile up in it.
            models.Index(fields=["id"], condition=Q(published_at__isnull=True, kind__in=["raised", "escalated", "acknowledged", "resolved"]),
                         name="alertevent_pending_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.alert_id}"
