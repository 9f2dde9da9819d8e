"""Model outputs: one Prediction per stored reading."""
from django.db import models
from django.db.models import F

from .fields import FeatureVectorField


class RiskLevel(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class Prediction(models.Model):
    """The models' scores for one reading, with the features they saw (for audit and replay)."""

    id = models.BigAutoField(primary_key=True)
    # No database-level foreign key, for the reason and with the guarantee given on sensors.Reading.sensor.
    sensor = models.ForeignKey("sensors.Sensor", on_delete=models.CASCADE, related_name="predictions", db_index=False, db_constraint=False)
    timestamp = models.DateTimeField(help_text="Timestamp of the scored reading.")
    landslide_probability = models.FloatField()
    flood_probability = models.FloatField()
    landslide_risk = models.CharField(max_length=8, choices=RiskLevel.choices)
    flood_risk = models.CharField(max_length=8, choices=RiskLevel.choices)
    landslide_model_version = models.CharField(max_length=64)
    flood_model_version = models.CharField(max_length=64)
    features = FeatureVectorField(default=dict, help_text="The features the models saw, by name (null = missing).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(F("sensor"), F("timestamp").desc(), name="prediction_sensor_timestamp_uniq"),
            models.CheckConstraint(condition=models.Q(landslide_probability__gte=0, landslide_probability__lte=1), name="prediction_landslide_p_range"),
            models.CheckConstraint(condition=models.Q(flood_probability__gte=0, flood_probability__lte=1), name="prediction_flood_p_range"),
        ]

    def __str__(self) -> str:
        return f"{self.sensor_id}@{self.timestamp.isoformat()}"
