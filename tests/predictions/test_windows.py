"""The consumer's per-sensor windows give exactly the features of the database path.

Each test feeds the same readings, in the same batches, to two sensors: one
scored with ``SensorWindows`` (the consumer) and its twin scored from the
database only (``windows=None``, the eager API path); their Prediction rows
must be identical, features and probabilities, including late readings
inside a window, late readings older than a window's start, sensors first
seen after a restart, and readings written behind a window's back.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from predictions.models import Prediction
from predictions.windows import SensorWindows
from sensors.bulk import readings_bulk_load
from sensors.models import Reading
from sensors.pipeline import process_readings
from sensors.records import ReadingIn, to_unix_us

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 6, 1, tzinfo=timezone.utc)


def _series(sensor_id: str, *, count: int, minutes: int, seed: int = 7, decimals: int | None = 3) -> list[ReadingIn]:
    """Readings as stations report them (at most 3 decimals), or with every digit (``decimals=None``)."""
    rng = random.Random(seed)

    def value(low: float, high: float) -> float:
        v = rng.uniform(low, high)
        return v if decimals is None else round(v, decimals)

    out = []
    for i in range(count):
        ts = T0 + timedelta(minutes=minutes * i, microseconds=rng.randrange(0, 10**6))  # sub-second times too
        out.append(ReadingIn(
            sensor_id=sensor_id, timestamp=ts, received_at=ts,
            rainfall=None if rng.random() < 0.2 else value(0, 40),
            soil_moisture=None if rng.random() < 0.3 else value(0.2, 0.5),
            ground_movement=None if rng.random() < 0.5 else value(0, 3),
            water_level=value(-1, 5),
        ))
    return out


def _as(sensor_id: str, readings: list[ReadingIn]) -> list[ReadingIn]:
    return [ReadingIn(**{**{f: getattr(r, f) for f in r.__slots__}, "sensor_id": sensor_id}) for r in readings]


def _predictions(sensor) -> dict:
    return {
        p.timestamp: (p.features, p.landslide_probability, p.flood_probability, p.landslide_risk, p.flood_risk)
        for p in Prediction.objects.filter(sensor=sensor)
    }


@pytest.fixture
def twins(make_sensor):
    """(sensor scored with windows, sensor scored from the database), same configuration."""
    return (
        make_sensor("WIN-CACHED", flood_stage_m=4.0, rainfall_limit_mm_h=40),
        make_sensor("WIN-DATABASE", flood_stage_m=4.0, rainfall_limit_mm_h=40),
    )


def _feed(batches: list[list[ReadingIn]], twins, windows: SensorWindows) -> None:
    cached, database = twins
    for batch in batches:
        process_readings(readings=_as(cached.sensor_id, batch), windows=windows)
        process_readings(readings=_as(database.sensor_id, batch))


@pytest.mark.parametrize("max_bytes", [16_000_000, 150 * 16], ids=["fits", "outgrows-the-budget"])
def test_windows_give_the_features_of_the_database_path_for_late_and_out_of_order_readings(twins, max_bytes):
    readings = _series("X", count=330, minutes=20)  # 110 h: the window moves past its first readings
    very_late = readings[10]  # 3 days behind the newest: older than the window's start
    behind_slack = readings[300]  # 3 h behind: inside the window, but its 72 h reach back before the start
    slightly_late = readings[326]  # 40 minutes behind: scored from the window
    live = [r for r in readings if r not in (very_late, behind_slack, slightly_late)]
    before, tail = [r for r in live if r.timestamp < readings[310].timestamp], [r for r in live if r.timestamp >= readings[310].timestamp]
    random.Random(3).shuffle(tail)
    batches = [before[i : i + 7] for i in range(0, len(before), 7)] + [[behind_slack], tail[:9], tail[9:], [slightly_late]]
    windows = SensorWindows(max_bytes=max_bytes, ttl_seconds=3600)

    _feed(batches, twins, windows)
    if max_bytes >= 16_000_000:
        assert len(windows) == 1  # the cached path was the one taken
        assert 0 < windows.rows <= 75 * 3  # about 73 h at a 20-minute cadence, not the 110 h stored
    _feed([[very_late]], twins, windows)

    cached, database = twins
    assert len(_predictions(cached)) == len(readings)
    assert _predictions(cached) == _predictions(database)


def test_sensor_first_seen_after_a_restart_reads_its_window_from_the_database(twins):
    readings = _series("X", count=120, minutes=30)
    history, after = readings[:100], readings[100:]
    _feed([history[i : i + 10] for i in range(0, 100, 10)], twins, SensorWindows(max_bytes=16_000_000, ttl_seconds=3600))

    restarted = SensorWindows(max_bytes=16_000_000, ttl_seconds=3600)
    _feed([after[:5], after[5:]], twins, restarted)

    cached, database = twins
    assert _predictions(cached) == _predictions(database)
    window = restarted.covering(cached.pk, 2**62)
    assert window is not None and len(window) == 120  # every stored reading: none is 73 h older than the newest
    assert {c.dtype.kind for c in window.columns} == {"i"}  # reported to 3 decimals: kept as exact thousandths
    assert window.nbytes < 24 * len(window)  # small values: int16 columns


def test_readings_written_behind_a_window_are_seen_once_it_expires(twins):
    readings = _series("X", count=80, minutes=30)
    windows = SensorWindows(max_bytes=16_000_000, ttl_seconds=0)  # expired at once: every batch re-reads
    _feed([readings[i : i + 10] for i in range(0, 60, 10)], twins, windows)
    cached, database = twins
    behind = [
        (i, sensor.sensor_id, T0 - timedelta(minutes=15), 30.0, 0.4, None, 2.5)
        for i, sensor in enumerate(twins)
    ]
    behind += [(2 + i, sensor.sensor_id, readings[59].timestamp + timedelta(minutes=10), 12.0, None, None, 3.0) for i, sensor in enumerate(twins)]
    readings_bulk_load(rows=behind)

    _feed([readings[60:70], readings[70:]], twins, windows)

    assert _predictions(cached) == _predictions(database)


def test_a_batch_older_than_every_window_is_scored_from_the_database(twins):
    readings = _series("X", count=200, minutes=30)
    windows = SensorWindows(max_bytes=16_000_000, ttl_seconds=3600)
    _feed([readings[100:110], readings[110:200]], twins, windows)
    _feed([readings[:50], readings[50:100]], twins, windows)  # days late: re-scores the newer readings

    cached, database = twins
    assert len(_predictions(cached)) == 200
    assert _predictions(cached) == _predictions(database)


def test_readings_with_more_than_three_decimals_keep_every_digit_in_a_window(twins):
    """Windows keep thousandths as int32 when exact; other values must come back as the stored float64."""
    reported = _series("X", count=60, minutes=30)
    precise = [
        ReadingIn(r.sensor_id, r.timestamp + timedelta(hours=30), r.received_at, *(getattr(p, f) for f in ("rainfall", "soil_moisture", "ground_movement", "water_level")))
        for r, p in zip(reported, _series("X", count=60, minutes=30, seed=8, decimals=None))
    ]
    windows = SensorWindows(max_bytes=16_000_000, ttl_seconds=3600)

    _feed([reported[i : i + 10] for i in range(0, 60, 10)] + [precise[i : i + 10] for i in range(0, 60, 10)], twins, windows)

    cached, database = twins
    assert len(_predictions(cached)) == 120
    assert _predictions(cached) == _predictions(database)
    window = windows.covering(cached.pk, 2**62)
    assert window is not None and {c.dtype.name for c in window.columns} == {"float64"}


def test_a_reading_just_over_72_hours_late_does_not_leave_its_window_incomplete(twins):
    """Scored from the database, and its window (which does not cover it) must not be trusted afterwards."""
    readings = [
        ReadingIn("X", T0 + timedelta(minutes=20 * i), T0 + timedelta(minutes=20 * i), rainfall=float(i % 7), water_level=2.0)
        for i in range(310)
    ]
    late, later = readings[91], readings[302]  # 72 h 40 min behind the newest; then one its 72 h reach
    in_order = [r for r in readings if r not in (late, later)]
    windows = SensorWindows(max_bytes=16_000_000, ttl_seconds=3600)

    _feed([in_order[i : i + 10] for i in range(0, len(in_order), 10)] + [[late], [later]], twins, windows)

    cached, database = twins
    assert _predictions(cached) == _predictions(database)


def test_window_columns_widen_when_a_value_outgrows_them_and_values_come_back_exact():
    from predictions.windows import _concat, _decode, _encode

    small = np.array([0.25, np.nan, 32.767, -32.767])
    large = np.array([499.9, np.nan])
    precise = np.array([0.1234])
    assert _encode(small).dtype == np.int16 and _encode(large).dtype == np.int32 and _encode(precise).dtype == np.float64
    for left, right in ((small, large), (small, precise), (large, small)):
        joined = _concat(_encode(left), _encode(right))
        np.testing.assert_array_equal(_decode(joined), np.concatenate((left, right)))  # NaN stays missing, digits exact
    assert _concat(_encode(small), _encode(large)).dtype == np.int32
    assert _concat(_encode(small), _encode(precise)).dtype == np.float64


def test_a_reading_stored_behind_a_windows_back_is_caught_by_the_insert_and_stored_once(twins, caplog):
    """The overlapped path guesses the new readings from the windows; the insert's row count is the truth."""
    readings = _series("X", count=60, minutes=30)
    windows = SensorWindows(max_bytes=16_000_000, ttl_seconds=3600)  # no expiry: the window cannot know
    _feed([readings[i : i + 10] for i in range(0, 40, 10)], twins, windows)
    cached, database = twins
    # Another writer (a bulk import into the live system) stores one of the next batch's readings first.
    sneaked = readings[45]
    readings_bulk_load(rows=[
        (i, sensor.sensor_id, sneaked.timestamp, sneaked.rainfall, sneaked.soil_moisture, sneaked.ground_movement, sneaked.water_level)
        for i, sensor in enumerate(twins)
    ])
    window_before = windows.covering(cached.pk, to_unix_us(T0))
    assert window_before is not None and to_unix_us(sneaked.timestamp) not in window_before.us

    with caplog.at_level("INFO", logger="sensors.pipeline"):
        result = process_readings(readings=_as(cached.sensor_id, readings[40:50]), windows=windows)
    process_readings(readings=_as(database.sensor_id, readings[40:50]))

    assert [r.message for r in caplog.records].count("pipeline.guess_missed") == 1
    assert len(result.stored) == 9 and sneaked.timestamp not in {r.timestamp for r in result.stored}
    assert Reading.objects.filter(sensor=cached).count() == 50
    _feed([readings[50:]], twins, windows)  # the window was re-read from the database, with the sneaked reading
    assert _predictions(cached) == _predictions(database)
    window = windows.covering(cached.pk, to_unix_us(T0))
    assert window is not None and len(window) == 60


