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

Hot path (PostgreSQL): no Python work per history row or per prediction
row. The history comes back as one binary blob per column
(``string_agg(float8send(..))``) that numpy reads in place, and the
predictions go out as binary arrays built by numpy (``_NumpyArrayDumper``).
Times travel as int64 microseconds, exactly as PostgreSQL stores them, so
nothing is rounded on the way. Measured with bench/bench_consumer.py
(50,000 readings, batches of 5,000, 2 shared cores, load ~2.5): the stage
went from 51 to 20 µs CPU and from 152 to 54 µs wall per reading.
"""
from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
from django.conf import settings
from django.db import connection
from django.utils import timezone
from psycopg.adapt import Dumper
from psycopg.postgres import types as pg_types
from psycopg.pq import Format

from sensors.records import MEASUREMENTS, ScoredReading, StoredReading
from warning_system.db import binary_cursor

from .features import FEATURE_NAMES, compute_features_grouped
from .models import Prediction
from .scoring import get_registry, risk_level

logger = logging.getLogger(__name__)

WINDOW = timedelta(hours=72)
_PRED_COLUMNS = (
    "sensor_id", "timestamp", "landslide_probability", "flood_probability", "landslide_risk", "flood_risk",
    "landslide_model_version", "flood_model_version", "features", "created_at",
)
_UPDATE_COLUMNS = _PRED_COLUMNS[2:9]
_CHUNK = 500
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# PostgreSQL counts timestamps in microseconds from 2000-01-01 UTC.
_PG_EPOCH_US = 946_684_800 * 1_000_000
# One feature snapshot as JSON text: filled with the values orjson printed for one row.
_SNAPSHOT_TEMPLATE = "{" + ",".join(f'"{name}":%s' for name in FEATURE_NAMES) + "}"


# -- binary arrays from numpy -------------------------------------------------

class _Int8Array:
    """A 1-D numpy array sent as a binary ``bigint[]`` (or, via subclasses, another fixed-width type)."""

    __slots__ = ("values",)
    pg_type = "int8"
    dtype = ">i8"

    def __init__(self, values: np.ndarray):
        self.values = values


class _Float8Array(_Int8Array):
    __slots__ = ()
    pg_type = "float8"
    dtype = ">f8"


class _TimestamptzArray(_Int8Array):
    """int64 microseconds since 2000-01-01 UTC: PostgreSQL's own timestamptz representation."""

    __slots__ = ()
    pg_type = "timestamptz"
    dtype = ">i8"


_ARRAY_HEADER = struct.Struct(">iiIii")  # ndim, has-nulls flag, element oid, length, lower bound


class _NumpyArrayDumper(Dumper):
    """PostgreSQL's binary array format, built by numpy in one pass instead of per element.

    psycopg's list dumper calls a Python function per element (about a
    microsecond each, ten columns per prediction row); here every element is
    (int32 length = 8, 8 big-endian bytes), one structured numpy array.
    No NULLs: float columns carry NaN and the SQL turns it into NULL where
    needed.
    """

    format = Format.BINARY
    element_oid = 0
    dtype = ">i8"

    def dump(self, obj: _Int8Array) -> bytes:
        values = obj.values
        body = np.empty(len(values), dtype=[("size", ">i4"), ("value", self.dtype)])
        body["size"] = 8
        body["value"] = values
        return _ARRAY_HEADER.pack(1, 0, self.element_oid, len(values), 1) + body.tobytes()


def _dumper_for(array_class: type[_Int8Array]) -> type[_NumpyArrayDumper]:
    info = pg_types[array_class.pg_type]
    return type(
        f"_{array_class.pg_type.capitalize()}ArrayDumper", (_NumpyArrayDumper,),
        {"oid": info.array_oid, "element_oid": info.oid, "dtype": array_class.dtype},
    )


_ARRAY_DUMPERS = {cls: _dumper_for(cls) for cls in (_Int8Array, _Float8Array, _TimestamptzArray)}


