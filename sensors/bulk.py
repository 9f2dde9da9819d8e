"""Bulk import of historical readings: CSV files and synthetic streams.

Importing years of history row by row through the API or the consumer would
take hours and fill the topic with readings nobody needs alerts for. Instead
rows stream into PostgreSQL's COPY (psycopg 3 ``cursor.copy()``, binary) into
a temporary staging table without indexes, and each chunk moves on with one
``INSERT ... SELECT ... JOIN sensors ... ON CONFLICT DO NOTHING``:

* idempotent: the unique (sensor, timestamp) index skips rows already stored,
  so a file loaded twice adds nothing the second time;
* all or nothing: the whole import is one transaction, and every row is
  validated in Python while it streams (the same rules and ranges as the
  ingestion API, cheap next to the database work), so a bad row rejects the
  file with a message naming its line before anything is committed. The
  table's CHECK constraints stay the last line of defence;
* unknown sensor codes reject the file (listing every unknown code and the
  line it first appears on) unless the caller asks to skip them.

Historical readings are stored, not scored: predictions and alerts are made
for live readings only (the consumer still uses the history as the window
its features look back on). ``last_seen_at`` moves forward when the history
is newer, never back.

On SQLite (the embedded default) there is no COPY; rows go in batched inserts
through ``readings_store_batch``, with the same validation and outcome.
"""
from __future__ import annotations

import csv
import logging
import math
import random
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TextIO

from django.db import connection, transaction
from django.utils import timezone

from .models import Reading, Sensor
from .records import MEASUREMENTS, ReadingIn
from .services import readings_store_batch, sensors_touch_last_seen
from .validation import RANGES, SENSOR_ID_MAX, parse_timestamp

logger = logging.getLogger(__name__)

CSV_COLUMNS = ("sensor_id", "timestamp", *MEASUREMENTS)
# Rows per COPY + INSERT round: big enough to amortise the statements, small
# enough that the staging table and the sort stay in memory.
CHUNK_ROWS = 200_000
_SQLITE_CHUNK = 5_000
_STAGING = "bulk_readings_staging"

# (line, sensor code, timestamp, rainfall, soil_moisture, ground_movement, water_level)
Row = tuple[int, str, datetime, float | None, float | None, float | None, float | None]


class BulkLoadError(ValueError):
    """The input cannot be loaded; nothing was stored. The message names the line."""


@dataclass
class BulkLoadResult:
    rows: int
    inserted: int
    seconds: float
    skipped_unknown: dict[str, int] = field(default_factory=dict)

    @property
    def duplicates(self) -> int:
        """Rows already stored (or repeated in the input), skipped by the unique index."""
        return self.rows - self.inserted - sum(self.skipped_unknown.values())

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def _number(raw: str, name: str, line: int) -> float | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BulkLoadError(f"line {line}: {name}: {raw!r} is not a number") from None
    low, high = RANGES[name]
    if not math.isfinite(value) or not low <= value <= high:
        raise BulkLoadError(f"line {line}: {name}: {raw} is not between {low:g} and {high:g}")
    return value


def csv_rows(file: TextIO) -> Iterator[Row]:
    """Validated rows of a readings CSV (header required; empty cells are missing measurements).

    Raises BulkLoadError naming the line of the first invalid row.
    """
    reader = csv.reader(file)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise BulkLoadError("the file is empty; expected a header line: " + ",".join(CSV_COLUMNS)) from None
    missing = [name for name in CSV_COLUMNS if name not in header]
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if missing or unknown or len(header) != len(set(header)):
        problems = []
        if missing:
            problems.append("missing " + ", ".join(missing))
        if unknown:
            problems.append("unknown " + ", ".join(unknown))
        if len(header) != len(set(header)):
            problems.append("repeated columns")
        raise BulkLoadError(f"line 1: bad header ({'; '.join(problems)}); expected: " + ",".join(CSV_COLUMNS))
    index = {name: header.index(name) for name in CSV_COLUMNS}
    width = len(header)
    for cells in reader:
        line = reader.line_num
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue  # blank line
        if len(cells) != width:
            raise BulkLoadError(f"line {line}: expected {width} fields, got {len(cells)}")
        code = cells[index["sensor_id"]].strip()
        if not code or len(code) > SENSOR_ID_MAX:
            raise BulkLoadError(f"line {line}: sensor_id: must be a non-empty code of at most {SENSOR_ID_MAX} characters")
        ts = parse_timestamp(cells[index["timestamp"]].strip())
        if isinstance(ts, str):
            raise BulkLoadError(f"line {line}: timestamp: {ts}")
        values = [_number(cells[index[name]], name, line) for name in MEASUREMENTS]
        if all(v is None for v in values):
            raise BulkLoadError(f"line {line}: at least one of {', '.join(MEASUREMENTS)} is required")
        yield (line, code, ts, *values)


