"""Each sensor's recent readings, kept in the consumer process so scoring need not re-read them.

Why: the features at t need every reading in (t - 72 h, t]. At a 1-minute
cadence that is up to 4,320 rows per sensor, and reading them back from
PostgreSQL for every batch was the consumer's largest cost once the
database held millions of readings (see ``predictions.services``).

The contract: a window is *complete* — it holds every stored reading of its
sensor whose timestamp is after ``start`` — so the rows scoring takes from
it are exactly the rows the database query returns, and the features are
identical (tests/predictions/test_windows.py). Completeness holds because,
while a consumer owns a sensor's partition, it is the only writer of that
sensor's readings and adds every reading it stores to the window. Whenever
that is in doubt the window goes, and the sensor's next batch reads the
database again:

- a process starts empty (restart: each sensor's first batch reads the database);
- any partition assignment change clears every window (``sensors.consumer``):
  another consumer may have written those sensors meanwhile;
- a failed batch clears every window: readings it added were rolled back;
- a window is reloaded after ``WINDOW_CACHE_SECONDS``, the bound on how long
  readings written behind the consumer's back (``load_history`` into a live
  system) can be missed;
- a reading older than its window's start (more than ``SLACK`` behind the
  sensor's newest) is scored from the database.

Memory: 16 bytes a row for typical readings (see ``_encode``), at most
``WINDOW_CACHE_MB`` in all; a sensor whose window does not fit is scored
from the database.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

US_PER_SECOND = 1_000_000
WINDOW_US = 72 * 3600 * US_PER_SECOND
# How far behind its sensor's newest reading a reading may arrive and still be
# scored from the window; windows keep this much more than 72 h.
SLACK_US = 3600 * US_PER_SECOND

# Measurements are kept as exact thousandths in the narrowest integer type
# that holds a whole column (int16 up to +-32.767, which covers soil moisture
# and, in most hours, rainfall, water level and ground movement; else int32),
# or as the float64 stored when a value has more than 3 decimals (stations
# report at most 3). A row is then 16 bytes (int64 timestamp + 4 x int16)
# instead of 40: 1,000 sensors at a 1-minute cadence (4.4 M rows) take
# ~70 MB, which fits the consumer's 300 MB RSS budget with the models and a
# batch in flight. Decoding divides by the same 1000.0 the check used, so it
# gives back the very same float64. The most negative value of each integer
# type marks a missing value.
_SCALE = 1000.0
_INTEGER_TYPES = (np.dtype(np.int16), np.dtype(np.int32))


def _encode(column: np.ndarray) -> np.ndarray:
    """A float64 column (NaN = missing) as int16/int32 thousandths when exact, else as float64."""
    missing = np.isnan(column)
    with np.errstate(invalid="ignore"):
        scaled = np.rint(column * _SCALE)
        exact = (scaled / _SCALE == column) & (np.signbit(scaled) == np.signbit(column))
    if not np.all(exact | missing):
        return np.array(column, dtype=np.float64)
    present = scaled[~missing]
    peak = float(np.max(np.abs(present))) if len(present) else 0.0
    for dtype in _INTEGER_TYPES:
        info = np.iinfo(dtype)
        if peak <= info.max:  # info.min (one below -info.max) is the missing marker
            return np.where(missing, info.min, scaled).astype(dtype)
    return np.array(column, dtype=np.float64)


def _decode(column: np.ndarray) -> np.ndarray:
    if column.dtype.kind != "i":
        return column
    out = column / _SCALE
    out[column == np.iinfo(column.dtype).min] = np.nan
    return out


def _concat(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Two stored columns end to end, in the narrowest type that holds both exactly."""
    if old.dtype != new.dtype:
        return _encode(np.concatenate((_decode(old), _decode(new))))
    return np.concatenate((old, new))


def _nbytes(us: np.ndarray, columns: list[np.ndarray]) -> int:
    return us.nbytes + sum(c.nbytes for c in columns)


