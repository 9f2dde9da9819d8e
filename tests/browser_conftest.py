"""Fixtures for the analyst-page tests (Django test client and Playwright/Chromium).

Import them into a test module with ``from tests.browser_conftest import *``
(the conftest.py files of tests/alerts and tests/sensors belong to other work).

The alert scene is written straight through the ORM: the pages only read
alerts, so they are tested independently of the scoring pipeline.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

# Playwright's sync API runs an event loop in the test thread; the ORM calls the
# tests make next to it are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
PASSWORD = "correct-horse-battery"


@dataclass
class AlertScene:
    sensor: object
    alert: object
    trigger_at: object


def build_alert_scene(sensor, *, hours: int = 72, trigger_hours_ago: int = 6):
    """An open high landslide alert on ``sensor`` with 72 h of hourly readings and predictions."""
    from alerts.models import Alert, AlertEvent
    from predictions.models import Prediction
    from sensors.models import Reading

    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(hours=hours - 1)
    trigger_at = now - timedelta(hours=trigger_hours_ago)
    readings, predictions = [], []
    for h in range(hours):
        at = start + timedelta(hours=h)
        wet = max(0, h - (hours - 30))
        readings.append(Reading(sensor=sensor, timestamp=at, received_at=at, rainfall=min(2.0 + 3 * wet, 80.0),
                                soil_moisture=min(0.25 + 0.01 * wet, 0.6), ground_movement=0.1 + 0.2 * wet, water_level=1.0 + 0.1 * wet))
        p = min(0.05 + 0.035 * wet, 0.97)
        predictions.append(Prediction(sensor=sensor, timestamp=at, landslide_probability=p, flood_probability=p / 2,
                                      landslide_risk="high" if p >= 0.7 else "medium" if p >= 0.4 else "low", flood_risk="low",
                                      landslide_model_version="ls-test", flood_model_version="fl-test"))
    Reading.objects.bulk_create(readings)
    Prediction.objects.bulk_create(predictions)
    alert = Alert.objects.create(
        sensor=sensor, hazard="landslide", level="high", source=Alert.Source.MODEL, status=Alert.Status.OPEN,
        probability=0.82, peak_probability=0.9, triggered_at=trigger_at, last_triggered_at=trigger_at,
        model_version="ls-test", message=f"Landslide risk high at {sensor.sensor_id}: p=0.82",
    )
    AlertEvent.objects.create(alert=alert, kind=AlertEvent.Kind.RAISED, level="high", status="open", probability=0.82)
    sensor.last_seen_at = now
    sensor.save(update_fields=["last_seen_at"])
    return AlertScene(sensor=sensor, alert=alert, trigger_at=trigger_at)


@pytest.fixture
def alert_scene(sensor):
    return build_alert_scene(sensor)


@pytest.fixture
def analyst_user(db, django_user_model):
    """A logged-in-capable analyst without staff rights (may read, may not act)."""
    return django_user_model.objects.create_user("viewer", "viewer@example.org", PASSWORD)


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def screenshot():
    """Save a full-page screenshot as a test artifact: screenshot(page, "name")."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def _shot(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return _shot


def login(page, base_url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")
