"""API keys with scopes and optional sensor restriction.

Built on djangorestframework-api-key: only a hash of the key is stored and
the plain key is shown once, at creation. Expiry and revocation come from
the base model.
"""
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey


class Scope(models.TextChoices):
    INGEST = "ingest", "ingest: POST sensor-data"
    READ = "read", "read: GET alerts, sensors, readings, model info"
    PREDICT = "predict", "predict: POST predictions"
    MANAGE = "manage", "manage: acknowledge/resolve alerts, sensor writes"


ALL_SCOPES = tuple(Scope.values)


class APIKey(AbstractAPIKey):
    scopes = models.JSONField(default=list, help_text="Any of: " + ", ".join(ALL_SCOPES))
    sensors = models.ManyToManyField(
        "sensors.Sensor", blank=True, related_name="api_keys",
        help_text="Restrict a device key to these sensors; empty means all sensors.",
    )
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or [])