def synthetic_rows(*, count: int, sensor_ids: list[str], end: datetime, interval: timedelta, seed: int = 0) -> Iterator[Row]:
    """``count`` plausible readings spread over ``sensor_ids``, one every ``interval`` per sensor, the last at ``end``.

    Time-major order (every sensor at t, then every sensor at t + interval):
    each chunk then appends to one spot per sensor of the (sensor, timestamp)
    index, which keeps a load of tens of millions of rows fast. Values stay
    inside the physical ranges and mostly below common thresholds: history
    to compute features from, not a storm. Deterministic for a given seed.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    if count and not sensor_ids:
        raise ValueError("synthetic readings need at least one sensor")
    n = len(sensor_ids)
    steps = -(-count // n) if count else 0
    start = end - interval * max(steps - 1, 0)
    rng = random.Random(seed)
    rand, gauss = rng.random, rng.gauss
    produced = 0
    for step in range(steps):
        ts = start + interval * step
        for code in sensor_ids:
            if produced == count:
                return
            produced += 1
            rain = 0.0 if rand() < 0.7 else round(min(500.0, rng.expovariate(0.15)), 1)
            soil = round(min(1.0, max(0.0, gauss(0.3, 0.06))), 3)
            movement = round(min(1000.0, rng.expovariate(2.0)), 2)
            water = round(min(100.0, max(-50.0, gauss(1.8, 0.5))), 2)
            yield (produced, code, ts, rain, soil, movement, water)


def readings_bulk_load(
    *, rows: Iterable[Row], skip_unknown: bool = False, received_at: datetime | None = None, atomic: bool = True,
) -> BulkLoadResult:
    """Store validated rows idempotently; see the module docstring.

    ``atomic`` (files): one transaction, so nothing is stored when a row is bad.
    Without it (synthetic history) each chunk commits on its own: the
    deferred foreign-key checks PostgreSQL queues per row are then run and
    freed chunk by chunk instead of piling up for tens of millions of rows,
    and an interrupted load resumes idempotently.
    Raises BulkLoadError when a row names an unknown sensor (nothing stored
    when atomic), unless ``skip_unknown``: then those rows are left out and
    counted by code.
    """
    started = time.perf_counter()
    received_at = received_at or timezone.now()
    sensor_pks = dict(Sensor.objects.values_list("sensor_id", "pk"))
    unknown: dict[str, int] = {}
    unknown_first_line: dict[str, int] = {}

    def known(source: Iterable[Row]) -> Iterator[Row]:
        for row in source:
            if row[1] in sensor_pks:
                yield row
            else:
                unknown[row[1]] = unknown.get(row[1], 0) + 1
                unknown_first_line.setdefault(row[1], row[0])

    total = 0

    def counted(source: Iterable[Row]) -> Iterator[Row]:
        nonlocal total
        for row in source:
            total += 1
            yield row

    with transaction.atomic() if atomic else _no_transaction():
        store = _copy_chunks if connection.vendor == "postgresql" else _insert_chunks
        inserted = store(known(counted(rows)), sensor_pks=sensor_pks, received_at=received_at)
        if unknown and not skip_unknown:
            listed = ", ".join(f"{code!r} (line {line})" for code, line in sorted(unknown_first_line.items(), key=lambda i: i[1])[:20])
            more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
            outcome = "Nothing was loaded." if atomic else "The other rows were loaded."
            raise BulkLoadError(f"unknown sensor_id in {sum(unknown.values())} rows; register these sensors first: {listed}{more}. {outcome}")
    result = BulkLoadResult(rows=total, inserted=inserted, seconds=time.perf_counter() - started, skipped_unknown=unknown)
    logger.info("readings.bulk_loaded", extra={
        "rows": result.rows, "inserted": result.inserted, "duplicates": result.duplicates,
        "skipped_unknown": sum(unknown.values()), "seconds": round(result.seconds, 3),
        "rows_per_second": round(result.rows_per_second),
    })
    return result


def readings_load_csv(*, file: TextIO, skip_unknown: bool = False) -> BulkLoadResult:
    """Load a readings CSV (columns ``CSV_COLUMNS``, header required), all or nothing."""
    return readings_bulk_load(rows=csv_rows(file), skip_unknown=skip_unknown)


def _chunks(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@contextmanager
def _no_transaction() -> Iterator[None]:
    yield


def _copy_chunks(rows: Iterable[Row], *, sensor_pks: dict[str, int], received_at: datetime) -> int:
    """PostgreSQL: COPY each chunk into a temporary staging table, then move it with one INSERT ... SELECT.

    Each chunk is its own atomic block: a savepoint inside the caller's
    transaction, or a commit when there is none.
    """
    readings = connection.ops.quote_name(Reading._meta.db_table)
    sensors = connection.ops.quote_name(Sensor._meta.db_table)
    measurements = ", ".join(MEASUREMENTS)
    inserted = 0
    for chunk in _chunks(rows, CHUNK_ROWS):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMPORARY TABLE {_STAGING} (sensor_code text, ts timestamptz, "
                + ", ".join(f"{m} float8" for m in MEASUREMENTS) + ")"
            )
            raw = cursor.cursor  # psycopg 3 cursor under Django's wrapper: it has copy()
            with raw.copy(f"COPY {_STAGING} (sensor_code, ts, {measurements}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["text", "timestamptz", "float8", "float8", "float8", "float8"])
                write = copy.write_row
                for row in chunk:
                    write(row[1:])
            cursor.execute(
                f"INSERT INTO {readings} (sensor_id, timestamp, received_at, {measurements}) "
                f"SELECT s.id, st.ts, %s, {', '.join('st.' + m for m in MEASUREMENTS)} "
                f"FROM {_STAGING} st JOIN {sensors} s ON s.sensor_id = st.sensor_code "
                "ORDER BY s.id, st.ts DESC ON CONFLICT DO NOTHING",
                [received_at],
            )
            inserted += cursor.rowcount
            cursor.execute(
                f"UPDATE {sensors} AS s SET last_seen_at = m.ts "
                f"FROM (SELECT sensor_code, max(ts) AS ts FROM {_STAGING} GROUP BY sensor_code) AS m "
                "WHERE s.sensor_id = m.sensor_code AND (s.last_seen_at IS NULL OR s.last_seen_at < m.ts)"
            )
            # Dropped explicitly, not ON COMMIT: inside a caller's transaction the next chunk creates it again.
            # On an error the rollback (to this atomic block's savepoint) removes it.
            cursor.execute(f"DROP TABLE {_STAGING}")
        logger.debug("readings.bulk_chunk", extra={"rows": len(chunk), "inserted_total": inserted})
    return inserted


def _insert_chunks(rows: Iterable[Row], *, sensor_pks: dict[str, int], received_at: datetime) -> int:
    """SQLite: batched inserts through the pipeline's own idempotent store."""
    inserted = 0
    for chunk in _chunks(rows, _SQLITE_CHUNK):
        readings = [
            ReadingIn(code, ts, received_at, rainfall, soil, movement, water)
            for _, code, ts, rainfall, soil, movement, water in chunk
        ]
        with transaction.atomic():
            stored = readings_store_batch(readings=readings, sensor_pks=sensor_pks)
            sensors_touch_last_seen(stored=stored)
        inserted += len(stored)
    return inserted


def history_end_default() -> datetime:
    """Synthetic history ends a minute ago (whole minutes, so timestamps are readable)."""
    return datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
