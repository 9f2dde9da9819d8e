"""Alert filters shared by the API list, its CSV export and the HTML alert list.

Every filter validates its input: a bad value makes the filterset invalid and
the API answers 400 naming the field (never a 500 from a bad query).
"""
from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from warning_system.api.filters import LeanFilterSet, UTCIsoDateTimeFilter

from .models import Alert, Hazard, Level


class AlertFilterSet(LeanFilterSet):
    status = django_filters.ChoiceFilter(choices=Alert.Status.choices)
    active = django_filters.ChoiceFilter(
        choices=(("true", "Active (open or acknowledged)"), ("false", "Resolved")), method="filter_active", label="Active",
    )
    hazard = django_filters.ChoiceFilter(choices=Hazard.choices)
    level = django_filters.ChoiceFilter(choices=Level.choices)
    source = django_filters.ChoiceFilter(choices=Alert.Source.choices)
    sensor_id = django_filters.CharFilter(field_name="sensor__sensor_id", max_length=64, label="Sensor code")
    site = django_filters.CharFilter(method="filter_site", max_length=120, label="Site name or id")
    since = UTCIsoDateTimeFilter(field_name="triggered_at", lookup_expr="gte", label="Triggered at or after (ISO 8601)")
    until = UTCIsoDateTimeFilter(field_name="triggered_at", lookup_expr="lte", label="Triggered at or before (ISO 8601)")

    class Meta:
        model = Alert
        fields = ["status", "active", "hazard", "level", "source", "sensor_id", "site", "since", "until"]

    def filter_active(self, queryset: QuerySet[Alert], name: str, value: str) -> QuerySet[Alert]:
        active = Q(status__in=Alert.ACTIVE_STATUSES)
        return queryset.filter(active if value == "true" else ~active)

    def filter_site(self, queryset: QuerySet[Alert], name: str, value: str) -> QuerySet[Alert]:
        """A site is named by its name, or by its numeric id."""
        by_name = Q(sensor__site__name=value)
        if value.isascii() and value.isdigit() and len(value) <= 18:  # fits a bigint
            return queryset.filter(by_name | Q(sensor__site_id=int(value)))
        return queryset.filter(by_name)
