"""The production image's behaviour, run for real outside a container.

Static files are collected exactly as the Dockerfile does it, logs are checked
to be one valid JSON object per line, gunicorn is started with the
repository's config, and the image's health probe is run against a server.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from warning_system.logging import JsonFormatter

from .conftest import ROOT, dockerfile_healthcheck_code

PRODUCTION_SECRET = "production-test-" + "s" * 60


def _production_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "LOG_FORMAT", "STATIC_ROOT")}
    env.update(DJANGO_SETTINGS_MODULE="warning_system.settings.production", SECRET_KEY=PRODUCTION_SECRET,
               ALLOWED_HOSTS="warn.example.org", **overrides)
    return env


def _json_lines(text: str) -> list[dict]:
    """Every non-empty line parsed as JSON (fails on the first line that is not)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_collectstatic_runs_with_production_settings_and_the_dockerfile_build_values(tmp_path, collectstatic_build_env):
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS")}
    env.update(collectstatic_build_env, DJANGO_SETTINGS_MODULE="warning_system.settings.production", STATIC_ROOT=str(tmp_path))
    result = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    hashed = manifest["admin/css/base.css"]
    assert hashed != "admin/css/base.css" and (tmp_path / hashed).is_file()
    assert (tmp_path / f"{hashed}.gz").is_file()


def test_json_formatter_emits_one_valid_json_object_per_record():
    try:
        raise ValueError('bad "value"\non two lines')
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("sensors.consumer", logging.ERROR, __file__, 1, "consumer.batch_failed %s", ("x",), exc_info)
    record.batch = 17
    record.sensors = ["RG-001", "RG-002"]
    record.when = object()  # not JSON-serializable: rendered as its str()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    payload = json.loads(line)
    assert payload["event"] == "consumer.batch_failed x"
    assert (payload["level"], payload["logger"]) == ("ERROR", "sensors.consumer")
    assert (payload["batch"], payload["sensors"]) == (17, ["RG-001", "RG-002"])
    assert payload["when"].startswith("<object object")
    assert 'ValueError: bad "value"' in payload["exc"]
    assert payload["time"].endswith("+00:00")


def test_production_settings_log_json_lines():
    code = (
        "import logging, django; django.setup();"
        "log = logging.getLogger('sensors.consumer');"
        "log.info('consumer.stats', extra={'lag': 3, 'note': 'a \"quoted\"\\nvalue'});"
        "log.warning('consumer.retrying', extra={'attempt': 2})"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_production_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = _json_lines(result.stdout + result.stderr)
    events = {line["event"]: line for line in lines}
    assert events["consumer.stats"]["lag"] == 3
    assert events["consumer.stats"]["note"] == 'a "quoted"\nvalue'
    assert events["consumer.retrying"]["level"] == "WARNING"


def test_the_preloading_master_opens_no_connection_producer_model_or_thread_before_fork():
    """What the gunicorn master imports is shared by every forked worker: it must hold nothing live."""
    code = (
        "import json, runpy, sys, threading, types;"
        "config = runpy.run_path('gunicorn.conf.py');"
        "import warning_system.wsgi;"
        "config['when_ready'](types.SimpleNamespace(cfg=types.SimpleNamespace(preload_app=config['preload_app'])));"
        "from django.db import connections;"
        "db = connections['default'];"
        "producer = sys.modules['sensors.producer'];"
        "scoring = sys.modules['predictions.scoring'];"
        "print(json.dumps({'vendor': db.vendor, 'connection': db.connection is not None,"
        " 'pools': len(type(db)._connection_pools), 'producer': producer._current is not None,"
        " 'models': scoring._registry is not None, 'threads': threading.active_count(),"
        " 'views_imported': 'xgboost' in sys.modules}))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_production_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout.strip().splitlines()[-1])
    assert state == {"vendor": "postgresql", "connection": False, "pools": 0, "producer": False,
                     "models": False, "threads": 1, "views_imported": True}


@pytest.fixture
def gunicorn_server(tmp_path):
    """gunicorn started with the repository's config (one worker), on a free port; yields (url, process)."""
    port = _free_port()
    env = _production_env(GUNICORN_WORKERS="1", GUNICORN_THREADS="2", STATIC_ROOT=str(tmp_path), SECURE_SSL_REDIRECT="true",
                          ACCESS_LOG="all", LOG_LEVEL="INFO")
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{port}", "warning_system.wsgi:application"],
            cwd=ROOT, env=env, stdout=out, stderr=err,
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, stderr.read_text()
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}", process, stdout
    if process.poll() is None:
        process.kill()
        process.wait()


def test_gunicorn_serves_health_and_logs_each_request_as_json(gunicorn_server):
    url, process, stdout = gunicorn_server
    request = urllib.request.Request(f"{url}/api/v1/health?probe=1",
                                     headers={"Host": "warn.example.org", "User-Agent": 'probe "quoted"'})
    try:
        response = urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as failing:  # 503 while a dependency (e.g. models) is missing
        response = failing
    status, body = response.status, json.loads(response.read())
    assert status in (200, 503) and set(body["checks"]) >= {"database", "cache", "models", "broker"}

    # A host outside ALLOWED_HOSTS is refused: the production settings are in force.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{url}/api/v1/health", timeout=30)
    assert refused.value.code == 400

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=40) == 0
    lines = _json_lines(stdout.read_text())
    [access] = [line for line in lines if line.get("event") == "http.request" and line.get("query") == "probe=1"]
    assert (access["logger"], access["method"], access["path"], access["status"]) == ("gunicorn.access", "GET", "/api/v1/health", status)
    assert access["user_agent"] == 'probe "quoted"'
    assert access["duration_ms"] >= 0
    assert any(line["logger"] == "gunicorn.error" and "Booting worker" in line["event"] for line in lines)
    [warm] = [line for line in lines if line.get("event") == "warmup.done"]  # one worker, warmed before serving
    assert warm["models"] is True and "sensors" in warm  # this database may not be migrated: best effort


