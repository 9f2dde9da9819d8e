from rest_framework import serializers

from ..models import Alert, AlertEvent


class AlertEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertEvent
        fields = ("id", "kind", "at", "actor", "note", "level", "status", "probability")
        read_only_fields = fields


class AlertSerializer(serializers.ModelSerializer):
    sensor_id = serializers.CharField(source="sensor.sensor_id", read_only=True)
    site = serializers.CharField(source="sensor.site.name", read_only=True)

    class Meta:
        model = Alert
        fields = (
            "id", "sensor_id", "site", "hazard", "level", "source", "status", "message",
            "probability", "peak_probability", "value", "threshold", "model_version",
            "triggered_at", "last_triggered_at", "acknowledged_at", "acknowledged_by",
            "resolved_at", "resolved_by", "resolution_reason", "note", "created_at", "updated_at",
        )
        read_only_fields = fields


class AlertDetailSerializer(AlertSerializer):
    """One alert with what explains it (feature snapshot) and its full history."""

    events = AlertEventSerializer(many=True, read_only=True)

    class Meta(AlertSerializer.Meta):
        fields = (*AlertSerializer.Meta.fields, "features", "clear_streak", "below_since", "events")
        read_only_fields = fields


class AlertActionSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


# Columns of the CSV export, as (header, queryset field).
CSV_COLUMNS = (
    ("id", "id"), ("sensor_id", "sensor__sensor_id"), ("site", "sensor__site__name"), ("hazard", "hazard"),
    ("level", "level"), ("source", "source"), ("status", "status"), ("probability", "probability"),
    ("peak_probability", "peak_probability"), ("value", "value"), ("threshold", "threshold"),
    ("triggered_at", "triggered_at"), ("last_triggered_at", "last_triggered_at"),
    ("acknowledged_at", "acknowledged_at"), ("acknowledged_by", "acknowledged_by"),
    ("resolved_at", "resolved_at"), ("resolved_by", "resolved_by"),
    ("resolution_reason", "resolution_reason"), ("message", "message"), ("note", "note"),
)
