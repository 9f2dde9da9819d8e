"""Reads of alerts for the API, the pages and the admin.

Visibility is decided here, once: an API key restricted to some sensors sees
only their alerts, everywhere (lists, details, exports, actions).
"""
from __future__ import annotations

from collections.abc import Collection

from django.db.models import Prefetch, QuerySet

from .models import Alert, AlertEvent


def alerts_visible(*, sensor_ids: Collection[str] | None = None) -> QuerySet[Alert]:
    """Alerts newest first, with sensor and site joined; ``sensor_ids`` None means every sensor."""
    qs = Alert.objects.select_related("sensor", "sensor__site").order_by("-triggered_at", "-id")
    if sensor_ids is not None:
        qs = qs.filter(sensor__sensor_id__in=list(sensor_ids))
    return qs


def alerts_with_history(*, sensor_ids: Collection[str] | None = None) -> QuerySet[Alert]:
    """Visible alerts with their events (oldest first) prefetched, for detail views."""
    return alerts_visible(sensor_ids=sensor_ids).prefetch_related(
        Prefetch("events", queryset=AlertEvent.objects.order_by("at", "id"))
    )

