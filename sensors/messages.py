"""The `sensor.data` message format (schema version 1).

Key: the sensor code (UTF-8), so each sensor's readings stay in order on one
partition. Value: a JSON object
``{"v": 1, "sensor_id", "timestamp", "received_at", "rainfall", "soil_moisture",
"ground_movement", "water_level"}`` with ISO 8601 times. Decoding re-validates
with the API's validator: a message that fails is poison (dead-letter queue).
"""
from __future__ import annotations

import orjson

from .records import MEASUREMENTS, ReadingIn
from .validation import parse_timestamp, validate_item

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


def decode_reading(value: bytes | None) -> ReadingIn:
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
