"""The `sensor.data` message format (schema version 1).

Key: the sensor code (UTF-8), so each sensor's readings stay in order on one
partition. Value: a JSON object
``{"v": 1, "sensor_id", "timestamp", "received_at", "rainfall", "soil_moisture",
"ground_movement", "water_level"}`` with ISO 8601 times. Decoding re-validates
with the API's validator: a message that fails is poison (dead-letter queue).
"""
from __future__ import annotations

from datetime import datetime, timedelta

import orjson

from .records import MEASUREMENTS, ReadingIn
from .validation import RANGES, SENSOR_ID_MAX, parse_timestamp, validate_item

SCHEMA_VERSION = 1


class InvalidMessage(ValueError):
    """A message that can never be processed (wrong schema, bad values)."""


def encode_reading(reading: ReadingIn) -> tuple[bytes, bytes]:
    """(key, value) for the producer."""
    value = {
        "v": SCHEMA_VERSION,
        "sensor_id": reading.sensor_id,
        "timestamp": reading.timestamp.isoformat(),
        "received_at": reading.received_at.isoformat(),
    }
    for name in MEASUREMENTS:
        value[name] = getattr(reading, name)
    return reading.sensor_id.encode(), orjson.dumps(value)


_MESSAGE_FIELDS = frozenset({"v", "sensor_id", "timestamp", "received_at", *MEASUREMENTS})
_RANGES = tuple(RANGES[name] for name in MEASUREMENTS)
_from_iso = datetime.fromisoformat
_ZERO = timedelta(0)


def decode_reading(value: bytes | None) -> ReadingIn:
    """The reading in a message, re-validated; ``InvalidMessage`` (poison) when it is not one.

    Every message the API produced has exactly the fields ``encode_reading``
    writes, so the consumer (tens of thousands of messages a second) first
    tries a fast path: plain type and range checks on that exact shape, the
    same rules as ``validation.validate_item`` (~3 µs against ~12 µs). It
    accepts only messages the full validator accepts, with the same result;
    anything else — a missing or extra field, a wrong type, a value out of
    range — goes through ``_decode_checked``, which decides and words the error.
    """
    try:
        obj = orjson.loads(value)
    except (orjson.JSONDecodeError, TypeError):
        return _decode_checked(value)
    if type(obj) is not dict or obj.keys() != _MESSAGE_FIELDS or obj["v"] != SCHEMA_VERSION:
        return _decode_checked(value)
    sensor_id = obj["sensor_id"]
    raw_ts, raw_received = obj["timestamp"], obj["received_at"]
    if (
        type(sensor_id) is not str or not sensor_id.strip() or len(sensor_id) > SENSOR_ID_MAX
        or not sensor_id.isprintable()
        or type(raw_ts) is not str or type(raw_received) is not str
    ):
        return _decode_checked(value)
    try:
        timestamp, received_at = _from_iso(raw_ts), _from_iso(raw_received)
    except ValueError:
        return _decode_checked(value)
    # (A naive time's utcoffset() is None, which != _ZERO too.)
    if timestamp.utcoffset() != _ZERO or received_at.utcoffset() != _ZERO or not 1 < timestamp.year < 9999:
        # The API writes UTC; anything else is normalised (or refused) by the full validator.
        return _decode_checked(value)
    measured = []
    for name, (low, high) in zip(MEASUREMENTS, _RANGES):
        v = obj[name]
        if v is not None:
            kind = type(v)
            if kind is int:
                v = float(v)
            elif kind is not float:
                return _decode_checked(value)
            if not low <= v <= high:
                return _decode_checked(value)
        measured.append(v)
    if measured.count(None) == len(measured):
        return _decode_checked(value)
    return ReadingIn(sensor_id, timestamp, received_at, *measured)


def _decode_checked(value: bytes | None) -> ReadingIn:
    """The full decode with the API's validator: exact errors for poison messages."""
    if value is None:
        raise InvalidMessage("empty message")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(f"invalid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise InvalidMessage("message is not a JSON object")
    version = obj.pop("v", None)
    if version != SCHEMA_VERSION:
        raise InvalidMessage(f"unsupported schema version {version!r}")
    received_at = parse_timestamp(obj.pop("received_at", None))
    if isinstance(received_at, str):
        raise InvalidMessage(f"received_at {received_at}")
    if obj.get("timestamp") is None:
        raise InvalidMessage("timestamp is required in messages")
    result = validate_item(obj, 0, received_at=received_at, max_future=None)
    if isinstance(result, list):
        raise InvalidMessage("; ".join(f"{e.field or 'item'}: {e.message}" for e in result))
    return result
