"""The scoring stage: features for newly stored readings, XGBoost, Prediction rows.

Runs inside the pipeline's batch transaction (``sensors.pipeline``). Per
batch it gathers each sensor's history, computes features vectorised over
groups of sensors (``predictions.features.compute_features_grouped``), makes
one batch prediction per model and one bulk upsert, so scoring cost is per
batch, not per reading.

History: the consumer passes its ``predictions.windows.SensorWindows``;
sensors it holds a complete window for are scored from memory, the others
(first batch after a start or a rebalance, a reading older than its window,
a window past its lifetime or over the memory budget) with one query per
group of sensors, whose rows then become their window. Both give the same
rows, so the same features (tests/predictions/test_windows.py). Measured
with bench/bench_consumer.py --readings 200000 --sensors 1000 --history
4400000 --cadence-seconds 60 --order time (full 72 h windows at a 1-minute
cadence), consumer plus PostgreSQL CPU per reading: 172 -> 80 µs with every
window in memory, 102 µs with a budget of 2 M rows (the default then; now WINDOW_CACHE_MB); peak RSS 1,059 -> 381 MB
(features computed ``_SENSORS_PER_CHUNK`` sensors at a time).

Late and out-of-order readings: features at t depend only on readings in
(t - 72 h, t]. A reading that arrives after newer ones changes the features
of those newer readings, so they are re-scored and their Prediction rows
updated in the same transaction; the stored features then equal in-order
delivery. Only the newly stored readings are handed on to alerting.

Hot path (PostgreSQL): no Python work per history row or per prediction
row. The history comes back as one binary blob per column
(``string_agg(float8send(..))``) that numpy reads in place, and the
predictions go out as binary arrays built by numpy (``warning_system.db.NumpyArrayDumper``).
Times travel as int64 microseconds, exactly as PostgreSQL stores them, so
nothing is rounded on the way. Measured with bench/bench_consumer.py
(50,000 readings, batches of 5,000, 2 shared cores, load ~2.5): the stage
went from 51 to 20 µs CPU and from 152 to 54 µs wall per reading.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import connection
from django.utils import timezone

from sensors.records import (
    MEASUREMENTS, MICROSECOND, UNIX_EPOCH, ReadingIn, ScoredReading, StoredColumns, StoredReading, to_unix_us,
)
from warning_system.db import (
    PG_EPOCH_US, Float4Array, Float8Array, Int8Array, Overlap, TimestamptzArray, execute_now, numpy_cursor,
)

from .features import FEATURE_NAMES, compute_features_grouped
from .fields import vector_to_snapshot
from .models import Prediction
from .scoring import get_registry, risk_level
from .windows import WINDOW_US, SensorWindows, Window

logger = logging.getLogger(__name__)

# Sensors per feature computation: bounds the history held at once (at a
# 1-minute cadence ~4,400 rows a sensor, ~200 bytes a row while features are computed).
_SENSORS_PER_CHUNK = 20
# Predictions per scoring group when the upsert overlaps the scoring
# (``predictions_score_stored(overlap=...)``): a 20,000-reading batch is
# upserted in 4 statements, the first starting after a quarter of the scoring.
_UPSERT_ROWS = 5000
_PRED_COLUMNS = (
    "sensor_id", "timestamp", "landslide_probability", "flood_probability", "landslide_risk", "flood_risk",
    "landslide_model_version", "flood_model_version", "features", "created_at",
)
_UPDATE_COLUMNS = _PRED_COLUMNS[2:9]
_CHUNK = 500


# -- history --------------------------------------------------------------------

def _aware(value) -> datetime:
    if isinstance(value, str):  # SQLite returns text
        value = datetime.fromisoformat(value)
    return value if timezone.is_aware(value) else timezone.make_aware(value, UTC)


@dataclass(frozen=True, slots=True)
class _Fetched:
    """Stored readings of some sensors, sorted by (sensor, timestamp); times in µs since the Unix epoch."""

    sensor_pks: np.ndarray
    us: np.ndarray
    values: np.ndarray  # float64 (4, n), one row per measurement, NaN = missing
    newest: dict[int, int]  # sensor pk -> its newest stored timestamp (when asked for)

    def block(self, sensor_pk: int) -> tuple[np.ndarray, np.ndarray]:
        i, j = np.searchsorted(self.sensor_pks, (sensor_pk, sensor_pk + 1))
        return self.us[i:j], self.values[:, i:j]


def _fetch(spans: dict[int, tuple[int, int]], *, newest: bool) -> _Fetched:
    """Readings inside each sensor's (lo, hi] span (µs), and with ``newest`` each sensor's newest timestamp.

    One statement for all the sensors: on PostgreSQL the spans are joined
    from arrays (each probe is an index range scan on (sensor, timestamp))
    and every column is aggregated into one bytea of fixed-width binary
    values (NULL sent as NaN), which ``np.frombuffer`` reads without a
    Python object per row. The newest timestamp (one index probe per
    sensor) tells whether the rows are everything after lo, i.e. whether
    they may become a window (``predictions.windows``).
    """
    pks = list(spans)
    lo = np.fromiter((spans[p][0] for p in pks), np.int64, len(pks))
    hi = np.fromiter((spans[p][1] for p in pks), np.int64, len(pks))
    if connection.vendor != "postgresql":
        return _fetch_orm(pks, lo, hi, newest=newest)
    sql = (
        "SELECT string_agg(int8send(r.sensor_id), ''), string_agg(timestamptz_send(r.timestamp), '')"
        + "".join(f", string_agg(float8send(coalesce(r.{name}, 'NaN')), '')" for name in MEASUREMENTS)
        + " FROM unnest(%b, %b, %b) AS w(sensor_id, lo, hi) "
        "JOIN sensors_reading r ON r.sensor_id = w.sensor_id AND r.timestamp > w.lo AND r.timestamp <= w.hi"
    )
    sensor_array = Int8Array(np.array(pks, dtype=np.int64))
    params = [sensor_array, TimestamptzArray(lo - PG_EPOCH_US), TimestamptzArray(hi - PG_EPOCH_US)]
    newest_us: dict[int, int] = {}
    with connection.wrap_database_errors, numpy_cursor() as cursor:
        cursor.execute(sql, params, binary=True)
        blobs = cursor.fetchone()
        if newest:
            cursor.execute(
                "SELECT w.sensor_id, (SELECT r.timestamp FROM sensors_reading r WHERE r.sensor_id = w.sensor_id "
                "ORDER BY r.timestamp DESC LIMIT 1) FROM unnest(%b) AS w(sensor_id)",
                [sensor_array], binary=True,
            )
            newest_us = {pk: to_unix_us(ts) for pk, ts in cursor.fetchall() if ts is not None}
    if blobs[0] is None:
        return _sorted(np.empty(0, np.int64), np.empty(0, np.int64), np.empty((len(MEASUREMENTS), 0)), newest_us)
    sensor_col, ts = (np.frombuffer(b, dtype=">i8").astype(np.int64) for b in blobs[:2])
    values = np.vstack([np.frombuffer(b, dtype=">f8") for b in blobs[2:]]).astype(np.float64)
    return _sorted(sensor_col, ts + PG_EPOCH_US, values, newest_us)


def _fetch_orm(pks: list[int], lo: np.ndarray, hi: np.ndarray, *, newest: bool) -> _Fetched:
    """The same as ``_fetch`` for other databases (the embedded SQLite default), row by row."""
    from django.db.models import Max, Q

    from sensors.models import Reading

    condition = Q()
    for pk, start, end in zip(pks, lo.tolist(), hi.tolist()):
        condition |= Q(
            sensor_id=pk, timestamp__gt=UNIX_EPOCH + start * MICROSECOND, timestamp__lte=UNIX_EPOCH + end * MICROSECOND,
        )
    rows = list(Reading.objects.filter(condition).values_list("sensor_id", "timestamp", *MEASUREMENTS))
    newest_us = {}
    if newest:
        latest = Reading.objects.filter(sensor_id__in=pks).values("sensor_id").annotate(newest=Max("timestamp"))
        newest_us = {row["sensor_id"]: to_unix_us(_aware(row["newest"])) for row in latest}
    return _sorted(
        np.array([row[0] for row in rows], dtype=np.int64),
        np.array([to_unix_us(_aware(row[1])) for row in rows], dtype=np.int64),
        np.array([[np.nan if v is None else v for v in row[2:]] for row in rows], dtype=np.float64).reshape(-1, len(MEASUREMENTS)).T,
        newest_us,
    )


def _sorted(sensor_pks: np.ndarray, us: np.ndarray, values: np.ndarray, newest: dict[int, int]) -> _Fetched:
    order = np.lexsort((us, sensor_pks))
    return _Fetched(sensor_pks[order], us[order], values[:, order], newest)


def _flood_stages(sensor_pks: list[int]) -> dict[int, float]:
    """Each sensor's flood stage (NaN = unknown), read per batch: an admin may change it at any time."""
    from sensors.models import Sensor

    stages = Sensor.objects.filter(pk__in=sensor_pks).values_list("pk", "flood_stage_m")
    return {pk: np.nan if stage is None else stage for pk, stage in stages}


