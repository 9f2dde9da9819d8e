"""Scoring for the /predictions API: validation, the prediction caches, results.

A result is a pure function of the two model versions and the feature row,
so it is cached under a key made of exactly those (a new model version can
never serve an old result), at two levels:

- a small process-local memo (``_Memo``), which answers repeated requests
  (many clients polling the same conditions) without any I/O;
- Redis, shared by every worker, read with one round trip per request
  (GET, or MGET for an array) and written behind the request, in batches
  (``warning_system.cache_writes``).

Both expire after ``PREDICTION_CACHE_SECONDS``. Only probabilities are cached;
risk levels are derived on the way out so a change of cut-offs takes effect
at once.
"""
from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict

import numpy as np
from django.conf import settings
from django.core.cache import cache

from sensors.models import Sensor
from warning_system.cache_writes import CacheWriteBehind

from .features import FEATURE_NAMES, READING_RANGES, features_from_measurements
from .scoring import get_registry, risk_level
from .selectors import sensor_latest_features

logger = logging.getLogger(__name__)

MAX_ITEMS = 100
_FEATURES = frozenset(FEATURE_NAMES)


def _error(index: int, field: str | None, message: str) -> dict:
    return {"index": index, "field": field, "message": message}


def _validate_item(index: int, item: object) -> list[dict]:
    if not isinstance(item, dict):
        return [_error(index, None, "must be a JSON object")]
    if "sensor_id" in item:
        errors = [_error(index, key, "cannot be combined with sensor_id") for key in sorted(item) if key != "sensor_id"]
        value = item["sensor_id"]
        if not isinstance(value, str) or not value.strip() or len(value) > 64 or not value.isprintable():
            errors.append(_error(index, "sensor_id", "must be a non-empty string of at most 64 printable characters"))
        return errors
    errors = [_error(index, key, "unknown field") for key in sorted(item.keys() - _FEATURES)]
    present = 0
    for key in sorted(item.keys() & _FEATURES):
        value = item[key]
        if value is None:
            continue
        if type(value) is bool or not isinstance(value, (int, float)):
            errors.append(_error(index, key, "must be a number or null"))
        elif not math.isfinite(value):
            errors.append(_error(index, key, "must be a finite number"))
        elif key in READING_RANGES and not READING_RANGES[key][0] <= value <= READING_RANGES[key][1]:
            low, high = READING_RANGES[key]
            errors.append(_error(index, key, f"must be between {low:g} and {high:g}"))
        elif abs(value) > 1e9:
            errors.append(_error(index, key, "is out of range"))
        else:
            present += 1
    if not errors and not present:
        errors.append(_error(index, None, "give sensor_id, or at least one measurement or feature"))
    return errors


def parse_request(data) -> tuple[list[dict], bool, list[dict]]:
    """(items, single, errors): one object or an array of 1..100."""
    if isinstance(data, dict):
        items, single = [data], True
    elif isinstance(data, list):
        items, single = data, False
        if not items:
            return [], False, [_error(0, None, "the array must not be empty")]
        if len(items) > MAX_ITEMS:
            return [], False, [_error(MAX_ITEMS, None, f"at most {MAX_ITEMS} items per request")]
    else:
        return [], True, [_error(0, None, "body must be a JSON object or array")]
    errors = [e for i, item in enumerate(items) for e in _validate_item(i, item)]
    return items, single, errors


def _cache_key(versions: dict[str, str], row: np.ndarray) -> str:
    digest = hashlib.blake2b(np.ascontiguousarray(row, dtype=np.float32).tobytes(), digest_size=16).hexdigest()
    return f"pred:{versions['landslide']}:{versions['flood']}:{digest}"