@dataclass(slots=True)
class Window:
    """One sensor's stored readings with a timestamp after ``start`` (µs since the Unix epoch), all of them."""

    start: int
    us: np.ndarray  # int64, ascending, unique
    columns: list[np.ndarray]  # one per measurement (sensors.records.MEASUREMENTS), see _encode
    expires: float  # time.monotonic() after which the window is reloaded from the database

    def __len__(self) -> int:
        return len(self.us)

    @property
    def nbytes(self) -> int:
        return _nbytes(self.us, self.columns)

    def between(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """The rows with lo < timestamp <= hi (the database query's half-open window): µs, float64 (4, n) values."""
        i, j = np.searchsorted(self.us, (lo, hi), side="right")
        return self.us[i:j], np.vstack([_decode(column[i:j]) for column in self.columns])


class SensorWindows:
    """Complete recent windows by sensor pk, bounded in bytes; see the module docstring."""

    def __init__(self, *, max_bytes: int, ttl_seconds: float):
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        self._windows: dict[int, Window] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._windows)

    @property
    def nbytes(self) -> int:
        return self._bytes

    @property
    def rows(self) -> int:
        return sum(len(window) for window in self._windows.values())

    def clear(self) -> None:
        self._windows.clear()
        self._bytes = 0

    def covering(self, sensor_pk: int, lo: int, *, valid_for: float = 0.0) -> Window | None:
        """The sensor's window if it holds every stored reading after ``lo`` (µs), else None.

        ``valid_for``: None also when the window expires within that many seconds.
        """
        window = self._windows.get(sensor_pk)
        if window is None or window.start > lo:
            return None
        now = time.monotonic()
        if window.expires <= now:
            self._drop(sensor_pk)
            return None
        if window.expires <= now + valid_for:
            return None  # still valid, but not for as long as the caller needs
        return window

    def put(self, sensor_pk: int, *, start: int, us: np.ndarray, values: np.ndarray) -> None:
        """Keep a window read from the database: every stored reading of the sensor after ``start``.

        ``values``: float64 (4, n), NaN = missing. Left out (the sensor stays
        on the database path) when it would not fit in ``max_bytes``.
        """
        self._drop(sensor_pk)
        keep = 0
        if len(us) and (cut := int(us[-1]) - WINDOW_US - SLACK_US) > start:
            start, keep = cut, int(np.searchsorted(us, cut, side="right"))
        window = Window(start, us[keep:].copy(), [_encode(v[keep:]) for v in values], time.monotonic() + self.ttl_seconds)
        if self._bytes + window.nbytes > self.max_bytes:
            logger.debug("windows.full", extra={"sensor_pk": sensor_pk, "bytes": self._bytes})
            return
        self._windows[sensor_pk] = window
        self._bytes += window.nbytes

    def add(self, window: Window, sensor_pk: int, us: np.ndarray, values: np.ndarray) -> None:
        """Add readings just stored (``us`` ascending, none already in the window, all after its start).

        Rows that neither these readings nor one up to ``SLACK`` behind the
        newest can need are forgotten in the same copy.
        """
        before = window.nbytes
        keep = self._cut(window, min(int(us[-1]) - WINDOW_US - SLACK_US, int(us[0]) - WINDOW_US))
        new_columns = [_encode(v) for v in values]
        if not len(window) or us[0] > window.us[-1]:
            # In-order data: an append.
            window.us = np.concatenate((window.us[keep:], us))
            window.columns = [_concat(old[keep:], new) for old, new in zip(window.columns, new_columns)]
        else:
            # A late reading inside the window: a merge.
            merged_us = np.concatenate((window.us[keep:], us))
            order = np.argsort(merged_us, kind="stable")
            window.us = merged_us[order]
            window.columns = [_concat(old[keep:], new)[order] for old, new in zip(window.columns, new_columns)]
        self._bytes += window.nbytes - before
        if self._bytes > self.max_bytes:
            self._drop(sensor_pk)

    @staticmethod
    def _cut(window: Window, cut: int) -> int:
        """Move ``start`` up to ``cut`` (the window stays complete after it); how many rows to forget."""
        if cut <= window.start:
            return 0
        window.start = cut
        return int(np.searchsorted(window.us, cut, side="right"))

    def forget(self, sensor_pk: int) -> None:
        """Stop trusting the sensor's window (readings were stored that it does not hold)."""
        self._drop(sensor_pk)

    def _drop(self, sensor_pk: int) -> None:
        window = self._windows.pop(sensor_pk, None)
        if window is not None:
            self._bytes -= window.nbytes