# -- the result handed to alerting ------------------------------------------------

class _Snapshot(Mapping):
    """One row of the batch's feature matrix as the snapshot dict, built only if someone reads it.

    Alerting looks at the features of the few readings that raise or
    escalate an alert; building a dict for every reading up front would be
    work for nothing.
    """

    __slots__ = ("_row", "_decoded")

    def __init__(self, row: np.ndarray):
        self._row = row
        self._decoded: dict[str, float | None] | None = None

    def _data(self) -> dict[str, float | None]:
        if self._decoded is None:
            self._decoded = vector_to_snapshot(self._row.tolist())
        return self._decoded

    def __getitem__(self, name: str) -> float | None:
        return self._data()[name]

    def __iter__(self):
        return iter(self._data())

    def __len__(self) -> int:
        return len(FEATURE_NAMES)


@dataclass(frozen=True, slots=True)
class PredictionRows:
    """The prediction rows a scoring pass produced (new readings and re-scored ones), column-wise, as upserted."""

    sensor_pks: np.ndarray
    us: np.ndarray
    landslide_probability: np.ndarray
    flood_probability: np.ndarray
    features: np.ndarray  # float32 (n, len(FEATURE_NAMES))

    def __len__(self) -> int:
        return len(self.sensor_pks)


@dataclass(frozen=True, slots=True)
class ScoredBatch:
    """The newly stored readings with their verdicts, column-wise (arrays aligned with ``stored``).

    Alerting reads the arrays to find the few readings that can change an
    alert and asks ``scored(i)`` only for those, so most readings never
    become a ``ScoredReading`` at all.
    """

    stored: Sequence[StoredReading]
    sensor_pks: np.ndarray
    us: np.ndarray  # timestamps, µs since the Unix epoch
    landslide_probability: np.ndarray
    flood_probability: np.ndarray
    measurements: dict[str, np.ndarray]  # NaN = missing
    features: np.ndarray  # float32 (n, len(FEATURE_NAMES)), as stored; NaN = missing
    versions: dict[str, str]
    risk_cutoffs: tuple[float, float]  # (RISK_MEDIUM, RISK_HIGH) the predictions were stored with

    def __len__(self) -> int:
        return len(self.stored)

    def scored(self, i: int) -> ScoredReading:
        p_land = float(self.landslide_probability[i])
        p_flood = float(self.flood_probability[i])
        medium, high = self.risk_cutoffs
        return ScoredReading(
            reading=self.stored[i],
            landslide_probability=p_land,
            flood_probability=p_flood,
            landslide_risk=risk_level(p_land, medium, high),
            flood_risk=risk_level(p_flood, medium, high),
            landslide_model_version=self.versions["landslide"],
            flood_model_version=self.versions["flood"],
            features=_Snapshot(self.features[i]),
        )


