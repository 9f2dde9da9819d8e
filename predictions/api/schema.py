"""OpenAPI shapes for the predictions endpoints (documentation only; never used to validate)."""
from rest_framework import serializers

from predictions.features import FEATURE_NAMES


class Detail(serializers.Serializer):
    detail = serializers.CharField()


class ItemError(serializers.Serializer):
    index = serializers.IntegerField()
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class ItemErrors(serializers.Serializer):
    detail = serializers.CharField()
    errors = ItemError(many=True, required=False, help_text="Per item; absent when the body is not valid JSON.")


PredictionRequest = type(
    "PredictionRequest",
    (serializers.Serializer,),
    {
        "sensor_id": serializers.CharField(required=False, help_text="Score this sensor's latest stored window."),
        **{name: serializers.FloatField(required=False, allow_null=True) for name in FEATURE_NAMES},
    },
)


class HazardResult(serializers.Serializer):
    probability = serializers.FloatField()
    risk = serializers.ChoiceField(choices=["low", "medium", "high"])


class Versions(serializers.Serializer):
    landslide = serializers.CharField()
    flood = serializers.CharField()


class PredictionResult(serializers.Serializer):
    landslide = HazardResult()
    flood = HazardResult()
    model_version = Versions()
    cached = serializers.BooleanField()
    sensor_id = serializers.CharField(required=False)
    timestamp = serializers.DateTimeField(required=False, help_text="Time of the scored reading (sensor requests).")


class OneModelInfo(serializers.Serializer):
    version = serializers.CharField()
    trained_at = serializers.CharField(allow_null=True)
    horizon_hours = serializers.IntegerField(allow_null=True)
    features = serializers.ListField(child=serializers.CharField())
    training_size = serializers.JSONField(allow_null=True)
    metrics = serializers.JSONField()
    baseline = serializers.JSONField(allow_null=True)
    xgboost_version = serializers.CharField(allow_null=True)
    risk_cutoffs = serializers.DictField(child=serializers.FloatField())


class ModelInfo(serializers.Serializer):
    landslide = OneModelInfo()
    flood = OneModelInfo()
