"""The embedded default (`make run`): SQLite, local-memory cache, eager pipeline, in a process of its own.

The rest of the suite runs against PostgreSQL, so the SQLite code paths of
the pipeline (row-by-row fallbacks, the feature vector stored as JSON text)
are exercised here, end to end: migrate, then a reading through the API.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import json, os, django
django.setup()
from django.core.management import call_command
from django.test import Client
from django.conf import settings
call_command("migrate", verbosity=0)
from management.services import api_key_create
from predictions.models import Prediction
from sensors.models import Sensor, Site
assert settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") and settings.PIPELINE_EAGER
site = Site.objects.create(name="S", region="R")
sensor = Sensor.objects.create(sensor_id="EMB-1", site=site, flood_stage_m=4.0)
_, key = api_key_create(name="k", scopes=["ingest", "read"])
client = Client()
auth = {"HTTP_AUTHORIZATION": f"Api-Key {key}"}
posted = [client.post("/api/v1/sensor-data", data=json.dumps(body), content_type="application/json", **auth).status_code
          for body in ({"sensor_id": "EMB-1", "timestamp": "2026-01-01T00:00:00Z", "rainfall": 2.0, "water_level": 1.5},
                       {"sensor_id": "EMB-1", "timestamp": "2026-01-01T01:00:00Z", "rainfall": 1.0, "water_level": 5.0})]
page = client.get("/api/v1/sensors/EMB-1/readings", **auth).json()
latest = Prediction.objects.order_by("-timestamp").first()
from alerts import outbox
from alerts.models import AlertEvent
raised = AlertEvent.objects.filter(kind="raised").select_related("alert").first()
key, value = outbox.encode_event(outbox._event_rows([raised.id])[0])  # the outbox's message, read through the ORM
event = json.loads(value)
print(json.dumps({"posted": posted, "readings": len(page["results"]), "predictions": Prediction.objects.count(),
                  "features": latest.features, "alerts": client.get("/api/v1/alerts", **auth).json()["count"],
                  "event_ok": key == b"EMB-1" and event["event_id"] == raised.id and event["alert_id"] == raised.alert_id
                  and event["triggered_at"] == raised.alert.triggered_at.isoformat() and event["at"] == raised.at.isoformat()
                  and event["v"] == 1}))
"""


def test_embedded_default_stores_scores_and_alerts_on_sqlite(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "DJANGO_SETTINGS_MODULE")}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'embedded.sqlite3'}", DJANGO_SETTINGS_MODULE="warning_system.settings")
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["posted"] == [202, 202]
    assert result["readings"] == 2 and result["predictions"] == 2
    features = result["features"]
    assert features["rain_72h"] == 3.0 and features["water_level"] == 5.0  # both readings in the window
    assert features["soil_moisture"] is None  # never measured: missing, not zero
    assert features["water_level_rate"] == 3.5  # (5.0 - 1.5) m over one hour
    assert result["alerts"] >= 1  # 5.0 m is above the 4.0 m flood stage
    assert result["event_ok"]  # the outbox reads events on SQLite too (the ORM path of alerts.outbox._event_rows)
