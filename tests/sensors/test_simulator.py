"""The storm simulator: gateway batching, real posts through the ingestion API, retries, failures."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import orjson
import pytest
from django.core.management import CommandError, call_command

from sensors.models import Reading, Sensor, Site
from sensors.simulator import Batch, SimSensor, SimulatorError, simulate, simulated_batches

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def test_batches_are_one_per_gateway_per_hour_ending_now():
    sensors = [SimSensor("A-RG", "Alpha", "rain_gauge"), SimSensor("A-MP", "Alpha", "multi"), SimSensor("B-RV", "Beta", "river_gauge")]
    batches = simulated_batches(sensors=sensors, scenario="storm", hours=4, seed=1, now=NOW)
    assert [(b.hour, b.gateway) for b in batches] == [(NOW - timedelta(hours=3 - h), g) for h in range(4) for g in ("Alpha", "Beta")]
    alpha = batches[-2]
    assert [i["sensor_id"] for i in alpha.items] == ["A-RG", "A-MP"]
    assert set(alpha.items[0]) == {"sensor_id", "timestamp", "rainfall"}
    assert set(alpha.items[1]) == {"sensor_id", "timestamp", "rainfall", "soil_moisture", "ground_movement", "water_level"}
    assert set(batches[-1].items[0]) == {"sensor_id", "timestamp", "water_level"}
    assert alpha.items[0]["timestamp"] == NOW.isoformat()


def test_batches_are_split_at_the_ingest_limit_and_replay_the_same_for_a_seed():
    sensors = [SimSensor(f"S-{i}", "Alpha", "multi") for i in range(5)]
    batches = simulated_batches(sensors=sensors, scenario="flood", hours=2, seed=7, now=NOW, max_batch=2)
    assert [len(b.items) for b in batches] == [2, 2, 1, 2, 2, 1]
    again = simulated_batches(sensors=sensors, scenario="flood", hours=2, seed=7, now=NOW, max_batch=2)
    assert [b.items for b in batches] == [b.items for b in again]


def test_unknown_scenario_is_refused():
    with pytest.raises(ValueError, match="unknown scenario"):
        simulated_batches(sensors=[SimSensor("S", "G", "multi")], scenario="tsunami", hours=1, seed=0)


@pytest.fixture
def two_sites(db):
    uphill = Site.objects.create(name="Uphill", latitude=1.0, longitude=2.0)
    river = Site.objects.create(name="Riverside", latitude=1.5, longitude=2.5)
    Sensor.objects.create(sensor_id="SIM-01", site=uphill, kind=Sensor.Kind.MULTI, flood_stage_m=4.0)
    Sensor.objects.create(sensor_id="SIM-02", site=uphill, kind=Sensor.Kind.RAIN_GAUGE)
    Sensor.objects.create(sensor_id="SIM-03", site=river, kind=Sensor.Kind.RIVER_GAUGE, flood_stage_m=4.0)
    Sensor.objects.create(sensor_id="SIM-04", site=river, kind=Sensor.Kind.MULTI, status=Sensor.Status.MAINTENANCE)
    Sensor.objects.create(sensor_id="SIM-05", site=river, kind=Sensor.Kind.MULTI)


def test_simulator_posts_readings_through_the_api_and_they_are_stored(live_server, settings, make_key, two_sites):
    settings.PIPELINE_EAGER = True
    key = make_key(scopes=("ingest",))
    out = StringIO()
    call_command("simulate_sensors", "--scenario", "storm", "--sensors", "3", "--hours", "6", "--rate", "0",
                 "--url", live_server.url, "--api-key", key, stdout=out, stderr=StringIO())
    # First 3 active sensors by code: SIM-04 is in maintenance, SIM-05 is the fourth active one.
    counts = {s: Reading.objects.filter(sensor__sensor_id=s).count() for s in ("SIM-01", "SIM-02", "SIM-03", "SIM-05")}
    assert counts == {"SIM-01": 6, "SIM-02": 6, "SIM-03": 6, "SIM-05": 0}
    assert not Reading.objects.filter(sensor__sensor_id="SIM-02", water_level__isnull=False).exists()
    newest = Reading.objects.order_by("-timestamp").first().timestamp
    assert abs((datetime.now(timezone.utc) - newest).total_seconds()) < 120
    assert "12 batches posted, 18 readings sent, 18 accepted, 0 retries, 0 failed batches" in out.getvalue()


def test_simulator_stops_when_the_key_is_rejected(live_server, settings, make_key, two_sites):
    settings.PIPELINE_EAGER = True
    err = StringIO()
    with pytest.raises(CommandError, match="stopped early"):
        call_command("simulate_sensors", "--sensors", "1", "--hours", "2", "--rate", "0", "--url", live_server.url,
                     "--api-key", "not-a-real-key", stdout=StringIO(), stderr=err)
    assert "HTTP 401" in err.getvalue() or "HTTP 403" in err.getvalue()
    assert Reading.objects.count() == 0


def test_simulator_needs_an_api_key(two_sites, monkeypatch):
    monkeypatch.delenv("WARNING_SYSTEM_API_KEY", raising=False)
    with pytest.raises(CommandError, match="no API key"):
        call_command("simulate_sensors", "--url", "http://127.0.0.1:9", stdout=StringIO())


class _FlakyGateway(BaseHTTPRequestHandler):
    """An HTTP peer that answers 503 (Retry-After: 2), then 429 (Retry-After: 1), then 202."""

    answers: list[tuple[int, dict]] = []
    bodies: list[list] = []

    def do_POST(self):  # noqa: N802
        self.bodies.append(orjson.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        status, headers = self.answers.pop(0) if self.answers else (202, {})
        body = orjson.dumps({"accepted": len(self.bodies[-1])} if status == 202 else {"detail": "busy"})
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky_server():
    _FlakyGateway.answers = [(503, {"Retry-After": "2"}), (429, {"Retry-After": "1"})]
    _FlakyGateway.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyGateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _batch(n: int = 2) -> Batch:
    return Batch(gateway="G", hour=NOW, items=[{"sensor_id": f"S-{i}", "timestamp": NOW.isoformat(), "rainfall": 1.0} for i in range(n)])


def test_simulator_retries_503_and_429_after_the_servers_retry_after(flaky_server):
    waits: list[float] = []
    summary = simulate(batches=[_batch(2), _batch(3)], base_url=f"http://127.0.0.1:{flaky_server.server_port}", api_key="k", sleep=waits.append)
    assert waits == [2.0, 1.0]
    assert summary.retries == 2 and summary.accepted == 5 and summary.failed_batches == 0
    assert len(_FlakyGateway.bodies) == 4


def test_simulator_gives_up_after_the_retry_budget(flaky_server):
    _FlakyGateway.answers = [(503, {"Retry-After": "0"})] * 3
    with pytest.raises(SimulatorError) as caught:
        simulate(batches=[_batch()], base_url=f"http://127.0.0.1:{flaky_server.server_port}", api_key="k", max_retries=2, sleep=lambda s: None)
    assert caught.value.summary.failed_batches == 1 and caught.value.summary.retries == 2
    assert "HTTP 503" in str(caught.value)


def test_simulator_reports_a_rejected_batch_and_goes_on(flaky_server):
    _FlakyGateway.answers = [(400, {})]
    summary = simulate(batches=[_batch(1), _batch(4)], base_url=f"http://127.0.0.1:{flaky_server.server_port}", api_key="k", sleep=lambda s: None)
    assert summary.failed_batches == 1 and summary.accepted == 4
    assert "HTTP 400" in summary.errors[0]
