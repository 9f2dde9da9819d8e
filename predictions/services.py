"""The scoring stage: features for newly stored readings, XGBoost, Prediction rows.

Runs inside the pipeline's batch transaction (``sensors.pipeline``). Per
batch it makes one history query, one vectorised feature computation
(``predictions.features.compute_features_grouped``), one batch prediction per
model and one bulk upsert, so scoring cost is per batch, not per reading.

Late and out-of-order readings: features at t depend only on readings in
(t - 72 h, t]. A reading that arrives after newer ones changes the features
of those newer readings, so they are re-scored and their Prediction rows
updated in the same transaction; the stored features then equal in-order
delivery. Only the newly stored readings are handed on to alerting.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import orjson
from django.conf import settings
from django.db import connection
from django.utils import timezone

from sensors.models import Sensor
from sensors.records import MEASUREMENTS, ScoredReading, StoredReading
from warning_system.db import binary_cursor

from .features import FEATURE_NAMES, compute_features_grouped
from .models import Prediction
from .scoring import get_registry, risk_levels

logger = logging.getLogger(__name__)

WINDOW = timedelta(hours=72)
_PRED_COLUMNS = (
    "sensor_id", "timestamp", "landslide_probability", "flood_probability", "landslide_risk", "flood_risk",
    "landslide_model_version", "flood_model_version", "features", "created_at",
)
_UPDATE_COLUMNS = _PRED_COLUMNS[2:9]
_CHUNK = 500


def _aware(value) -> datetime:
    if isinstance(value, str):  # SQLite returns text
        value = datetime.fromisoformat(value)
    return value if timezone.is_aware(value) else timezone.make_aware(value, timezone.utc)


def _history(windows: dict[int, tuple[datetime, datetime]]) -> list[tuple]:
    """Readings (sensor_pk, timestamp, *measurements) inside each sensor's (lo, hi] window.

    One statement for the whole batch: on PostgreSQL the windows are joined
    from arrays (each probe is an index range scan on (sensor, timestamp)).
    """
    if not windows:
        return []
    pks = list(windows)
    if connection.vendor == "postgresql":
        sql = (
            "SELECT r.sensor_id, r.timestamp, r.rainfall, r.soil_moisture, r.ground_movement, r.water_level "
            "FROM unnest(%b::bigint[], %b::timestamptz[], %b::timestamptz[]) AS w(sensor_id, lo, hi) "
            "JOIN sensors_reading r ON r.sensor_id = w.sensor_id AND r.timestamp > w.lo AND r.timestamp <= w.hi"
        )
        params = [pks, [windows[p][0] for p in pks], [windows[p][1] for p in pks]]
        with connection.wrap_database_errors, binary_cursor() as cursor:
            cursor.execute(sql, params, binary=True)
            return cursor.fetchall()
    from django.db.models import Q

    from sensors.models import Reading

    condition = Q()
    for pk, (lo, hi) in windows.items():
        condition |= Q(sensor_id=pk, timestamp__gt=lo, timestamp__lte=hi)
    return list(Reading.objects.filter(condition).values_list("sensor_id", "timestamp", *MEASUREMENTS))


def _upsert(rows: list[tuple]) -> None:
    """Insert predictions, updating those re-scored after a late reading (idempotent)."""
    table = Prediction._meta.db_table
    qn = connection.ops.quote_name
    cols = ", ".join(qn(c) for c in _PRED_COLUMNS)
    updates = ", ".join(f"{qn(c)} = excluded.{qn(c)}" for c in _UPDATE_COLUMNS)
    conflict = f"ON CONFLICT ({qn('sensor_id')}, {qn('timestamp')}) DO UPDATE SET {updates}"
    if connection.vendor == "postgresql":
        # One statement per batch: columns travel as binary arrays; the feature
        # snapshots go as text[] and are cast to jsonb element by element.
        types = ("bigint", "timestamptz", "float8", "float8", "text", "text", "text", "text", "text", "timestamptz")
        arrays = ", ".join(f"%b::{t}[]" for t in types)
        aliases = ", ".join(f"c{i}" for i in range(len(types)))
        select = ", ".join(f"c{i}::jsonb" if c == "features" else f"c{i}" for i, c in enumerate(_PRED_COLUMNS))
        with connection.wrap_database_errors, binary_cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({cols}) SELECT {select} FROM unnest({arrays}) AS u({aliases}) {conflict}",
                [list(c) for c in zip(*rows)], binary=True,
            )
        return
    placeholder = "(" + ", ".join(["%s"] * len(_PRED_COLUMNS)) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            cursor.execute(
                f"INSERT INTO {table} ({cols}) VALUES {', '.join([placeholder] * len(chunk))} {conflict}",
                [value for row in chunk for value in row],
            )


def predictions_score_stored(*, stored: Sequence[StoredReading]) -> list[ScoredReading]:
    """Score newly stored readings (and re-score readings a late arrival affects).

    Raises ``predictions.scoring.ModelUnavailable`` when the models cannot be
    loaded: the whole batch then rolls back and is retried, so no reading is
    ever stored without its prediction.
    """
    if not stored:
        return []
    registry = get_registry()
    by_sensor: dict[int, list[StoredReading]] = defaultdict(list)
    for r in stored:
        by_sensor[r.sensor_pk].append(r)
    # History back to 72 h before the oldest new reading, and forward to 72 h
    # after the newest: later readings inside that span have features the new
    # (late) readings change. For live, in-order data the forward span is empty.
    windows = {
        pk: (min(r.timestamp for r in rs) - WINDOW, max(r.timestamp for r in rs) + WINDOW)
        for pk, rs in by_sensor.items()
    }
    history = _history(windows)
    flood_stage = dict(Sensor.objects.filter(pk__in=list(windows)).values_list("pk", "flood_stage_m"))

    n = len(history)
    groups = np.empty(n, dtype=np.int64)
    ts = np.empty(n, dtype=np.float64)
    values = {name: np.empty(n, dtype=np.float64) for name in MEASUREMENTS}
    hist_times: list[datetime] = []
    for i, row in enumerate(history):
        when = _aware(row[1])
        hist_times.append(when)
        groups[i] = row[0]
        ts[i] = when.timestamp()
        for j, name in enumerate(MEASUREMENTS):
            v = row[2 + j]
            values[name][i] = np.nan if v is None else v

    new_keys = {(r.sensor_pk, r.timestamp) for r in stored}
    earliest_new = {pk: min(r.timestamp for r in rs) for pk, rs in by_sensor.items()}
    # Targets: every new reading, plus stored readings after a late one (re-scored).
    targets: list[tuple[int, datetime]] = [(r.sensor_pk, r.timestamp) for r in stored]
    for i, row in enumerate(history):
        key = (row[0], hist_times[i])
        if key not in new_keys and hist_times[i] > earliest_new[row[0]]:
            targets.append(key)

    t_groups = np.fromiter((pk for pk, _ in targets), dtype=np.int64, count=len(targets))
    t_ts = np.fromiter((when.timestamp() for _, when in targets), dtype=np.float64, count=len(targets))
    fs = np.array([np.nan if flood_stage.get(pk) is None else flood_stage[pk] for pk, _ in targets], dtype=np.float64)
    X = compute_features_grouped(groups, ts, values, t_groups, t_ts, flood_stage=fs)
    probs = registry.score(X)
    p_land = probs["landslide"].astype(np.float64)
    p_flood = probs["flood"].astype(np.float64)
    r_land = risk_levels(p_land, settings.RISK_MEDIUM, settings.RISK_HIGH)
    r_flood = risk_levels(p_flood, settings.RISK_MEDIUM, settings.RISK_HIGH)
    versions = registry.versions

    # NaN -> None snapshot, rounded to float32 precision like features_to_dict,
    # built column-wise because this runs for every reading.
    snapshots = []
    X64 = X.astype(np.float64)
    rounded = [[None if v != v else float(f"{v:.7g}") for v in col] for col in X64.T.tolist()]
    for i in range(len(targets)):
        snapshots.append({name: rounded[j][i] for j, name in enumerate(FEATURE_NAMES)})

    now = timezone.now()
    rows = [
        (
            pk, when, float(p_land[i]), float(p_flood[i]), r_land[i], r_flood[i],
            versions["landslide"], versions["flood"], orjson.dumps(snapshots[i]).decode(), now,
        )
        for i, (pk, when) in enumerate(targets)
    ]
    _upsert(rows)
    if len(targets) > len(stored):
        logger.info("predictions.rescored_after_late_readings", extra={"rescored": len(targets) - len(stored)})
    return [
        ScoredReading(
            reading=r,
            landslide_probability=float(p_land[i]),
            flood_probability=float(p_flood[i]),
            landslide_risk=r_land[i],
            flood_risk=r_flood[i],
            landslide_model_version=versions["landslide"],
            flood_model_version=versions["flood"],
            features=snapshots[i],
        )
        for i, r in enumerate(stored)
    ]
