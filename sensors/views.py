"""Analyst pages for sensors: the registry with status and last contact, and one sensor's recent data.

A sensor that has not reported for ``STALE_SENSOR_MINUTES`` is flagged on the
list: a silent station during a storm is as important as a loud one.
"""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from alerts.models import Alert
from alerts.selectors import alerts_visible

from .charts import sensor_chart_panels
from .filtersets import SensorFilterSet
from .models import Sensor
from .selectors import sensor_get, sensor_list, sensor_predictions, sensor_readings

PAGE_SIZE = 50
LATEST_ROWS = 24
CHART_WINDOW = timedelta(hours=72)


@login_required
@require_GET
def sensor_list_page(request):
    filterset = SensorFilterSet(request.GET, queryset=sensor_list())
    page = Paginator(filterset.qs if filterset.is_valid() else Sensor.objects.none(), PAGE_SIZE).get_page(request.GET.get("page"))
    stale_before = timezone.now() - timedelta(minutes=settings.STALE_SENSOR_MINUTES)
    rows = [{"sensor": s, "stale": s.status == Sensor.Status.ACTIVE and (s.last_seen_at is None or s.last_seen_at < stale_before)} for s in page.object_list]
    return render(request, "sensors/sensor_list.html", {"filterset": filterset, "page": page, "rows": rows, "stale_minutes": settings.STALE_SENSOR_MINUTES})


@login_required
@require_GET
def sensor_detail_page(request, sensor_id: str):
    try:
        sensor = sensor_get(sensor_id=sensor_id)
    except Sensor.DoesNotExist:
        raise Http404("No such sensor.") from None
    end = timezone.now()
    readings = sensor_readings(sensor_id=sensor.sensor_id, limit=LATEST_ROWS)
    by_time = {}
    if readings:
        by_time = {p["timestamp"]: p for p in sensor_predictions(sensor_id=sensor.sensor_id, since=readings[-1]["timestamp"], until=readings[0]["timestamp"], limit=LATEST_ROWS)}
    return render(request, "sensors/sensor_detail.html", {
        "sensor": sensor, "site": sensor.site,
        "readings": [{**r, "prediction": by_time.get(r["timestamp"])} for r in readings],
        "panels": sensor_chart_panels(sensor=sensor, start=end - CHART_WINDOW, end=end),
        "active_alerts": alerts_visible(sensor_ids=[sensor.sensor_id]).filter(status__in=Alert.ACTIVE_STATUSES),
        "window_start": end - CHART_WINDOW, "window_end": end,
    })
