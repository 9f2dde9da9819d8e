"""Hostile input: oversized, deeply nested and malformed bodies, huge numbers, odd unicode, SQL injection.

Every answer must be a clear 4xx (or an empty result), never a 5xx, and the
tables must be intact afterwards. A static check makes sure no code passes
request data into SQL text.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest

from alerts.models import Alert
from sensors.models import Reading, Sensor

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
INGEST = "/api/v1/sensor-data"


@pytest.fixture
def eager(settings):
    settings.PIPELINE_EAGER = True


@pytest.fixture
def client_all(key_client):
    return key_client()


def _post(client, raw: bytes, path: str = INGEST):
    return client.generic("POST", path, raw, content_type="application/json")


def _assert_clean_4xx(response, *, field: str | None = None):
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    body = response.json()
    assert "detail" in body
    if field is not None:
        assert field in orjson.dumps(body).decode(), body


def test_body_over_one_mebibyte_is_a_413_for_ingest_and_predictions(eager, sensor, client_all):
    big = b'[' + b'{"sensor_id": "RG-001", "rainfall": 1.0},' * 30_000 + b'{"sensor_id": "RG-001", "rainfall": 1.0}]'
    assert len(big) > 1024 * 1024
    for path in (INGEST, "/api/v1/predictions"):
        response = _post(client_all, big, path)
        assert response.status_code == 413, (path, response.status_code)
    assert not Reading.objects.exists()


@pytest.mark.parametrize("depth", [500, 100_000])
def test_deeply_nested_json_is_a_400(eager, sensor, client_all, depth):
    raw = b"[" * depth + b"]" * depth
    for path in (INGEST, "/api/v1/predictions"):
        _assert_clean_4xx(_post(client_all, raw, path))
    nested_field = b'{"sensor_id": "RG-001", "rainfall": ' + b"[" * depth + b"]" * depth + b"}"
    # Within the parser's depth limit the validator names the field; beyond it the body is not JSON at all.
    _assert_clean_4xx(_post(client_all, nested_field), field="rainfall" if depth < 1000 else None)


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", str(2**70).encode(), b"1" * 5000, b"NaN", b"Infinity"])
def test_huge_or_non_finite_numbers_are_a_400_naming_the_field(eager, sensor, client_all, number):
    raw = b'{"sensor_id": "RG-001", "rainfall": ' + number + b"}"
    _assert_clean_4xx(_post(client_all, raw))
    response = _post(client_all, b'{"rainfall": ' + number + b', "soil_moisture": 0.3}', "/api/v1/predictions")
    _assert_clean_4xx(response)
    assert not Reading.objects.exists()


@pytest.mark.parametrize("sensor_id", ["🌧️-01", "\u202eRG-001", "RG-\u0000001", "\u0000", "x" * 10_000, "'; DROP TABLE sensors_reading; --", "RG-001\n"])
def test_odd_unicode_and_control_characters_in_sensor_id_are_a_clean_4xx_everywhere(eager, sensor, client_all, sensor_id):
    reading = orjson.dumps({"sensor_id": sensor_id, "rainfall": 1.0})
    _assert_clean_4xx(_post(client_all, reading), field="sensor_id")
    response = client_all.post("/api/v1/predictions", orjson.dumps({"sensor_id": sensor_id}), content_type="application/json")
    _assert_clean_4xx(response)
    quoted = quote(sensor_id, safe="")
    for path in (f"/api/v1/sensors/{quoted}", f"/api/v1/sensors/{quoted}/readings", f"/api/v1/sensors/{quoted}/predictions"):
        response = client_all.get(path)
        assert response.status_code in (400, 404), (path, response.status_code)
    assert Reading.objects.count() == 0 and Sensor.objects.count() == 1


INJECTIONS = [
    "' OR '1'='1",
    "1; DROP TABLE sensors_reading; --",
    "1' UNION SELECT password FROM auth_user --",
    "\\'; SELECT pg_sleep(5); --",
    "%27%20OR%201=1",
    "1) OR (1=1",
    "\u0000",
]
ALERT_PARAMS = ("status", "hazard", "level", "sensor_id", "site", "since", "until", "page", "page_size")
SENSOR_PARAMS = ("status", "kind", "site", "q")
WINDOW_PARAMS = ("since", "until", "limit")


def _tables_intact() -> tuple[int, int, int]:
    return Reading.objects.count(), Sensor.objects.count(), Alert.objects.count()


def test_sql_injection_in_every_filter_parameter_fails_cleanly_and_leaves_tables_intact(eager, sensor, client_all):
    assert _post(client_all, orjson.dumps({"sensor_id": "RG-001", "water_level": 6.0})).status_code == 202
    before = _tables_intact()
    checks = [("/api/v1/alerts", p) for p in ALERT_PARAMS] + [("/api/v1/sensors", p) for p in SENSOR_PARAMS]
    checks += [(f"/api/v1/sensors/RG-001/{kind}", p) for kind in ("readings", "predictions") for p in WINDOW_PARAMS]
    for path, param in checks:
        for payload in INJECTIONS:
            response = client_all.get(path, {param: payload})
            assert response.status_code in (200, 400, 404), (path, param, payload, response.status_code, response.content[:200])
            if response.status_code == 200 and param not in ("page_size",):
                body = response.json()
                rows = body.get("results", body) if isinstance(body, dict) else body
                assert rows == [] or param == "q" and rows == [], (path, param, payload, body)
            assert _tables_intact() == before


def test_sql_injection_in_sensor_id_of_ingest_and_predictions_fails_cleanly(eager, sensor, client_all):
    for payload in INJECTIONS:
        _assert_clean_4xx(_post(client_all, orjson.dumps({"sensor_id": payload, "rainfall": 1.0})), field="sensor_id")
        response = client_all.post("/api/v1/predictions", orjson.dumps({"sensor_id": payload}), content_type="application/json")
        _assert_clean_4xx(response)
    assert _tables_intact() == (0, 1, 0)


# --- static check: no SQL text built from values --------------------------------------------

SOURCE_DIRS = ("alerts", "management", "predictions", "sensors", "warning_system", "scripts", "bench")


def _python_files():
    for directory in SOURCE_DIRS:
        for path in (ROOT / directory).rglob("*.py"):
            if "migrations" not in path.parts:
                yield path


def test_no_code_uses_raw_or_extra_querysets():
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in _python_files() for n, line in enumerate(p.read_text().splitlines(), 1)
                 if re.search(r"\.(raw|extra)\(", line)]
    assert offenders == []


def _sql_argument_is_safe(node: ast.expr) -> bool:
    """SQL text may be a literal, or an f-string whose holes are identifiers/fragments built in code, never a %-format or concatenation of values."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.JoinedStr):
        # Holes may only name quoted identifiers, placeholder lists or constant fragments built in the module.
        for value in node.values:
            if isinstance(value, ast.FormattedValue) and _mentions_request_data(value.value):
                return False
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return False  # "... %s" % value: interpolation instead of parameters
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _sql_argument_is_safe(node.left) and _sql_argument_is_safe(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join":
        return not any(_mentions_request_data(arg) for arg in node.args)  # ", ".join(fragments built in code)
    return isinstance(node, ast.Name)  # a module-level SQL constant


REQUEST_NAMES = {"request", "query_params", "GET", "POST", "data", "params", "validated_data", "kwargs"}


def _mentions_request_data(node: ast.AST) -> bool:
    return any(
        (isinstance(n, ast.Name) and n.id in REQUEST_NAMES) or (isinstance(n, ast.Attribute) and n.attr in REQUEST_NAMES)
        for n in ast.walk(node)
    )


def test_every_cursor_execute_passes_values_as_parameters():
    calls, offenders = 0, []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("execute", "executemany", "copy"):
                if not node.args:
                    continue
                calls += 1
                if not _sql_argument_is_safe(node.args[0]):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert calls > 0, "found no cursor.execute calls: the check looks at the wrong files"
    assert offenders == []
