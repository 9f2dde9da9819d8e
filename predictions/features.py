"""The single feature implementation shared by training, the Kafka consumer and the API.

Why one module: a model is only as good as the agreement between the features it
was trained on and the features it is served with. Training (``predictions.ml.train``),
the batch consumer and the ``/predictions`` endpoint all call the functions below,
so there is no second implementation that could drift.

Semantics (the contract the tests pin down)
-------------------------------------------
* Features at time ``t`` depend ONLY on the readings whose timestamp lies in the
  half-open window ``(t - 72 h, t]``. Late or out-of-order delivery therefore gives
  identical features once the same readings are stored.
* Missing stays missing: a value that is NaN/absent yields NaN features; nothing
  is ever filled with zero or carried forward from outside the window.
* "Latest reading" means the reading with the greatest timestamp ``<= t`` inside the
  window. Current values are that reading's values (NaN if it lacks the variable).
* Timestamps are expected to be unique per sensor (the database enforces this);
  duplicated timestamps give NaN rates instead of a division by zero.

Rainfall window sums
--------------------
Each reading's ``rainfall`` is the amount (mm) that fell in the hour ending at the
reading's timestamp. Summing those amounts naively double-counts when a device
reports more often than hourly, so each reading is weighted by the fraction of its
hour that is *not* already covered by the previous rainfall reading in the same
window::

    w_i = min(1, (ts_i - ts_prev) / 3600)      ts_prev = previous reading in the
                                               window with a non-missing rainfall
    w_first = min(1, (ts_first - window_start) / 3600)

    rain_W(t) = sum_i w_i * rainfall_i        over readings with ts in (t - W, t]

Consequences: with an hourly cadence every weight is 1 and ``rain_W`` is the plain
sum of the hourly amounts; with a 10-minute cadence each reading counts 1/6 (a
rolling mean of overlapping hourly totals); hours with no reading contribute
nothing (they are unknown, not zero); a window with no rainfall reading at all is
NaN. ``rain_72h_excl_24h`` is the same sum over ``(t - 72 h, t - 24 h]``.

Feature list (order is part of the model contract)
--------------------------------------------------
``rainfall, soil_moisture, ground_movement, water_level``
    values of the latest reading.
``rain_1h, rain_3h, rain_24h, rain_72h``
    window sums defined above.
``rain_72h_excl_24h``
    antecedent rain: the wetness of the ground before the current storm, which
    (with saturation) separates a harmless burst on dry soil from a trigger.
``soil_moisture_rate, water_level_rate``
    (latest value - previous non-missing value in the window) / hours between them.
``ground_movement_velocity``
    the latest ``ground_movement`` reading (readings already are a rate, mm/h). It
    duplicates ``ground_movement`` by definition; both are kept because the model
    contract names both.
``ground_movement_acceleration``
    change of velocity per hour, computed like the rates above.
``hours_since_previous``
    hours between the latest reading and the one before it in the window.
``flood_stage``
    the sensor's official flood stage (m above the same datum as ``water_level``),
    site context supplied by the caller; NaN when unknown.
``water_level_above_flood_stage``
    ``water_level - flood_stage``: raw stage is meaningless across sites with
    different datums, the margin to flood stage is what a hydrologist looks at.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np

logger = logging.getLogger(__name__)

HOUR = 3600.0
WINDOW_SECONDS = 72 * HOUR

READING_FIELDS: tuple[str, ...] = ("rainfall", "soil_moisture", "ground_movement", "water_level")

#: Plausible physical ranges of the raw readings (inclusive), used to validate API input.
READING_RANGES: dict[str, tuple[float, float]] = {
    "rainfall": (0.0, 500.0),
    "soil_moisture": (0.0, 1.0),
    "ground_movement": (0.0, 1000.0),
    "water_level": (-50.0, 100.0),
}

FEATURE_NAMES: tuple[str, ...] = (
    "rainfall",
    "soil_moisture",
    "ground_movement",
    "water_level",
    "rain_1h",
    "rain_3h",
    "rain_24h",
    "rain_72h",
    "rain_72h_excl_24h",
    "soil_moisture_rate",
    "water_level_rate",
    "ground_movement_velocity",
    "ground_movement_acceleration",
    "hours_since_previous",
    "flood_stage",
    "water_level_above_flood_stage",
)
N_FEATURES = len(FEATURE_NAMES)
_IDX = {name: i for i, name in enumerate(FEATURE_NAMES)}

# (feature name, window start offset, window end offset) in seconds before t.
_RAIN_WINDOWS: tuple[tuple[str, float, float], ...] = (
    ("rain_1h", 1 * HOUR, 0.0),
    ("rain_3h", 3 * HOUR, 0.0),
    ("rain_24h", 24 * HOUR, 0.0),
    ("rain_72h", 72 * HOUR, 0.0),
    ("rain_72h_excl_24h", 72 * HOUR, 24 * HOUR),
)


def _as_float_array(x, n: int, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    return arr


# Rain contributions are summed as integers in units of 2**-32 mm (see _rain_features).
_RAIN_SCALE = 2.0**32


def _rain_features(ts: np.ndarray, rain: np.ndarray, targets: np.ndarray, out: np.ndarray) -> None:
    """The five window sums for every target, from one prefix sum over the history.

    Why integers: a window sum taken as the difference of two entries of a
    float prefix sum would depend on everything summed before the window
    (rounding), so the consumer's 72 h window, the API's history and
    training's years of data would give different last bits for the same
    readings. Each contribution is instead rounded once to a multiple of
    2**-32 mm (an error below 1.2e-10 mm a reading, far below float32's
    resolution of the stored features) and summed in int64: the difference
    of two prefix sums is then the exact sum of the window's own
    contributions, whatever precedes it. int64 arithmetic wraps on
    overflow, and a difference of wrapped prefix sums is still exact as
    long as the window's own sum fits (at most 72 h x 500 mm x 2**32,
    ~1.5e14, which also converts to float64 exactly).

    Cost: a few passes over the history plus O(log n) per target. Summing
    each target's window from its own slice (``np.add.reduceat``) cost
    O(window) per target, and with the consumer's full 72 h windows at a
    1-minute cadence the whole computation took ~36 µs per target
    (bench/bench_features.py).
    """
    valid = np.flatnonzero(~np.isnan(rain))
    if len(valid) == 0:
        return  # columns stay NaN: no rainfall observation at all
    rts = ts[valid]
    rr = rain[valid]
    # Weight of every reading relative to its predecessor; exact for all readings
    # except the first one of a window, which is re-weighted against the window start.
    w = np.ones(len(rts))
    np.minimum(1.0, np.diff(rts) / HOUR, out=w[1:])
    prefix = np.zeros(len(rts) + 1, dtype=np.int64)
    np.cumsum(np.rint(rr * w * _RAIN_SCALE).astype(np.int64), out=prefix[1:])
    for name, start_off, end_off in _RAIN_WINDOWS:
        start = targets - start_off
        lo = np.searchsorted(rts, start, side="right")
        hi = np.searchsorted(rts, targets - end_off, side="right")
        has = hi > lo
        first = np.minimum(lo, len(rts) - 1)
        first_w = np.minimum(1.0, (rts[first] - start) / HOUR)
        rest = (prefix[hi] - prefix[np.minimum(lo + 1, hi)]).astype(np.float64) / _RAIN_SCALE
        out[:, _IDX[name]] = np.where(has, rr[first] * first_w + rest, np.nan)


def _previous_valid(valid_rows: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each of ``rows``, the last of ``valid_rows`` (sorted) strictly before it, or -1."""
    before = np.searchsorted(valid_rows, rows, side="left")
    return np.where(before > 0, valid_rows[np.maximum(before - 1, 0)], -1)


