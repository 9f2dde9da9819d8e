"""Scoring for the /predictions API: validation, the prediction cache, results.

Results are cached in Redis keyed by both model versions and the exact
feature bytes, so a new model version can never serve an old result and
identical requests (many clients polling the same sensor) skip XGBoost.
Only probabilities are cached; risk levels are derived on the way out so a
change of cut-offs takes effect at once.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
from django.conf import settings
from django.core.cache import cache

from sensors.models import Sensor

from .features import FEATURE_NAMES, READING_RANGES, features_from_measurements
from .scoring import get_registry, risk_level
from .selectors import sensor_latest_features

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
    cached = cache.get_many(keys)
    misses = [i for i, key in enumerate(keys) if key not in cached]
    fresh: dict[str, tuple[float, float]] = {}
    if len(misses) == 1:
        scores = registry.score_one(rows[misses[0]])
        fresh[keys[misses[0]]] = (scores["landslide"], scores["flood"])
    elif misses:
        scores = registry.score(np.stack([rows[i] for i in misses]))
        for j, i in enumerate(misses):
            fresh[keys[i]] = (float(scores["landslide"][j]), float(scores["flood"][j]))
    if fresh:
        cache.set_many(fresh, timeout=settings.PREDICTION_CACHE_SECONDS)

    results = []
    for i, key in enumerate(keys):
        p_land, p_flood = cached[key] if key in cached else fresh[key]
        results.append({
            **extras[i],
            "landslide": {"probability": p_land, "risk": risk_level(p_land, settings.RISK_MEDIUM, settings.RISK_HIGH)},
            "flood": {"probability": p_flood, "risk": risk_level(p_flood, settings.RISK_MEDIUM, settings.RISK_HIGH)},
            "model_version": dict(versions),
            "cached": key in cached,
        })
    return results, [], None
