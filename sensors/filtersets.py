"""Sensor filters shared by the read API (?status=&kind=&site=) and the sensor list page.

One FilterSet for both keeps the two in step: a filter an analyst can use on
the page is one an integrator can use in the API, with the same validation
(an unknown status is a 400 naming ``status`` in the API and a form error
on the page).
"""
import django_filters
from django.db.models import Q

from warning_system.api.filters import LeanFilterSet

from .models import Sensor, Site


class SensorFilterSet(LeanFilterSet):
    status = django_filters.ChoiceFilter(choices=Sensor.Status.choices)
    kind = django_filters.ChoiceFilter(choices=Sensor.Kind.choices)
    site = django_filters.ModelChoiceFilter(queryset=Site.objects.all(), help_text="Site id.")
    q = django_filters.CharFilter(method="filter_search", label="Code or name", help_text="Part of the sensor code or name.")

    class Meta:
        model = Sensor
        fields = ["status", "kind", "site", "q"]

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(sensor_id__icontains=value) | Q(name__icontains=value))
