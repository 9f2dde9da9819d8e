"""Serializers of the sensors read API.

Sensors are few and go through a normal ModelSerializer. Readings and
predictions are many: their rows come straight from ``.values()`` and are
rendered as they are; ``ReadingRowSerializer`` and ``PredictionRowSerializer``
only describe those rows in the OpenAPI schema.
"""
from rest_framework import serializers

from sensors.models import Sensor
from sensors.selectors import READINGS_MAX_LIMIT


class SiteSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    region = serializers.CharField()
    latitude = serializers.FloatField(allow_null=True)
    longitude = serializers.FloatField(allow_null=True)


class SensorSerializer(serializers.ModelSerializer):
    site = SiteSummarySerializer(read_only=True)

    class Meta:
        model = Sensor
        fields = [
            "sensor_id", "name", "site", "kind", "status", "latitude", "longitude", "elevation",
            "installed_at", "maintenance_until", "last_seen_at",
            "flood_stage_m", "rainfall_limit_mm_h", "ground_movement_limit_mm_h", "soil_moisture_limit",
        ]
        read_only_fields = fields


class WindowQuerySerializer(serializers.Serializer):
    """Query parameters of the readings and predictions endpoints; errors name the parameter."""

    since = serializers.DateTimeField(required=False, help_text="Oldest timestamp to return (inclusive), ISO 8601.")
    until = serializers.DateTimeField(required=False, help_text="Newest timestamp to return (inclusive), ISO 8601.")
    limit = serializers.IntegerField(required=False, default=100, min_value=1, max_value=READINGS_MAX_LIMIT)

    def validate(self, attrs):
        since, until = attrs.get("since"), attrs.get("until")
        if since and until and since > until:
            raise serializers.ValidationError({"until": ["must not be before since."]})
        return attrs


_DEFAULT_LIMIT = WindowQuerySerializer._declared_fields["limit"].default


def window_query(params) -> dict:
    """The validated query parameters of a window page; 400 (ValidationError) naming the parameter.

    The common request, no parameters or only a plain ``limit`` in range, is
    decided here; anything else goes through ``WindowQuerySerializer``, which
    gives every error message. Why: a DRF serializer instance deep-copies its
    fields and runs their validation machinery, ~10 % of the CPU of a 500-row
    readings page (bench/bench_api_cpu.py readings --profile). The results are
    the serializer's (tested against it).
    """
    if params.keys() <= {"limit"}:
        raw = params.get("limit")
        if raw is None:
            return {"limit": _DEFAULT_LIMIT}
        if len(raw) <= 6 and raw.isascii() and raw.isdigit() and 1 <= int(raw) <= READINGS_MAX_LIMIT:
            return {"limit": int(raw)}
    query = WindowQuerySerializer(data=params)
    query.is_valid(raise_exception=True)
    return query.validated_data


class ReadingRowSerializer(serializers.Serializer):
    timestamp = serializers.DateTimeField()
    received_at = serializers.DateTimeField()
    rainfall = serializers.FloatField(allow_null=True)
    soil_moisture = serializers.FloatField(allow_null=True)
    ground_movement = serializers.FloatField(allow_null=True)
    water_level = serializers.FloatField(allow_null=True)


class PredictionRowSerializer(serializers.Serializer):
    timestamp = serializers.DateTimeField()
    landslide_probability = serializers.FloatField()
    flood_probability = serializers.FloatField()
    landslide_risk = serializers.CharField()
    flood_risk = serializers.CharField()
    landslide_model_version = serializers.CharField()
    flood_model_version = serializers.CharField()


class ReadingPageSerializer(serializers.Serializer):
    sensor_id = serializers.CharField()
    results = ReadingRowSerializer(many=True)
    next = serializers.URLField(allow_null=True, help_text="The next (older) page, or null when this is the last.")


class PredictionPageSerializer(serializers.Serializer):
    sensor_id = serializers.CharField()
    results = PredictionRowSerializer(many=True)
    next = serializers.URLField(allow_null=True, help_text="The next (older) page, or null when this is the last.")