class _Memo:
    """Process-local LRU of recent results with the shared cache's TTL.

    A repeated request costs a dictionary lookup instead of a Redis round trip
    (GET ~45 µs of CPU in redis-py and django-redis) and, for the first repeat
    in a worker, instead of both models (~110 µs): bench/bench_api_cpu.py
    predict-hit. Safe to keep per process because a cached value never goes
    stale (the key holds the model versions); the TTL only bounds memory,
    as does ``MAX_ENTRIES`` (about 1 MB).
    """

    MAX_ENTRIES = 4096

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[float, tuple[float, float]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[float, float] | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put_many(self, values: dict[str, tuple[float, float]], ttl: float) -> None:
        expires = time.monotonic() + ttl
        with self._lock:
            for key, value in values.items():
                self._entries[key] = (expires, value)
                self._entries.move_to_end(key)
            while len(self._entries) > self.MAX_ENTRIES:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


memo = _Memo()


def _shared_get(keys: list[str]) -> dict[str, tuple[float, float]]:
    """One Redis round trip (GET for one key, MGET for several); {} when Redis is down (the cache ignores errors)."""
    if len(keys) == 1:
        value = cache.get(keys[0])
        return {} if value is None else {keys[0]: value}
    return cache.get_many(keys)


# Fresh results go to Redis behind the request, batched (see warning_system.cache_writes): a miss
# makes one round trip (its read), and another worker sees the result a few milliseconds later.
shared_writes = CacheWriteBehind(name="prediction-cache-writer", timeout=lambda: settings.PREDICTION_CACHE_SECONDS)


def predict_items(*, items: list[dict], principal) -> tuple[list[dict], list[dict], str | None]:
    """(results, errors, forbidden_sensor_id). Raises ModelUnavailable."""
    registry = get_registry()
    versions = registry.versions
    codes = {item["sensor_id"] for item in items if "sensor_id" in item}
    sensors = {s.sensor_id: s for s in Sensor.objects.filter(sensor_id__in=codes)} if codes else {}
    rows: list[np.ndarray] = []
    extras: list[dict] = []
    errors: list[dict] = []
    for index, item in enumerate(items):
        code = item.get("sensor_id")
        if code is None:
            rows.append(features_from_measurements(item)[0])
            extras.append({})
            continue
        sensor = sensors.get(code)
        if sensor is None:
            errors.append(_error(index, "sensor_id", f"unknown sensor {code!r}"))
            continue
        if principal is not None and hasattr(principal, "may_use_sensor") and not principal.may_use_sensor(code):
            return [], [], code
        latest = sensor_latest_features(sensor=sensor)
        if latest is None:
            errors.append(_error(index, "sensor_id", f"sensor {code!r} has no readings to score"))
            continue
        X, when = latest
        rows.append(X[0])
        extras.append({"sensor_id": code, "timestamp": when.isoformat()})
    if errors:
        return [], errors, None

    keys = [_cache_key(versions, row) for row in rows]
    known: dict[str, tuple[float, float]] = {}
    for key in keys:
        value = memo.get(key)
        if value is not None:
            known[key] = value
    wanted = [key for key in dict.fromkeys(keys) if key not in known]
    if wanted:
        shared = _shared_get(wanted)
        if shared:
            memo.put_many(shared, settings.PREDICTION_CACHE_SECONDS)
            known.update(shared)
    misses = [i for i, key in enumerate(keys) if key not in known]
    fresh: dict[str, tuple[float, float]] = {}
    if misses:
        scores = registry.score_few(np.stack([rows[i] for i in misses]))
        for j, i in enumerate(misses):
            fresh[keys[i]] = (scores["landslide"][j], scores["flood"][j])
        memo.put_many(fresh, settings.PREDICTION_CACHE_SECONDS)
        shared_writes.put(fresh)

    medium, high = settings.RISK_MEDIUM, settings.RISK_HIGH
    results = []
    for i, key in enumerate(keys):
        p_land, p_flood = known[key] if key in known else fresh[key]
        results.append({
            **extras[i],
            "landslide": {"probability": p_land, "risk": risk_level(p_land, medium, high)},
            "flood": {"probability": p_flood, "risk": risk_level(p_flood, medium, high)},
            "model_version": dict(versions),
            "cached": key in known,
        })
    return results, [], None