def _numpy_cursor():
    cursor = binary_cursor()
    for cls, dumper in _ARRAY_DUMPERS.items():
        cursor.adapters.register_dumper(cls, dumper)
    return cursor


# -- history --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _History:
    """Stored readings around a batch, one numpy array per column (times in µs since the Unix epoch)."""

    ids: np.ndarray
    sensor_pks: np.ndarray
    us: np.ndarray
    values: dict[str, np.ndarray]  # NaN = missing
    flood_stage: np.ndarray  # the row's sensor's flood stage, NaN = unknown
    after_first_new: np.ndarray  # later than the earliest new reading of its sensor

    @classmethod
    def empty(cls) -> _History:
        f = np.empty(0)
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64),
                   dict.fromkeys(MEASUREMENTS, f), f, np.empty(0, bool))


def _history(windows: dict[int, tuple[datetime, datetime, datetime]]) -> _History:
    """Readings inside each sensor's (lo, hi] window; windows are sensor pk -> (lo, hi, earliest new).

    One statement for the whole batch: on PostgreSQL the windows are joined
    from arrays (each probe is an index range scan on (sensor, timestamp))
    and every column is aggregated into one bytea of fixed-width binary
    values (NULL sent as NaN), which ``np.frombuffer`` reads without a
    Python object per row.
    """
    if not windows:
        return _History.empty()
    if connection.vendor != "postgresql":
        return _history_orm(windows)
    pks = list(windows)
    sql = (
        "SELECT string_agg(int8send(r.id), ''), string_agg(int8send(r.sensor_id), ''), "
        "string_agg(timestamptz_send(r.timestamp), ''), "
        + "".join(f"string_agg(float8send(coalesce(r.{name}, 'NaN')), ''), " for name in MEASUREMENTS)
        + "string_agg(float8send(coalesce(s.flood_stage_m, 'NaN')), ''), string_agg(boolsend(r.timestamp > w.first), '') "
        "FROM unnest(%b::bigint[], %b::timestamptz[], %b::timestamptz[], %b::timestamptz[]) AS w(sensor_id, lo, hi, first) "
        "JOIN sensors_sensor s ON s.id = w.sensor_id "
        "JOIN sensors_reading r ON r.sensor_id = w.sensor_id AND r.timestamp > w.lo AND r.timestamp <= w.hi"
    )
    params = [pks, *([windows[p][k] for p in pks] for k in range(3))]
    with connection.wrap_database_errors, binary_cursor() as cursor:
        cursor.execute(sql, params, binary=True)
        blobs = cursor.fetchone()
    if blobs[0] is None:  # no rows: the new readings are not visible (cannot happen inside the batch's transaction)
        return _History.empty()
    ids, pk_col, ts = (np.frombuffer(b, dtype=">i8").astype(np.int64) for b in blobs[:3])
    values = {name: np.frombuffer(b, dtype=">f8").astype(np.float64) for name, b in zip(MEASUREMENTS, blobs[3:7])}
    return _History(
        ids, pk_col, ts + _PG_EPOCH_US, values,
        np.frombuffer(blobs[7], dtype=">f8").astype(np.float64), np.frombuffer(blobs[8], dtype=bool),
    )


def _aware(value) -> datetime:
    if isinstance(value, str):  # SQLite returns text
        value = datetime.fromisoformat(value)
    return value if timezone.is_aware(value) else timezone.make_aware(value, UTC)


def _to_us(when: datetime) -> int:
    return (when - _UNIX_EPOCH) // _MICROSECOND