def _compute(ts: np.ndarray, values: Mapping[str, np.ndarray], targets: np.ndarray,
             flood_stage: np.ndarray) -> np.ndarray:
    m = len(targets)
    out = np.full((m, N_FEATURES), np.nan, dtype=np.float64)
    n = len(ts)
    if n == 0 or m == 0:
        return out.astype(np.float32)

    hi = np.searchsorted(ts, targets, side="right")
    lo = np.searchsorted(ts, targets - WINDOW_SECONDS, side="right")
    has = hi > lo
    latest = np.maximum(hi - 1, 0)  # only meaningful where `has`
    ts_latest = ts[latest]

    for name in READING_FIELDS:
        v = values[name]
        out[:, _IDX[name]] = np.where(has, v[latest], np.nan)

    _rain_features(ts, values["rainfall"], targets, out)

    # Rate of change between the latest reading and the previous valid one in the window.
    for name, col in (("soil_moisture", "soil_moisture_rate"),
                      ("water_level", "water_level_rate"),
                      ("ground_movement", "ground_movement_acceleration")):
        v = values[name]
        valid_rows = np.flatnonzero(~np.isnan(v))
        if len(valid_rows) == 0:
            continue  # the rate stays NaN
        prev = _previous_valid(valid_rows, latest)
        ok = has & (prev >= lo)
        prev_c = np.maximum(prev, 0)
        dt_h = (ts_latest - ts[prev_c]) / HOUR
        ok &= dt_h > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = (v[latest] - v[prev_c]) / dt_h
        out[:, _IDX[col]] = np.where(ok, rate, np.nan)

    out[:, _IDX["ground_movement_velocity"]] = out[:, _IDX["ground_movement"]]

    before = latest - 1
    ok = has & (before >= lo)
    out[:, _IDX["hours_since_previous"]] = np.where(
        ok, (ts_latest - ts[np.maximum(before, 0)]) / HOUR, np.nan)

    out[:, _IDX["flood_stage"]] = flood_stage
    out[:, _IDX["water_level_above_flood_stage"]] = out[:, _IDX["water_level"]] - flood_stage
    return out.astype(np.float32)


