"""Analyst pages for alerts (mounted at the site root)."""
from django.urls import path

from . import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("partials/open-alerts", views.open_alerts_partial, name="open-alerts-partial"),
    path("alerts/", views.alert_list, name="alert-list"),
    path("alerts/<int:pk>/", views.alert_detail, name="alert-detail"),
    path("alerts/<int:pk>/acknowledge", views.alert_transition, {"action": "acknowledge"}, name="alert-acknowledge"),
    path("alerts/<int:pk>/resolve", views.alert_transition, {"action": "resolve"}, name="alert-resolve"),
]