def test_idle_new_connections_do_not_hold_the_worker_threads(gunicorn_server):
    """Stations that connect before they have a reading must not starve the ones posting now.

    gunicorn's gthread worker waits in a thread for a new connection's first bytes
    (5 s by default); gunicorn.conf.py shortens that to milliseconds and leaves idle
    connections to the poller. The server has 2 threads; 3 idle connections come first.
    """
    url, process, _ = gunicorn_server
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(urllib.error.HTTPError):  # the worker is up and warmed (the master listens before it is)
        urllib.request.urlopen(f"{url}/api/v1/health", timeout=60)
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
    try:
        time.sleep(0.2)  # accepted and handed to threads (default) or to the poller (ours)
        started = time.monotonic()
        with pytest.raises(urllib.error.HTTPError) as refused:  # any answer will do: a foreign Host is a quick 400
            urllib.request.urlopen(f"{url}/api/v1/health", timeout=30)
        waited = time.monotonic() - started
    finally:
        for sock in idle:
            sock.close()
    assert refused.value.code == 400
    assert waited < 2.5, f"answered after {waited:.1f} s: idle connections held the worker threads"


class _HealthStub(BaseHTTPRequestHandler):
    status = 200
    hosts: list[str] = []

    def do_GET(self):
        type(self).hosts.append(self.headers["Host"])
        body = b'{"status": "ok"}' if self.path == "/api/v1/health" else b"{}"
        self.send_response(self.status if self.path == "/api/v1/health" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def health_stub():
    handler = type("Stub", (_HealthStub,), {"hosts": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def _run_probe(dockerfile, port: int, allowed_hosts: str | None) -> int:
    code = dockerfile_healthcheck_code(dockerfile)
    assert "http://127.0.0.1:8000/api/v1/health" in code
    env = {k: v for k, v in os.environ.items() if k != "ALLOWED_HOSTS"}
    if allowed_hosts is not None:
        env["ALLOWED_HOSTS"] = allowed_hosts
    code = code.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=30).returncode


@pytest.mark.parametrize("allowed_hosts,host", [
    ("warn.example.org,api.example.org", "warn.example.org"),
    (".example.org", "example.org"),
    ("*", "localhost"),
    (None, "localhost"),
])
def test_image_health_probe_passes_on_200_with_an_allowed_host(dockerfile, health_stub, allowed_hosts, host):
    server, handler = health_stub
    assert _run_probe(dockerfile, server.server_address[1], allowed_hosts) == 0
    assert handler.hosts == [host]


def test_image_health_probe_fails_when_health_answers_503(dockerfile, health_stub):
    server, handler = health_stub
    handler.status = 503
    assert _run_probe(dockerfile, server.server_address[1], "warn.example.org") != 0
