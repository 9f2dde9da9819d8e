"""manage.py load_history: bulk import of historical readings via COPY, idempotent, all or nothing."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from sensors.models import Reading, Sensor

pytestmark = pytest.mark.django_db

HEADER = "sensor_id,timestamp,rainfall,soil_moisture,ground_movement,water_level\n"


def _write(tmp_path, body: str, header: str = HEADER):
    path = tmp_path / "history.csv"
    path.write_text(header + body, encoding="utf-8")
    return str(path)


def _load(*args: str) -> str:
    out = StringIO()
    call_command("load_history", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def two_sensors(make_sensor):
    return make_sensor("HX-1"), make_sensor("HX-2")


def test_csv_loads_every_row_with_its_values(tmp_path, two_sensors):
    path = _write(tmp_path, (
        "HX-1,2026-01-01T00:00:00Z,1.5,0.31,0.2,\n"
        "HX-1,2026-01-01T00:15:00+00:00,,0.32,,\n"
        "HX-2,2026-01-01T01:00:00+01:00,0,,,2.75\n"
    ))
    output = _load("--csv", path)
    assert "Loaded 3 new readings from 3 rows (0 already stored)" in output
    assert "rows/s" in output
    first = Reading.objects.get(sensor__sensor_id="HX-1", timestamp=datetime(2026, 1, 1, tzinfo=UTC))
    assert (first.rainfall, first.soil_moisture, first.ground_movement, first.water_level) == (1.5, 0.31, 0.2, None)
    other = Reading.objects.get(sensor__sensor_id="HX-2")
    assert other.timestamp == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)  # +01:00 offset honoured
    assert other.water_level == 2.75 and other.rainfall == 0.0


def test_loading_moves_last_seen_forward_but_never_back(tmp_path, two_sensors):
    newer = datetime(2026, 6, 1, tzinfo=UTC)
    Sensor.objects.filter(sensor_id="HX-2").update(last_seen_at=newer)
    _load("--csv", _write(tmp_path, "HX-1,2026-01-01T00:00:00Z,1,,,\nHX-2,2026-01-01T00:00:00Z,1,,,\n"))
    assert Sensor.objects.get(sensor_id="HX-1").last_seen_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert Sensor.objects.get(sensor_id="HX-2").last_seen_at == newer


def test_reloading_the_same_csv_adds_nothing(tmp_path, two_sensors):
    path = _write(tmp_path, "HX-1,2026-01-01T00:00:00Z,1,,,\nHX-2,2026-01-01T00:00:00Z,2,,,\n")
    _load("--csv", path)
    output = _load("--csv", path)
    assert "Loaded 0 new readings from 2 rows (2 already stored)" in output
    assert Reading.objects.count() == 2


def test_a_row_repeated_in_the_file_is_stored_once(tmp_path, two_sensors):
    output = _load("--csv", _write(tmp_path, "HX-1,2026-01-01T00:00:00Z,1,,,\nHX-1,2026-01-01T00:00:00Z,1,,,\n"))
    assert "Loaded 1 new readings from 2 rows (1 already stored)" in output
    assert Reading.objects.count() == 1


@pytest.mark.parametrize(
    ("bad_row", "complaint"),
    [
        ("HX-2,2026-01-01T01:00:00Z,1,1.5,,", "line 4: soil_moisture: 1.5 is not between 0 and 1"),
        ("HX-2,2026-01-01T01:00:00,1,,,", "line 4: timestamp: must include a UTC offset"),
        ("HX-2,yesterday,1,,,", "line 4: timestamp: must be an ISO 8601 string"),
        ("HX-2,2026-01-01T01:00:00Z,lots,,,", "line 4: rainfall: 'lots' is not a number"),
        ("HX-2,2026-01-01T01:00:00Z,nan,,,", "line 4: rainfall: nan is not between 0 and 500"),
        ("HX-2,2026-01-01T01:00:00Z,,,,", "line 4: at least one of rainfall"),
        ("HX-2,2026-01-01T01:00:00Z,1,,", "line 4: expected 6 fields, got 5"),
    ],
)
def test_a_bad_row_rejects_the_whole_file_naming_the_line(tmp_path, two_sensors, bad_row, complaint):
    path = _write(tmp_path, (
        "HX-1,2026-01-01T00:00:00Z,1,,,\n"
        "HX-1,2026-01-01T00:15:00Z,1,,,\n"
        f"{bad_row}\n"
        "HX-1,2026-01-01T00:30:00Z,1,,,\n"
    ))
    with pytest.raises(CommandError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        _load("--csv", path)
    assert Reading.objects.count() == 0


def test_a_file_without_the_header_is_rejected(tmp_path, two_sensors):
    path = _write(tmp_path, "HX-1,2026-01-01T00:00:00Z,1,,,\n", header="")
    with pytest.raises(CommandError, match="line 1: bad header"):
        _load("--csv", path)
    assert Reading.objects.count() == 0


def test_columns_may_come_in_any_order(tmp_path, two_sensors):
    path = _write(tmp_path, "3.5,HX-1,,,,2026-01-01T00:00:00Z\n", header="water_level,sensor_id,rainfall,soil_moisture,ground_movement,timestamp\n")
    _load("--csv", path)
    assert Reading.objects.get().water_level == 3.5


def test_unknown_sensors_are_reported_with_their_first_line_and_nothing_is_loaded(tmp_path, two_sensors):
    path = _write(tmp_path, (
        "HX-1,2026-01-01T00:00:00Z,1,,,\n"
        "NOPE-9,2026-01-01T00:00:00Z,1,,,\n"
        "NOPE-9,2026-01-01T00:15:00Z,1,,,\n"
        "GHOST,2026-01-01T00:00:00Z,1,,,\n"
    ))
    with pytest.raises(CommandError) as excinfo:
        _load("--csv", path)
    message = str(excinfo.value)
    assert "unknown sensor_id in 3 rows" in message
    assert "'NOPE-9' (line 3)" in message and "'GHOST' (line 5)" in message
    assert "Nothing was loaded" in message
    assert Reading.objects.count() == 0


def test_skip_unknown_loads_the_known_rows_and_reports_the_skipped(tmp_path, two_sensors):
    path = _write(tmp_path, "HX-1,2026-01-01T00:00:00Z,1,,,\nNOPE-9,2026-01-01T00:00:00Z,1,,,\n")
    output = _load("--csv", path, "--skip-unknown")
    assert "Loaded 1 new readings from 2 rows (0 already stored)" in output
    assert "Skipped 1 rows of unknown sensors: NOPE-9" in output
    assert Reading.objects.count() == 1


def test_a_missing_file_is_a_clear_error(tmp_path, db):
    with pytest.raises(CommandError, match="cannot read .*missing.csv"):
        _load("--csv", str(tmp_path / "missing.csv"))


def test_generate_spreads_readings_over_sensors_at_the_interval_ending_at_end(make_sensor):
    for code in ("GEN-1", "GEN-2", "GEN-3", "OTHER-1"):
        make_sensor(code)
    output = _load("--generate", "7", "--prefix", "GEN-", "--sensors", "2", "--interval-seconds", "600", "--end", "2026-03-01T12:00:00Z")
    assert "Loaded 7 new readings from 7 rows" in output
    end = datetime(2026, 3, 1, 12, tzinfo=UTC)
    first = list(Reading.objects.filter(sensor__sensor_id="GEN-1").order_by("timestamp").values_list("timestamp", flat=True))
    second = list(Reading.objects.filter(sensor__sensor_id="GEN-2").order_by("timestamp").values_list("timestamp", flat=True))
    assert first == [end - timedelta(minutes=30), end - timedelta(minutes=20), end - timedelta(minutes=10), end]
    assert second == [end - timedelta(minutes=30), end - timedelta(minutes=20), end - timedelta(minutes=10)]
    assert not Reading.objects.filter(sensor__sensor_id__in=["GEN-3", "OTHER-1"]).exists()
    # Generating the same history again is idempotent.
    assert "Loaded 0 new readings from 7 rows (7 already stored)" in _load(
        "--generate", "7", "--prefix", "GEN-", "--sensors", "2", "--interval-seconds", "600", "--end", "2026-03-01T12:00:00Z"
    )


def test_generate_refuses_more_sensors_than_exist(make_sensor):
    make_sensor("GEN-1")
    with pytest.raises(CommandError, match="only 1 active sensors match prefix 'GEN-'"):
        _load("--generate", "10", "--prefix", "GEN-", "--sensors", "5")


def test_rows_spanning_several_copy_chunks_all_load_in_one_transaction(tmp_path, two_sensors, monkeypatch):
    monkeypatch.setattr("sensors.bulk.CHUNK_ROWS", 2)
    rows = "".join(f"HX-1,2026-01-01T00:{minute:02d}:00Z,1,,,\n" for minute in range(5))
    _load("--csv", _write(tmp_path, rows))
    assert Reading.objects.count() == 5
    # A bad row in the last chunk rolls back the chunks already moved.
    Reading.objects.all().delete()
    with pytest.raises(CommandError, match="line 7"):
        _load("--csv", _write(tmp_path, rows + "HX-1,2026-01-01T01:00:00Z,-1,,,\n"))
    assert Reading.objects.count() == 0