def _history_orm(windows: dict[int, tuple[datetime, datetime, datetime]]) -> _History:
    """The same as ``_history`` for other databases (the embedded SQLite default), row by row."""
    from django.db.models import Q

    from sensors.models import Reading, Sensor

    condition = Q()
    for pk, (lo, hi, _) in windows.items():
        condition |= Q(sensor_id=pk, timestamp__gt=lo, timestamp__lte=hi)
    rows = list(Reading.objects.filter(condition).values_list("id", "sensor_id", "timestamp", *MEASUREMENTS))
    flood_stage = dict(Sensor.objects.filter(pk__in=list(windows)).values_list("pk", "flood_stage_m"))
    times = [_aware(row[2]) for row in rows]
    return _History(
        np.array([row[0] for row in rows], dtype=np.int64),
        np.array([row[1] for row in rows], dtype=np.int64),
        np.array([_to_us(t) for t in times], dtype=np.int64),
        {name: np.array([row[3 + j] for row in rows], dtype=np.float64) for j, name in enumerate(MEASUREMENTS)},
        np.array([flood_stage.get(row[1]) for row in rows], dtype=np.float64),
        np.array([t > windows[row[1]][2] for row, t in zip(rows, times)], dtype=bool),
    )


# -- the result handed to alerting ------------------------------------------------

class _Snapshot(Mapping):
    """A stored feature snapshot, decoded from its JSON only if someone reads it.

    Alerting looks at the features of the few readings that raise or
    escalate an alert; decoding every reading's snapshot up front cost
    ~1.5 µs a reading for nothing.
    """

    __slots__ = ("_text", "_decoded")

    def __init__(self, text: str):
        self._text = text
        self._decoded: dict[str, float | None] | None = None

    def _data(self) -> dict[str, float | None]:
        if self._decoded is None:
            self._decoded = orjson.loads(self._text)
        return self._decoded

    def __getitem__(self, name: str) -> float | None:
        return self._data()[name]

    def __iter__(self):
        return iter(self._data())

    def __len__(self) -> int:
        return len(FEATURE_NAMES)


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
    snapshots: list[str]  # feature snapshot JSON, as stored
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
            features=_Snapshot(self.snapshots[i]),
        )


