"""The reading validator used by the ingestion API and by message decoding."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sensors.records import ReadingIn
from sensors.validation import RANGES, validate_item

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
FIVE_MIN = timedelta(minutes=5)


def _validate(item, max_future=FIVE_MIN):
    return validate_item(item, 4, received_at=NOW, max_future=max_future)


@pytest.mark.parametrize("field", sorted(RANGES))
def test_each_measurement_accepts_its_bounds_and_rejects_beyond(field):
    low, high = RANGES[field]
    for value in (low, high, (low + high) / 2):
        result = _validate({"sensor_id": "S", field: value})
        assert isinstance(result, ReadingIn), result
        assert getattr(result, field) == value
    for value in (low - 0.001, high + 0.001):
        [error] = _validate({"sensor_id": "S", field: value})
        assert (error.index, error.field) == (4, field)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_rejected(value):
    [error] = _validate({"sensor_id": "S", "rainfall": value})
    assert error.field == "rainfall" and "finite" in error.message


@pytest.mark.parametrize("value", [True, False, "1.0", [1.0], {"v": 1}])
def test_non_numbers_are_rejected(value):
    [error] = _validate({"sensor_id": "S", "water_level": value})
    assert error.field == "water_level" and "number" in error.message


def test_integers_are_numbers():
    result = _validate({"sensor_id": "S", "rainfall": 12})
    assert result.rainfall == 12.0 and isinstance(result.rainfall, float)


def test_every_error_of_an_item_is_reported():
    errors = _validate({"sensor_id": "", "rainfall": -1, "soil_moisture": "wet", "extra": 1, "timestamp": "noon"})
    assert {e.field for e in errors} == {"extra", "sensor_id", "rainfall", "soil_moisture", "timestamp"}
    assert all(e.index == 4 for e in errors)


def test_timestamp_defaults_to_receive_time_and_keeps_its_offset():
    assert _validate({"sensor_id": "S", "rainfall": 1}).timestamp == NOW
    stamped = _validate({"sensor_id": "S", "rainfall": 1, "timestamp": "2026-11-26T13:30:00+02:00"})
    assert stamped.timestamp == datetime(2026, 11, 26, 11, 30, tzinfo=UTC)
    assert _validate({"sensor_id": "S", "rainfall": 1, "timestamp": "2026-11-26T11:00:00Z"}).timestamp == datetime(2026, 11, 26, 11, tzinfo=UTC)


def test_future_timestamp_is_allowed_up_to_the_skew_bound():
    at_bound = (NOW + FIVE_MIN).isoformat()
    assert isinstance(_validate({"sensor_id": "S", "rainfall": 1, "timestamp": at_bound}), ReadingIn)
    [error] = _validate({"sensor_id": "S", "rainfall": 1, "timestamp": (NOW + FIVE_MIN + timedelta(seconds=1)).isoformat()})
    assert error.field == "timestamp" and "future" in error.message
    # Replayed messages skip the clock check.
    assert isinstance(_validate({"sensor_id": "S", "rainfall": 1, "timestamp": (NOW + timedelta(days=1)).isoformat()}, max_future=None), ReadingIn)


def test_naive_timestamp_is_rejected():
    [error] = _validate({"sensor_id": "S", "rainfall": 1, "timestamp": "2026-11-26T11:00:00"})
    assert error.field == "timestamp" and "offset" in error.message


def test_sensor_id_longer_than_64_characters_is_rejected():
    [error] = _validate({"sensor_id": "S" * 65, "rainfall": 1})
    assert error.field == "sensor_id"


def test_an_item_with_only_nulls_is_rejected():
    [error] = _validate({"sensor_id": "S", "rainfall": None, "soil_moisture": None})
    assert error.field is None and "at least one" in error.message


def test_non_object_item_is_rejected():
    [error] = _validate(["S", 1.0])
    assert error.as_dict() == {"index": 4, "field": None, "message": "must be a JSON object"}
