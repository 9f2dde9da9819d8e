"""Analyst pages: dashboard, alert list and alert detail with acknowledge/resolve.

Server-rendered on purpose: the pages must work in a control room without
internet and on a phone in the field, so there is no front-end build and no
CDN. The dashboard refreshes its live part (counts and open alerts) by
fetching a server-rendered fragment every 15 s (``static/js/app.js``).
Acknowledge and resolve are staff-only POSTs that go through
``alerts.services``; an invalid transition (e.g. someone else resolved the
alert a moment earlier) becomes a message on the page, never a 500.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from sensors.charts import sensor_chart_panels

from . import services
from .filtersets import AlertFilterSet
from .models import Alert, Hazard, Level
from .selectors import alerts_visible, alerts_with_history

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
DASHBOARD_ROWS = 100
CHART_WINDOW = timedelta(hours=72)
NOTE_MAX_LENGTH = 2000


def _active_alerts():
    return alerts_visible().filter(status__in=Alert.ACTIVE_STATUSES)


def _count_grid() -> list[dict]:
    """Active alerts per hazard and level, every cell present (zeros included) so the grid never jumps."""
    counts = {(row["hazard"], row["level"]): row["n"] for row in _active_alerts().order_by().values("hazard", "level").annotate(n=Count("id"))}
    return [
        {"hazard": hazard, "label": label, "levels": [{"level": level, "label": level_label, "count": counts.get((hazard, level), 0)} for level, level_label in Level.choices],
         "total": sum(counts.get((hazard, level), 0) for level in Level.values)}
        for hazard, label in Hazard.choices
    ]


def _live_context(request) -> dict:
    filterset = AlertFilterSet(request.GET, queryset=_active_alerts())
    alerts = filterset.qs[:DASHBOARD_ROWS] if filterset.is_valid() else Alert.objects.none()
    return {"filterset": filterset, "alerts": alerts, "grid": _count_grid(), "refreshed_at": timezone.now(), "row_cap": DASHBOARD_ROWS}


@login_required
@require_GET
def dashboard(request):
    return render(request, "alerts/dashboard.html", _live_context(request))


@login_required
@require_GET
def open_alerts_partial(request):
    """The dashboard's live fragment (counts and the open-alerts table) for the 15 s refresh."""
    return render(request, "alerts/_live.html", _live_context(request))


@login_required
@require_GET
def alert_list(request):
    filterset = AlertFilterSet(request.GET, queryset=alerts_visible())
    page = Paginator(filterset.qs if filterset.is_valid() else Alert.objects.none(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "alerts/alert_list.html", {"filterset": filterset, "page": page, "alerts": page.object_list})


def _get_alert(pk: int) -> Alert:
    try:
        return alerts_with_history().get(pk=pk)
    except Alert.DoesNotExist:
        raise Http404("No such alert.") from None


@login_required
@require_GET
def alert_detail(request, pk: int):
    alert = _get_alert(pk)
    now = timezone.now()
    end = now if alert.is_active or alert.resolved_at is None else alert.resolved_at
    start = end - CHART_WINDOW
    panels = sensor_chart_panels(sensor=alert.sensor, start=start, end=end, trigger_at=alert.triggered_at)
    return render(request, "alerts/alert_detail.html", {
        "alert": alert, "sensor": alert.sensor, "site": alert.sensor.site, "events": list(alert.events.all()),
        "panels": panels, "window_start": start, "window_end": end, "note_max_length": NOTE_MAX_LENGTH,
        "can_act": request.user.is_staff,
    })


TRANSITIONS = {"acknowledge": (services.alert_acknowledge, "acknowledged"), "resolve": (services.alert_resolve, "resolved")}


@login_required
@require_POST
def alert_transition(request, pk: int, action: str):
    """Acknowledge or resolve an alert as the logged-in staff member, with an optional note."""
    if not request.user.is_staff:
        raise PermissionDenied("Only staff may acknowledge or resolve alerts.")
    alert = _get_alert(pk)
    note = request.POST.get("note", "").strip()
    if len(note) > NOTE_MAX_LENGTH:
        messages.error(request, f"The note is too long (at most {NOTE_MAX_LENGTH} characters).")
        return redirect("alert-detail", pk=alert.pk)
    change, done = TRANSITIONS[action]
    try:
        change(alert=alert, actor=request.user.get_username(), note=note)
    except services.InvalidTransition as exc:
        logger.info("alerts.page_transition_refused", extra={"alert_id": alert.pk, "action": action, "reason": str(exc)})
        messages.error(request, f"Could not {action} this alert: {exc}.")
    else:
        messages.success(request, f"Alert {done}.")
    return redirect("alert-detail", pk=alert.pk)