def test_a_redelivered_batch_the_windows_know_stores_and_scores_nothing(twins):
    readings = _series("X", count=30, minutes=30)
    windows = SensorWindows(max_bytes=16_000_000, ttl_seconds=3600)
    _feed([readings[:10], readings[10:20]], twins, windows)
    cached, _ = twins
    before = _predictions(cached)

    result = process_readings(readings=_as(cached.sensor_id, readings[10:20]), windows=windows)

    assert result.received == 10 and len(result.stored) == 0 and result.predictions == 0
    assert _predictions(cached) == before
    assert Reading.objects.filter(sensor=cached).count() == 20


def test_duplicates_inside_one_batch_keep_the_first_reading_on_both_paths(twins):
    readings = _series("X", count=20, minutes=30)
    windows = SensorWindows(max_bytes=16_000_000, ttl_seconds=3600)
    _feed([readings[:10]], twins, windows)
    repeat = ReadingIn(**{**{f: getattr(readings[12], f) for f in readings[12].__slots__}, "water_level": 4.75})
    batch = [*readings[10:15], repeat, *readings[15:]]  # the first of the two is the original

    _feed([batch], twins, windows)

    cached, database = twins
    assert len(windows) == 1  # the windowed path was taken
    for sensor in twins:
        row = Reading.objects.get(sensor=sensor, timestamp=readings[12].timestamp)
        assert row.water_level == readings[12].water_level
    assert Reading.objects.filter(sensor=cached).count() == 20
    assert _predictions(cached) == _predictions(database)