# -- upsert ---------------------------------------------------------------------

def _upsert(*, sensor_pks: np.ndarray, us: np.ndarray, p_land: np.ndarray, p_flood: np.ndarray,
            features: np.ndarray, versions: dict[str, str], cutoffs: tuple[float, float], overlap: Overlap | None) -> None:
    """Insert predictions, updating those re-scored after a late reading (idempotent)."""
    table = Prediction._meta.db_table
    qn = connection.ops.quote_name
    cols = ", ".join(qn(c) for c in _PRED_COLUMNS)
    updates = ", ".join(f"{qn(c)} = excluded.{qn(c)}" for c in _UPDATE_COLUMNS)
    conflict = f"ON CONFLICT ({qn('sensor_id')}, {qn('timestamp')}) DO UPDATE SET {updates}"
    now = timezone.now()
    medium, high = cutoffs
    if connection.vendor == "postgresql":
        # One statement per batch: numeric columns as numpy-built binary
        # arrays; the feature matrix as ONE flat float4 array that each row
        # slices its own vector from (NaN becomes a NULL element: missing);
        # risk levels derived in SQL with the same rule as scoring.risk_level.
        def risk(column: str) -> str:
            return f"CASE WHEN {column} > %(high)s THEN 'high' WHEN {column} > %(medium)s THEN 'medium' ELSE 'low' END"

        width = len(FEATURE_NAMES)
        sql = (
            f"INSERT INTO {table} ({cols}) "
            f"SELECT u.pk, u.ts, u.pl, u.pf, {risk('u.pl')}, {risk('u.pf')}, %(v_land)s, %(v_flood)s, "
            f"array_replace(x.f[(u.i - 1) * {width} + 1 : u.i * {width}], 'NaN'::real, NULL), %(now)s "
            "FROM unnest(%(pk)b, %(ts)b, %(pl)b, %(pf)b) WITH ORDINALITY AS u(pk, ts, pl, pf, i), "
            "(SELECT %(f)b::real[] AS f) AS x "
            f"{conflict}"
        )
        params = {
            "pk": Int8Array(sensor_pks), "ts": TimestamptzArray(us - PG_EPOCH_US),
            "pl": Float8Array(p_land), "pf": Float8Array(p_flood),
            "f": Float4Array(np.ascontiguousarray(features, dtype=np.float32).reshape(-1)),
            "high": high, "medium": medium, "v_land": versions["landslide"], "v_flood": versions["flood"], "now": now,
        }
        with connection.wrap_database_errors:
            cursor = numpy_cursor()
        if overlap is not None:
            overlap.submit(cursor, sql, params)
            return
        Overlap.result(execute_now(cursor, sql, params))
        return
    features_field = Prediction._meta.get_field("features")  # the one definition of the stored form
    rows = [
        (
            int(pk), UNIX_EPOCH + timedelta(microseconds=int(t)), float(pl), float(pf),
            risk_level(pl, medium, high), risk_level(pf, medium, high),
            versions["landslide"], versions["flood"], features_field.get_db_prep_value(vector, connection), now,
        )
        for pk, t, pl, pf, vector in zip(sensor_pks.tolist(), us.tolist(), p_land.tolist(), p_flood.tolist(), features.tolist())
    ]
    placeholder = "(" + ", ".join(["%s"] * len(_PRED_COLUMNS)) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            cursor.execute(
                f"INSERT INTO {table} ({cols}) VALUES {', '.join([placeholder] * len(chunk))} {conflict}",
                [value for row in chunk for value in row],
            )


