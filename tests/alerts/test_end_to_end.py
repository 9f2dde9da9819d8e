"""A storm posted through the real API reaches the consumer, raises alerts, and is visible everywhere.

The whole path with no shortcut: simulate_sensors' client -> live HTTP server
-> broker (sensor.data) -> consume_readings' consumer -> PostgreSQL ->
alerts API, analyst pages and the `alerts` topic. A calm scenario must raise
nothing: an early-warning system that cries wolf loses its audience.
"""
from __future__ import annotations

import orjson
import pytest

from alerts.models import Alert, AlertEvent
from sensors.demo import demo_load
from sensors.models import Reading
from sensors.simulator import simulate, simulated_batches, simulation_sensors
from tests.kafka_utils import ThreadedConsumer, create_test_topics, read_topic, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo_network(kafka_topics):
    create_test_topics()
    demo_load()
    return simulation_sensors(count=10)


def _post_scenario(live_server, make_key, sensors, scenario: str, hours: int) -> int:
    batches = simulated_batches(sensors=sensors, scenario=scenario, hours=hours, seed=1)
    summary = simulate(batches=batches, base_url=live_server.url, api_key=make_key(scopes=("ingest",)))
    assert summary.failed_batches == 0 and summary.accepted == summary.readings
    return summary.accepted


def test_simulated_storm_raises_alerts_seen_in_api_pages_and_alerts_topic(live_server, make_key, key_client, client, staff_user, demo_network, settings):
    accepted = _post_scenario(live_server, make_key, demo_network, "landslide", hours=12)
    assert Reading.objects.count() == 0  # nothing is written before the consumer runs

    with ThreadedConsumer():
        wait_for(lambda: Reading.objects.count() == accepted, timeout=60, message="every accepted reading stored")
        wait_for(lambda: not AlertEvent.objects.filter(published_at__isnull=True, kind__in=AlertEvent.PUBLISHED_KINDS).exists(),
                 timeout=30, message="alert events published")

    alerts = list(Alert.objects.select_related("sensor"))
    assert alerts, "a landslide-producing storm raised no alert"
    assert {a.hazard for a in alerts} <= {"landslide", "flood"}
    assert all(a.model_version and a.features and a.message for a in alerts if a.source == "model")

    listed = key_client(scopes=("read",)).get("/api/v1/alerts?page_size=200").json()
    assert listed["count"] == len(alerts)
    assert {row["id"] for row in listed["results"]} == {a.id for a in alerts}

    client.force_login(staff_user)
    active = [a for a in alerts if a.is_active]
    page = client.get("/alerts/").content.decode()
    for alert in alerts[:5]:
        assert alert.sensor.sensor_id in page
    if active:
        dashboard = client.get("/").content.decode()
        assert active[0].sensor.sensor_id in dashboard

    published = AlertEvent.objects.filter(kind__in=AlertEvent.PUBLISHED_KINDS).count()
    messages = read_topic(settings.KAFKA_ALERTS_TOPIC, expected=published)
    events = [orjson.loads(m.value()) for m in messages]
    assert {e["alert_id"] for e in events} == {a.id for a in alerts}
    assert all(m.key().decode() == e["sensor_id"] for m, e in zip(messages, events))
    assert len({e["event_id"] for e in events}) == len(events)


def test_calm_scenario_raises_no_alert(live_server, make_key, demo_network, settings):
    accepted = _post_scenario(live_server, make_key, demo_network, "calm", hours=24)

    with ThreadedConsumer():
        wait_for(lambda: Reading.objects.count() == accepted, timeout=60, message="every accepted reading stored")

    assert not Alert.objects.exists()
    assert not AlertEvent.objects.exists()