def test_predictions_upserted_group_by_group_equal_the_database_paths(make_sensor, monkeypatch):
    """The overlapped pipeline upserts each scoring group as soon as it is scored; the rows must be the same."""
    import predictions.services as services

    monkeypatch.setattr(services, "_SENSORS_PER_CHUNK", 1)
    monkeypatch.setattr(services, "_UPSERT_ROWS", 5)  # several groups, hence several upserts, per batch
    upserts = []
    real_upsert_rows = services._upsert_rows
    monkeypatch.setattr(services, "_upsert_rows", lambda rows, *a: upserts.append(len(rows)) or real_upsert_rows(rows, *a))
    codes = [f"GRP-{k}" for k in range(4)]
    for code in codes:
        make_sensor(f"{code}-W", flood_stage_m=4.0, rainfall_limit_mm_h=40)
        make_sensor(f"{code}-D", flood_stage_m=4.0, rainfall_limit_mm_h=40)
    series = {code: _series("X", count=40, minutes=30, seed=k) for k, code in enumerate(codes)}
    late = {code: [r for i, r in enumerate(readings) if i % 9 == 4] for code, readings in series.items()}
    first = {code: [r for r in readings if r not in late[code]] for code, readings in series.items()}
    windows = SensorWindows(max_bytes=16_000_000, ttl_seconds=3600)
    for part in (first, late):  # the late readings re-score stored ones after them
        batch = [r for code in codes for r in _as(f"{code}-W", part[code])]
        upserts.clear()
        process_readings(readings=batch, windows=windows)
        assert len(upserts) >= len(codes) and sum(upserts) >= len(batch)  # a group per sensor chunk, not one upsert
        for code in codes:
            process_readings(readings=_as(f"{code}-D", part[code]))

    assert len(windows) == len(codes)  # the windows' (overlapped) path was the one taken
    from sensors.models import Sensor

    for code in codes:
        cached, database = Sensor.objects.get(sensor_id=f"{code}-W"), Sensor.objects.get(sensor_id=f"{code}-D")
        assert len(_predictions(cached)) == 40
        assert _predictions(cached) == _predictions(database)