def _prepare_values(values: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    unknown = set(values) - set(READING_FIELDS)
    if unknown:
        raise ValueError(f"unknown reading fields: {sorted(unknown)}")
    return {f: (_as_float_array(values[f], n, f) if f in values else np.full(n, np.nan))
            for f in READING_FIELDS}


def _prepare_flood_stage(flood_stage, m: int) -> np.ndarray:
    if flood_stage is None:
        return np.full(m, np.nan)
    fs = np.asarray(flood_stage, dtype=np.float64)
    return np.broadcast_to(fs, (m,)).astype(np.float64)


def compute_features(ts: np.ndarray, values: Mapping[str, np.ndarray], targets: np.ndarray,
                     flood_stage: float | np.ndarray | None = None) -> np.ndarray:
    """Features for ONE sensor at each time in ``targets``.

    ``ts``: float64 epoch seconds, sorted ascending; ``values``: reading arrays
    aligned with ``ts`` (absent keys = all missing); ``targets``: epoch seconds in
    any order; ``flood_stage``: the sensor's flood stage (scalar, per-target array
    or None). The history must cover the 72 h before every target. Returns float32
    ``(len(targets), len(FEATURE_NAMES))``.
    """
    ts = np.asarray(ts, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64).reshape(-1)
    if ts.ndim != 1:
        raise ValueError("ts must be one-dimensional")
    if len(ts) > 1 and np.any(np.diff(ts) < 0):
        raise ValueError("ts must be sorted ascending")
    vals = _prepare_values(values, len(ts))
    return _compute(ts, vals, targets, _prepare_flood_stage(flood_stage, len(targets)))


def compute_features_grouped(groups: np.ndarray, ts: np.ndarray, values: Mapping[str, np.ndarray],
                             target_groups: np.ndarray, target_ts: np.ndarray,
                             flood_stage: float | np.ndarray | None = None) -> np.ndarray:
    """Features for many sensors in one vectorised call (what the consumer uses per batch).

    Calling :func:`compute_features` once per sensor costs tens of microseconds of
    numpy overhead per call, which dominates when a batch holds one or two readings
    per sensor. Instead every sensor's timeline is shifted onto its own stretch of
    the time axis, separated by more than the 72 h window, so one call handles all
    sensors and no window can reach into another sensor's readings. Shifts are whole
    seconds, so integral timestamps stay exact and the features equal those of
    per-sensor calls.

    ``groups``/``target_groups`` are integer sensor keys; inputs need not be sorted.
    Rows of the result follow the order of ``target_ts``.
    """
    groups = np.asarray(groups).reshape(-1)
    ts = np.asarray(ts, dtype=np.float64).reshape(-1)
    target_groups = np.asarray(target_groups).reshape(-1)
    target_ts = np.asarray(target_ts, dtype=np.float64).reshape(-1)
    if len(groups) != len(ts) or len(target_groups) != len(target_ts):
        raise ValueError("groups/ts and target_groups/target_ts must have equal lengths")
    vals = _prepare_values(values, len(ts))
    m = len(target_ts)
    fs = _prepare_flood_stage(flood_stage, m)
    if len(ts) == 0 or m == 0:
        return _compute(ts, vals, target_ts, fs)

    t0 = math.floor(min(ts.min(), target_ts.min()))
    span = math.ceil(max(ts.max(), target_ts.max()) - t0) + WINDOW_SECONDS + HOUR
    new_group = groups[1:] != groups[:-1]
    if np.all(groups[1:] >= groups[:-1]) and np.all(new_group | (ts[1:] >= ts[:-1])):
        # History already in (group, time) order, as the consumer passes it: the
        # same group numbers and row order without sorting n + m keys twice
        # (~0.1 of 0.36 s for 2.2 M history rows and 20,000 targets).
        keys = groups[np.r_[True, new_group]]
        g_tgt = np.searchsorted(keys, target_groups)
        if np.all(g_tgt < len(keys)) and np.array_equal(keys[np.minimum(g_tgt, len(keys) - 1)], target_groups):
            shifted = (ts - t0) + np.cumsum(np.r_[0, new_group]) * span
            return _compute(shifted, vals, (target_ts - t0) + g_tgt * span, fs)
    keys, inverse = np.unique(np.concatenate([groups, target_groups]), return_inverse=True)
    g_hist = inverse[:len(groups)]
    g_tgt = inverse[len(groups):]
    order = np.lexsort((ts, g_hist))
    shifted = (ts[order] - t0) + g_hist[order] * span
    shifted_targets = (target_ts - t0) + g_tgt * span
    sorted_vals = {f: v[order] for f, v in vals.items()}
    return _compute(shifted, sorted_vals, shifted_targets, fs)


def features_from_measurements(payload: Mapping[str, object]) -> np.ndarray:
    """One feature row ``(1, F)`` for an explicit API request.

    Accepts the four readings and, optionally, any feature by its FEATURE_NAMES
    name (e.g. ``rain_72h`` the client computed). Absent or null values are NaN.
    Only identities that hold for a single reading are derived:
    ``ground_movement_velocity = ground_movement``, ``rain_1h = rainfall`` (a lone
    hourly reading is its own 1 h window) and ``water_level_above_flood_stage``.
    Raises ``ValueError`` for unknown keys, non-numbers or out-of-range readings.
    """
    unknown = set(payload) - set(FEATURE_NAMES)
    if unknown:
        raise ValueError(f"unknown feature(s): {', '.join(sorted(unknown))}")
    row = np.full(N_FEATURES, np.nan, dtype=np.float64)
    for name, raw in payload.items():
        if raw is None:
            continue
        if isinstance(raw, bool) or not isinstance(raw, (int, float, np.integer, np.floating)):
            raise ValueError(f"{name} must be a number or null")
        value = float(raw)
        if math.isnan(value):
            continue
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite")
        bounds = READING_RANGES.get(name)
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            raise ValueError(f"{name} must be within [{bounds[0]:g}, {bounds[1]:g}]")
        row[_IDX[name]] = value

    def derive(target: str, value: float) -> None:
        if math.isnan(row[_IDX[target]]):
            row[_IDX[target]] = value

    derive("ground_movement_velocity", row[_IDX["ground_movement"]])
    derive("rain_1h", row[_IDX["rainfall"]])
    derive("water_level_above_flood_stage", row[_IDX["water_level"]] - row[_IDX["flood_stage"]])
    return row.astype(np.float32).reshape(1, N_FEATURES)


def features_to_dict(row) -> dict[str, float | None]:
    """JSON-ready snapshot of one feature row (NaN -> None).

    Values are printed with float32 precision (7 significant digits) so the stored
    snapshot reads ``0.1`` rather than ``0.10000000149011612``.
    """
    arr = np.asarray(row, dtype=np.float32).reshape(-1)
    if arr.shape != (N_FEATURES,):
        raise ValueError(f"expected {N_FEATURES} features, got {arr.size}")
    return {name: (None if math.isnan(v) else float(format(v, ".7g")))
            for name, v in zip(FEATURE_NAMES, arr.tolist())}
