"""The analyst's path through the pages in a real browser (headless Chromium via Playwright)."""
from __future__ import annotations

import re

import pytest

from alerts.models import Alert, AlertEvent
from tests.browser_conftest import chromium, login, screenshot  # noqa: F401  (fixtures)
from tests.browser_conftest import build_alert_scene

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_analyst_sees_open_alert_opens_it_and_acknowledges_with_note(live_server, chromium, screenshot, staff_user, sensor):
    scene = build_alert_scene(sensor)
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        login(page, live_server.url, "analyst")
        row = page.locator(f'tr[data-alert-id="{scene.alert.pk}"]')
        row.wait_for()
        assert "RG-001" in row.inner_text()
        assert page.locator('[data-count="landslide-high"]').inner_text() == "1"
        screenshot(page, "dashboard")

        row.locator("a").first.click()
        page.wait_for_url(re.compile(rf"/alerts/{scene.alert.pk}/$"))
        assert page.locator("svg.chart").count() >= 2
        assert page.locator('svg g[data-marker="trigger"]').count() >= 1
        assert page.locator("#alert-status").inner_text() == "Open"
        screenshot(page, "alert-detail")

        page.fill("#ack-note", "Field team dispatched to RG-001")
        page.click("button[value=acknowledge]")
        page.wait_for_load_state()
        assert page.locator("#alert-status").inner_text() == "Acknowledged"
        assert "Field team dispatched to RG-001" in page.locator(".timeline").inner_text()
        screenshot(page, "alert-acknowledged")

        page.click("nav >> text=Sensors")
        page.wait_for_url(re.compile(r"/sensors/$"))
        screenshot(page, "sensor-list")
        page.click("text=RG-001")
        page.locator('figure[data-panel="Risk"] svg').wait_for()
        screenshot(page, "sensor-detail")
    finally:
        context.close()
    alert = Alert.objects.get(pk=scene.alert.pk)
    assert alert.status == Alert.Status.ACKNOWLEDGED and alert.acknowledged_by == "analyst"
    assert AlertEvent.objects.filter(alert=alert, kind="acknowledged", note="Field team dispatched to RG-001").exists()


def test_dashboard_on_a_phone_shows_the_alert_without_horizontal_scrolling(live_server, chromium, screenshot, staff_user, sensor):
    scene = build_alert_scene(sensor)
    context = chromium.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        login(page, live_server.url, "analyst")
        row = page.locator(f'tr[data-alert-id="{scene.alert.pk}"]')
        row.wait_for()
        assert row.is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "dashboard-phone")
        page.goto(f"{live_server.url}/alerts/{scene.alert.pk}/")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "alert-detail-phone")
    finally:
        context.close()


def test_dashboard_refreshes_the_open_alerts_without_a_full_reload(live_server, chromium, staff_user, sensor, make_sensor):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        login(page, live_server.url, "analyst")
        page.evaluate("window.__marker = 'same page'")
        live = page.locator("#live")
        live.evaluate("el => el.setAttribute('data-refresh-seconds', '1')")
        assert page.locator("tr[data-alert-id]").count() == 0
        scene = build_alert_scene(make_sensor("RG-LIVE"))
        # The interval was already scheduled at 15 s; trigger the same refresh path a tab switch uses.
        page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
        page.locator(f'tr[data-alert-id="{scene.alert.pk}"]').wait_for(timeout=5000)
        assert page.evaluate("window.__marker") == "same page"
    finally:
        context.close()