def _snapshots(X: np.ndarray) -> list[str]:
    """Feature snapshot JSON per row: ``{name: number | null}``.

    orjson prints the whole float32 matrix in one call (shortest repr that
    reads back as the same float32, NaN as null); the per-row work is only
    splitting that text and filling the names in (~2 µs a row against ~10 µs
    for a dict, a rounding per value and a dumps per row).
    """
    if len(X) == 0:
        return []
    text = orjson.dumps(np.ascontiguousarray(X, dtype=np.float32), option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return [_SNAPSHOT_TEMPLATE % tuple(row.split(",")) for row in text[2:-2].split("],[")]


# -- upsert ---------------------------------------------------------------------

def _upsert(*, sensor_pks: np.ndarray, us: np.ndarray, p_land: np.ndarray, p_flood: np.ndarray,
            snapshots: list[str], versions: dict[str, str], cutoffs: tuple[float, float]) -> None:
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
        # arrays, snapshots as text[] cast to jsonb element by element, risk
        # levels derived in SQL with the same rule as scoring.risk_level.
        def risk(column: str) -> str:
            return f"CASE WHEN {column} > %(high)s THEN 'high' WHEN {column} > %(medium)s THEN 'medium' ELSE 'low' END"

        sql = (
            f"INSERT INTO {table} ({cols}) "
            f"SELECT u.pk, u.ts, u.pl, u.pf, {risk('u.pl')}, {risk('u.pf')}, %(v_land)s, %(v_flood)s, u.f::jsonb, %(now)s "
            "FROM unnest(%(pk)b, %(ts)b, %(pl)b, %(pf)b, %(f)b::text[]) AS u(pk, ts, pl, pf, f) "
            f"{conflict}"
        )
        params = {
            "pk": _Int8Array(sensor_pks), "ts": _TimestamptzArray(us - _PG_EPOCH_US),
            "pl": _Float8Array(p_land), "pf": _Float8Array(p_flood), "f": snapshots,
            "high": high, "medium": medium, "v_land": versions["landslide"], "v_flood": versions["flood"], "now": now,
        }
        with connection.wrap_database_errors, _numpy_cursor() as cursor:
            cursor.execute(sql, params, binary=True)
        return
    rows = [
        (
            int(pk), _UNIX_EPOCH + timedelta(microseconds=int(t)), float(pl), float(pf),
            risk_level(pl, medium, high), risk_level(pf, medium, high),
            versions["landslide"], versions["flood"], snapshot, now,
        )
        for pk, t, pl, pf, snapshot in zip(sensor_pks.tolist(), us.tolist(), p_land.tolist(), p_flood.tolist(), snapshots)
    ]
    placeholder = "(" + ", ".join(["%s"] * len(_PRED_COLUMNS)) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            cursor.execute(
                f"INSERT INTO {table} ({cols}) VALUES {', '.join([placeholder] * len(chunk))} {conflict}",
                [value for row in chunk for value in row],
            )


def predictions_score_stored(*, stored: Sequence[StoredReading]) -> ScoredBatch:
    """Score newly stored readings (and re-score readings a late arrival affects).

    Raises ``predictions.scoring.ModelUnavailable`` when the models cannot be
    loaded: the whole batch then rolls back and is retried, so no reading is
    ever stored without its prediction.
    """
    registry = get_registry()
    versions = registry.versions
    cutoffs = (float(settings.RISK_MEDIUM), float(settings.RISK_HIGH))
    if not stored:
        empty = np.empty(0)
        none = np.empty(0, np.int64)
        return ScoredBatch(stored, none, none, empty, empty, dict.fromkeys(MEASUREMENTS, empty), [], versions, cutoffs)
    # History back to 72 h before the oldest new reading, and forward to 72 h
    # after the newest: later readings inside that span have features the new
    # (late) readings change. For live, in-order data the forward span is empty.
    span: dict[int, list[datetime]] = {}
    for r in stored:
        if (known := span.get(r.sensor_pk)) is None:
            span[r.sensor_pk] = [r.timestamp, r.timestamp]
        elif r.timestamp < known[0]:
            known[0] = r.timestamp
        elif r.timestamp > known[1]:
            known[1] = r.timestamp
    windows = {pk: (first - WINDOW, last + WINDOW, first) for pk, (first, last) in span.items()}
    history = _history(windows)

    # Targets: every new reading, plus stored readings after a late one (re-scored).
    stored_ids = np.fromiter((r.id for r in stored), dtype=np.int64, count=len(stored))
    is_new = np.isin(history.ids, stored_ids)
    if int(is_new.sum()) != len(stored):
        raise RuntimeError("scoring: newly stored readings missing from their own history")
    target_rows = np.flatnonzero(is_new | history.after_first_new)
    rescored = len(target_rows) - len(stored)

    ts = history.us / 1e6  # exact: |µs| < 2**53, and one correctly rounded division, like datetime.timestamp()
    X = compute_features_grouped(
        history.sensor_pks, ts, history.values, history.sensor_pks[target_rows], ts[target_rows],
        flood_stage=history.flood_stage[target_rows],
    )
    probs = registry.score(X)
    p_land = probs["landslide"].astype(np.float64)
    p_flood = probs["flood"].astype(np.float64)
    snapshots = _snapshots(X)
    _upsert(
        sensor_pks=history.sensor_pks[target_rows], us=history.us[target_rows], p_land=p_land, p_flood=p_flood,
        snapshots=snapshots, versions=versions, cutoffs=cutoffs,
    )
    if rescored:
        logger.info("predictions.rescored_after_late_readings", extra={"rescored": rescored})

    # Line the verdicts up with ``stored``: each stored reading's history row, then its target row.
    order = np.argsort(history.ids)
    hist_row = order[np.searchsorted(history.ids, stored_ids, sorter=order)]
    target = np.searchsorted(target_rows, hist_row)
    return ScoredBatch(
        stored=stored,
        sensor_pks=history.sensor_pks[hist_row],
        us=history.us[hist_row],
        landslide_probability=p_land[target],
        flood_probability=p_flood[target],
        measurements={name: history.values[name][hist_row] for name in MEASUREMENTS},
        snapshots=[snapshots[i] for i in target.tolist()],
        versions=versions,
        risk_cutoffs=cutoffs,
    )
