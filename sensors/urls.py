"""Analyst pages for sensors (mounted at the site root)."""
from django.urls import path

from . import views

urlpatterns = [
    path("sensors/", views.sensor_list_page, name="sensor-list"),
    path("sensors/<str:sensor_id>/", views.sensor_detail_page, name="sensor-detail"),
]
