"""A small, exact validator for readings: the ingestion hot path.

DRF's Serializer costs ~160 µs per item in ``is_valid()`` alone; this does
the same checks in a few microseconds with plain type tests. Rules:

- an item is a JSON object with only the known fields;
- ``sensor_id`` is a non-empty string of at most 64 characters;
- ``timestamp`` is ISO 8601 *with* a UTC offset, at most
  ``INGEST_MAX_FUTURE_SECONDS`` in the future; absent means "now";
- each measurement is null or a finite number (booleans are not numbers)
  within its physical range, and at least one is present.

Errors name the item index and the field, so a gateway can fix its batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .records import MEASUREMENTS, ReadingIn

RANGES: dict[str, tuple[float, float]] = {
    "rainfall": (0.0, 500.0),
    "soil_moisture": (0.0, 1.0),
    "ground_movement": (0.0, 1000.0),
    "water_level": (-50.0, 100.0),
}
ALLOWED_FIELDS = frozenset({"sensor_id", "timestamp", *MEASUREMENTS})
_RANGES = tuple((name, *RANGES[name]) for name in MEASUREMENTS)  # in ReadingIn's field order
SENSOR_ID_MAX = 64


@dataclass(frozen=True, slots=True)
class FieldError:
    index: int
    field: str | None
    message: str

    def as_dict(self) -> dict:
        return {"index": self.index, "field": self.field, "message": self.message}


def parse_timestamp(value: object) -> datetime | str:
    """The datetime, or an error message."""
    if not isinstance(value, str):
        return "must be an ISO 8601 string with a UTC offset"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return "must be an ISO 8601 string with a UTC offset"
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return "must include a UTC offset (e.g. 2026-05-01T12:00:00Z)"
    return _to_utc(parsed)


def _to_utc(parsed: datetime) -> datetime | str:
    """UTC, so the database never sees an offset it cannot store (PostgreSQL allows ±15:59)."""
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:
        return "is out of range"


def validate_item(item: object, index: int, *, received_at: datetime, max_future: timedelta | None) -> ReadingIn | list[FieldError]:
    """One reading (``max_future=None`` skips the clock check, for replayed messages).

    Valid items take a fast path (about 3x cheaper: a 1000-reading batch spends
    most of its CPU here); anything it does not accept outright is decided by
    :func:`_validate_item_exhaustive`, which names every problem. The fast path
    returns exactly what the exhaustive one returns for the items it accepts.
    """
    if type(item) is dict and ALLOWED_FIELDS.issuperset(item):
        sensor_id = item.get("sensor_id")
        # `not isspace()` on a non-empty string is the same test as a non-empty strip().
        if type(sensor_id) is str and 0 < len(sensor_id) <= SENSOR_ID_MAX and not sensor_id.isspace() and sensor_id.isprintable():
            raw_ts = item.get("timestamp")
            timestamp: datetime | None = received_at
            if raw_ts is not None:
                timestamp = None
                if type(raw_ts) is str:
                    try:
                        parsed = datetime.fromisoformat(raw_ts)
                    except ValueError:
                        parsed = None
                    if (parsed is not None and parsed.tzinfo is not None and parsed.utcoffset() is not None
                            and 1 < parsed.year < 9999
                            and (max_future is None or parsed <= received_at + max_future)):
                        timestamp = parsed.astimezone(timezone.utc)
            if timestamp is not None:
                values = []
                present = False
                for name, low, high in _RANGES:
                    value = item.get(name)
                    if value is not None:
                        kind = type(value)
                        if kind is int:
                            value = float(value)
                        elif kind is not float:
                            break
                        # NaN and infinities fail the range test and go to the exhaustive path.
                        if not low <= value <= high:
                            break
                        present = True
                    values.append(value)
                else:
                    if present:
                        return ReadingIn(sensor_id, timestamp, received_at, *values)
    return _validate_item_exhaustive(item, index, received_at=received_at, max_future=max_future)


def _validate_item_exhaustive(item: object, index: int, *, received_at: datetime, max_future: timedelta | None) -> ReadingIn | list[FieldError]:
    """Every check, every error named; the reference behaviour of :func:`validate_item`."""
    if not isinstance(item, dict):
        return [FieldError(index, None, "must be a JSON object")]
    errors: list[FieldError] = []
    unknown = item.keys() - ALLOWED_FIELDS
    for name in sorted(unknown):
        errors.append(FieldError(index, name, "unknown field"))

    sensor_id = item.get("sensor_id")
    if sensor_id is None:
        errors.append(FieldError(index, "sensor_id", "is required"))
    elif not isinstance(sensor_id, str) or not sensor_id.strip():
        errors.append(FieldError(index, "sensor_id", "must be a non-empty string"))
    elif len(sensor_id) > SENSOR_ID_MAX:
        errors.append(FieldError(index, "sensor_id", f"must be at most {SENSOR_ID_MAX} characters"))
    elif not sensor_id.isprintable():
        # A NUL byte cannot even be stored by PostgreSQL; control and format characters are device bugs.
        errors.append(FieldError(index, "sensor_id", "must contain only printable characters"))

    raw_ts = item.get("timestamp")
    timestamp = received_at
    if raw_ts is not None:
        parsed = parse_timestamp(raw_ts)
        if isinstance(parsed, str):
            errors.append(FieldError(index, "timestamp", parsed))
        elif max_future is not None and parsed > received_at + max_future:
            errors.append(FieldError(index, "timestamp", f"is more than {int(max_future.total_seconds())} s in the future"))
        else:
            timestamp = parsed

    values: dict[str, float | None] = {}
    for name in MEASUREMENTS:
        value = item.get(name)
        if value is None:
            values[name] = None
            continue
        # bool is an int subclass: a device sending `true` has a bug, not a reading.
        if type(value) is bool or not isinstance(value, (int, float)):
            errors.append(FieldError(index, name, "must be a number or null"))
            continue
        value = float(value)
        low, high = RANGES[name]
        if not math.isfinite(value):
            errors.append(FieldError(index, name, "must be a finite number"))
        elif not low <= value <= high:
            errors.append(FieldError(index, name, f"must be between {low:g} and {high:g}"))
        else:
            values[name] = value
    if not errors and all(v is None for v in values.values()):
        errors.append(FieldError(index, None, "at least one of " + ", ".join(MEASUREMENTS) + " is required"))
    if errors:
        return errors
    return ReadingIn(sensor_id=sensor_id, timestamp=timestamp, received_at=received_at, **values)