def _history(
    spans: dict[int, tuple[int, int]],
    new_readings: dict[int, tuple[np.ndarray, np.ndarray]],
    windows: SensorWindows | None,
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Each sensor's stored readings in its (lo, hi] span (µs): from its window when complete, else from the database.

    ``new_readings`` (this batch's, sorted, already stored) go into the
    windows they belong to; a sensor read from the database gets its rows
    as its window when nothing was stored after ``hi`` (they are then every
    reading after ``lo``).
    """
    blocks: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    misses = {}
    for pk, (lo, hi) in spans.items():
        window = windows.covering(pk, lo) if windows is not None else None
        if window is None:
            misses[pk] = (lo, hi)
            continue
        windows.add(window, pk, *new_readings[pk])
        blocks[pk] = window.between(lo, hi)
    if not misses:
        return blocks
    fetched = _fetch(misses, newest=windows is not None)
    for pk, (lo, hi) in misses.items():
        block_us, block_values = blocks[pk] = fetched.block(pk)
        if windows is None:
            continue
        if fetched.newest.get(pk, lo) <= hi:
            windows.put(pk, start=lo, us=block_us, values=block_values)
        else:
            # Readings more than 72 h behind the newest: the sensor's old window
            # may cover them and has not learnt them.
            windows.forget(pk)
    return blocks


def _measurements(readings: Sequence[StoredReading | ReadingIn]) -> np.ndarray:
    """float64 (4, n) of the readings' values, NaN = missing.

    (A generator per measurement: ``np.array`` of the readings' value tuples
    is slower, since numpy converts the None values one by one: 0.38 against
    0.30 µs per reading for 20,000 readings.)
    """
    n = len(readings)
    return np.vstack([
        np.fromiter((np.nan if (v := getattr(r, name)) is None else v for r in readings), np.float64, n) for name in MEASUREMENTS
    ])


def expected_new_readings(
    *, readings: Sequence[ReadingIn], sensor_pks: Mapping[str, int], windows: SensorWindows, valid_for: float,
) -> tuple[StoredColumns, np.ndarray] | None:
    """The readings the store would insert, as the windows know them, and their positions in ``readings``.

    A complete window holds every stored reading of its sensor after its
    start (``predictions.windows``), so a reading inside it is new exactly
    when the window does not hold its timestamp; the first of in-batch
    duplicates counts, as in ``readings_store_batch``. Sensors without a
    window get one from the database first; None when one cannot be kept
    (over ``WINDOW_CACHE_MB``, or readings far behind the sensor's newest).
    Every window used must stay valid for ``valid_for`` more seconds, so
    scoring, which looks the windows up again, finds the same ones and
    reads nothing from the database. The
    pipeline inserts exactly these readings and checks the guess by the
    number of rows inserted (see ``sensors.pipeline._process_overlapped``).
    """
    n = len(readings)
    pks = np.fromiter((sensor_pks[r.sensor_id] for r in readings), np.int64, n)
    us = np.fromiter((to_unix_us(r.timestamp) for r in readings), np.int64, n)
    order = np.lexsort((us, pks))  # stable: of equal (sensor, time) keys, the batch's first comes first
    pks, us = pks[order], us[order]
    first = np.r_[True, (pks[1:] != pks[:-1]) | (us[1:] != us[:-1])]
    order, pks, us = order[first], pks[first], us[first]
    starts = np.flatnonzero(np.r_[True, pks[1:] != pks[:-1]]).tolist()
    blocks = list(zip(starts, [*starts[1:], len(us)]))
    found: dict[int, Window] = {}
    misses: dict[int, tuple[int, int]] = {}
    for i, j in blocks:
        pk = int(pks[i])
        window = windows.covering(pk, int(us[i]) - WINDOW_US, valid_for=valid_for)
        if window is None:
            misses[pk] = (int(us[i]) - WINDOW_US, int(us[j - 1]) + WINDOW_US)  # the span scoring needs
        else:
            found[pk] = window
    if misses:
        # Load them now, as scoring would (after a restart or a rebalance, or
        # a window reloaded after WINDOW_CACHE_SECONDS), so the guess covers the batch.
        # A few sensors per query, as scoring does, so a restart's first batch
        # does not hold every sensor's 72 h in one result (memory).
        missing = list(misses.items())
        for chunk in range(0, len(missing), _SENSORS_PER_CHUNK):
            spans = dict(missing[chunk : chunk + _SENSORS_PER_CHUNK])
            fetched = _fetch(spans, newest=True)
            for pk, (lo, hi) in spans.items():
                if fetched.newest.get(pk, lo) > hi:
                    return None  # readings more than 72 h behind the newest: scoring reads the database
                windows.put(pk, start=lo, us=(block := fetched.block(pk))[0], values=block[1])
                window = windows.covering(pk, lo, valid_for=valid_for)
                if window is None:
                    return None  # over WINDOW_CACHE_MB
                found[pk] = window
    new = np.empty(len(us), dtype=bool)
    for i, j in blocks:
        held = found[int(pks[i])].us
        block_us = us[i:j]
        if len(held):
            at = np.minimum(np.searchsorted(held, block_us), len(held) - 1)
            new[i:j] = held[at] != block_us
        else:
            new[i:j] = True
    positions = order[new]
    values = _measurements([readings[k] for k in positions.tolist()])
    codes = {pk: code for code, pk in sensor_pks.items()}
    return StoredColumns(sensor_pks=pks[new], us=us[new], values=values, codes=codes), positions


def predictions_score_stored(
    *, stored: Sequence[StoredReading], windows: SensorWindows | None = None,
    flood_stages: Mapping[int, float] | None = None, overlap: Overlap | None = None,
) -> ScoredBatch:
    """Score newly stored readings (and re-score readings a late arrival affects).

    ``windows`` (the consumer's ``SensorWindows``) supplies the history of
    sensors it holds a complete window for and learns the new readings; the
    other sensors' history is read from the database, and becomes a window
    when it is complete. Both give the same rows, hence the same features.

    Raises ``predictions.scoring.ModelUnavailable`` when the models cannot be
    loaded: the whole batch then rolls back and is retried, so no reading is
    ever stored without its prediction. The caller must forget ``windows``
    when the transaction does not commit (they may hold its readings).
    ``flood_stages`` (sensor pk -> m, NaN = unknown), when the caller has
    just read them, saves the query.

    ``overlap``: the predictions are scored and upserted in
    groups of about ``_UPSERT_ROWS``, each group's upsert sent to the overlap
    as soon as it is scored, so PostgreSQL writes one group while Python
    computes the next. Scored whole and upserted after, the upsert started
    only when scoring ended and the alert rules waited for it (~7 µs per
    reading, bench/bench_consumer.py --stages).
    """
    registry = get_registry()
    versions = registry.versions
    cutoffs = (float(settings.RISK_MEDIUM), float(settings.RISK_HIGH))
    n = len(stored)
    if not n:
        empty = np.empty(0)
        none = np.empty(0, np.int64)
        return ScoredBatch(stored, none, none, empty, empty, dict.fromkeys(MEASUREMENTS, empty), np.empty((0, len(FEATURE_NAMES)), np.float32), versions, cutoffs)
    if isinstance(stored, StoredColumns):
        pks, us, values = stored.sensor_pks, stored.us, stored.values
    else:
        pks = np.fromiter((r.sensor_pk for r in stored), np.int64, n)
        us = np.fromiter((to_unix_us(r.timestamp) for r in stored), np.int64, n)
        values = _measurements(stored)
    # The batch in (sensor, time) order, sensor by sensor: [starts[k], starts[k + 1]) are sensor k's readings.
    order = np.lexsort((us, pks))
    by_pk, by_us, by_values = pks[order], us[order], values[:, order]
    starts = np.flatnonzero(np.r_[True, by_pk[1:] != by_pk[:-1]])
    sensors = by_pk[starts].tolist()
    starts = [*starts.tolist(), n]
    flood_stage = _flood_stages(sensors) if flood_stages is None else flood_stages

    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (features, target sensor pks, target µs) per chunk
    new_target = np.empty(n, np.int64)  # each reading of the sorted batch -> its row among all targets
    targets_so_far = 0
    groups: list[PredictionRows] = []  # scored parts, in target order
    pending = 0  # targets in parts not yet scored
    group_rows = None if overlap is None else _UPSERT_ROWS  # None: one group, upserted here at the end

    def score_parts() -> None:
        X = np.concatenate([p[0] for p in parts])
        probs = registry.score(X)
        group = PredictionRows(
            np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]),
            probs["landslide"].astype(np.float64), probs["flood"].astype(np.float64), X,
        )
        parts.clear()
        groups.append(group)
        if group_rows is not None:
            _upsert_rows(group, versions, cutoffs, overlap)
    for chunk in range(0, len(sensors), _SENSORS_PER_CHUNK):
        ks = range(chunk, min(chunk + _SENSORS_PER_CHUNK, len(sensors)))
        # History back to 72 h before the oldest new reading, and forward to 72 h
        # after the newest: later readings inside that span have features the new
        # (late) readings change. For live, in-order data the forward span is empty.
        spans = {sensors[k]: (int(by_us[starts[k]]) - WINDOW_US, int(by_us[starts[k + 1] - 1]) + WINDOW_US) for k in ks}
        new_readings = {sensors[k]: (by_us[starts[k] : starts[k + 1]], by_values[:, starts[k] : starts[k + 1]]) for k in ks}
        blocks = _history(spans, new_readings, windows)
        lengths = [len(blocks[sensors[k]][0]) for k in ks]
        hist_us = np.concatenate([blocks[sensors[k]][0] for k in ks])
        hist_values = np.concatenate([blocks[sensors[k]][1] for k in ks], axis=1)
        hist_pks = np.repeat(np.array([sensors[k] for k in ks], dtype=np.int64), lengths)
        # Targets: every new reading, plus stored readings after a late one (re-scored).
        is_new = np.zeros(len(hist_us), dtype=bool)
        new_rows = []
        offset = 0
        for k, length in zip(ks, lengths):
            block_us = hist_us[offset : offset + length]
            new_us = by_us[starts[k] : starts[k + 1]]
            rows = np.searchsorted(block_us, new_us)
            if rows[-1] >= length or not np.array_equal(block_us[rows], new_us):
                raise RuntimeError("scoring: newly stored readings missing from their own history")
            new_rows.append(rows + offset)
            offset += length
        new_rows = np.concatenate(new_rows)
        is_new[new_rows] = True
        first_new = np.repeat(by_us[[starts[k] for k in ks]], lengths)
        target_rows = np.flatnonzero(is_new | (hist_us > first_new))
        ts = hist_us / 1e6  # exact: |µs| < 2**53, and one correctly rounded division, like datetime.timestamp()
        target_pks = hist_pks[target_rows]
        stages = np.repeat(np.array([flood_stage.get(sensors[k], np.nan) for k in ks], dtype=np.float64), lengths)
        X = compute_features_grouped(
            hist_pks, ts, dict(zip(MEASUREMENTS, hist_values)), target_pks, ts[target_rows], flood_stage=stages[target_rows],
        )
        parts.append((X, target_pks, hist_us[target_rows]))
        batch_rows = slice(starts[ks[0]], starts[ks[-1] + 1])
        new_target[batch_rows] = targets_so_far + np.searchsorted(target_rows, new_rows)
        targets_so_far += len(target_rows)
        pending += len(target_rows)
        if group_rows is not None and pending >= group_rows:
            score_parts()
            pending = 0
    if parts:
        score_parts()

    rows = groups[0] if len(groups) == 1 else PredictionRows(*(
        np.concatenate([getattr(g, f.name) for g in groups]) for f in fields(PredictionRows)
    ))
    X, p_land, p_flood = rows.features, rows.landslide_probability, rows.flood_probability
    rescored = len(X) - n
    if rescored:
        logger.info("predictions.rescored_after_late_readings", extra={"rescored": rescored})

    # Line the verdicts up with ``stored``.
    target = np.empty(n, np.int64)
    target[order] = new_target
    batch = ScoredBatch(
        stored=stored,
        sensor_pks=pks,
        us=us,
        landslide_probability=p_land[target],
        flood_probability=p_flood[target],
        measurements=dict(zip(MEASUREMENTS, values)),
        features=X[target],
        versions=versions,
        risk_cutoffs=cutoffs,
    )
    if group_rows is None:
        _upsert_rows(rows, versions, cutoffs, None)
    return batch


def _upsert_rows(rows: PredictionRows, versions: dict[str, str], cutoffs: tuple[float, float], overlap: Overlap | None) -> None:
    """Upsert the rows now, or with an ``overlap`` on its helper thread (whose end, before the COMMIT, waits for it)."""
    if not len(rows):
        return
    _upsert(
        sensor_pks=rows.sensor_pks, us=rows.us, p_land=rows.landslide_probability, p_flood=rows.flood_probability,
        features=rows.features, versions=versions, cutoffs=cutoffs, overlap=overlap,
    )
