"""Contract tests for predictions.features: windows, weights, missing data, delivery order."""

import math

import numpy as np
import pytest

from predictions.features import (
    FEATURE_NAMES,
    compute_features,
    compute_features_grouped,
    features_from_measurements,
    features_to_dict,
)

H = 3600.0
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def col(name):
    return FEATURE_NAMES.index(name)


def feats(ts, values, target, **kw):
    order = np.argsort(ts, kind="stable")
    ts = np.asarray(ts, dtype=float)[order]
    values = {k: np.asarray(v, dtype=float)[order] for k, v in values.items()}
    return features_to_dict(compute_features(ts, values, np.array([target]), **kw)[0])


def test_feature_names_cover_the_contract():
    required = {"rainfall", "soil_moisture", "ground_movement", "water_level", "rain_1h", "rain_3h",
                "rain_24h", "rain_72h", "soil_moisture_rate", "water_level_rate",
                "ground_movement_velocity", "ground_movement_acceleration", "hours_since_previous"}
    assert required <= set(FEATURE_NAMES)
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)


def test_hourly_rain_sums_are_exact_on_hand_computed_windows():
    # 80 hourly readings, reading k has rainfall k mm; target = last reading (k=79).
    ts = T0 + np.arange(80) * H
    rain = np.arange(80, dtype=float)
    f = feats(ts, {"rainfall": rain}, ts[-1])
    assert f["rainfall"] == 79
    assert f["rain_1h"] == 79
    assert f["rain_3h"] == 77 + 78 + 79
    assert f["rain_24h"] == sum(range(56, 80))
    assert f["rain_72h"] == sum(range(8, 80))          # (t-72h, t] excludes reading 7 at t-72h
    assert f["rain_72h_excl_24h"] == sum(range(8, 56))
    assert f["hours_since_previous"] == 1.0


def test_sub_hourly_cadence_weights_each_reading_by_its_new_part_of_the_hour():
    # Readings every 30 min, each reporting the mm of the hour ending at it.
    ts = T0 + np.arange(0, 6) * 1800.0           # t0, +0.5h, ..., +2.5h
    rain = np.array([2.0, 4.0, 6.0, 8.0, 10.0, 12.0])
    f = feats(ts, {"rainfall": rain}, ts[-1])
    # rain_1h window (t-1h, t]: readings at t-0.5h (10, first: 0.5h after window start
    # -> weight 0.5) and t (12, 0.5h after previous -> weight 0.5).
    assert f["rain_1h"] == pytest.approx(0.5 * 10 + 0.5 * 12)
    # rain_3h window (t-3h, t] holds all six; the first (at t-2.5h) has weight 0.5.
    assert f["rain_3h"] == pytest.approx(0.5 * (2 + 4 + 6 + 8 + 10 + 12))
    assert f["hours_since_previous"] == 0.5


def test_gaps_contribute_nothing_and_first_reading_is_weighted_from_window_start():
    ts = T0 + np.array([0.0, 1.0, 5.0, 5.25]) * H
    rain = np.array([3.0, 4.0, 5.0, 8.0])
    f = feats(ts, {"rainfall": rain}, ts[-1])
    # (t-3h, t]: reading at t-0.25h is first -> weight min(1, 2.75) = 1; last: 0.25.
    assert f["rain_3h"] == pytest.approx(5 + 0.25 * 8)
    # (t-24h, t]: 3 (w 1), 4 (w 1), 5 (gap 4h -> 1), 8 (w 0.25)
    assert f["rain_24h"] == pytest.approx(3 + 4 + 5 + 2)
    assert f["hours_since_previous"] == 0.25


def test_window_without_rain_readings_gives_nan_sums_not_zero():
    ts = T0 + np.array([0.0, 30.0, 31.0]) * H
    f = feats(ts, {"rainfall": [2.0, np.nan, np.nan], "soil_moisture": [0.2, 0.3, 0.4]}, ts[-1])
    assert f["rainfall"] is None
    assert f["rain_1h"] is None and f["rain_3h"] is None and f["rain_24h"] is None
    assert f["rain_72h"] == 2.0
    assert f["rain_72h_excl_24h"] == 2.0


def test_missing_values_stay_nan_and_absent_fields_are_nan():
    ts = T0 + np.array([0.0, 1.0, 2.0]) * H
    f = feats(ts, {"soil_moisture": [0.2, np.nan, np.nan], "rainfall": [0.0, 0.0, 0.0]}, ts[-1])
    assert f["soil_moisture"] is None          # latest reading lacks it: not carried forward
    assert f["soil_moisture_rate"] is None
    assert f["water_level"] is None and f["water_level_rate"] is None
    assert f["ground_movement_velocity"] is None and f["ground_movement_acceleration"] is None
    assert f["flood_stage"] is None and f["water_level_above_flood_stage"] is None
    assert f["rain_3h"] == 0.0


def test_rates_use_previous_valid_value_in_window():
    ts = T0 + np.array([0.0, 1.0, 2.0, 4.0]) * H
    values = {"soil_moisture": [0.20, 0.25, np.nan, 0.35],
              "water_level": [1.0, 1.5, 2.0, 3.0],
              "ground_movement": [0.1, 0.2, 0.4, 1.0]}
    f = feats(ts, values, ts[-1], flood_stage=2.5)
    assert f["soil_moisture_rate"] == pytest.approx((0.35 - 0.25) / 3)
    assert f["water_level_rate"] == pytest.approx(0.5)
    assert f["ground_movement_velocity"] == 1.0
    assert f["ground_movement_acceleration"] == pytest.approx(0.3)
    assert f["hours_since_previous"] == 2.0
    assert f["flood_stage"] == 2.5
    assert f["water_level_above_flood_stage"] == 0.5


def test_readings_older_than_72h_are_ignored():
    ts = T0 + np.array([0.0, 72.0]) * H      # first reading exactly at t-72h: outside (t-72h, t]
    values = {"rainfall": [50.0, 1.0], "soil_moisture": [0.1, 0.3]}
    f = feats(ts, values, ts[-1])
    assert f["rain_72h"] == 1.0
    assert f["soil_moisture_rate"] is None
    assert f["hours_since_previous"] is None
    assert f["rain_72h_excl_24h"] is None


def test_target_without_reading_in_window_is_all_nan():
    ts = T0 + np.array([0.0]) * H
    f = feats(ts, {"rainfall": [1.0]}, T0 + 100 * H)
    assert all(v is None for v in f.values())


def _random_history(seed, n=300):
    rng = np.random.default_rng(seed)
    ts = T0 + np.cumsum(rng.choice([600.0, 1800.0, 3600.0, 3600.0, 7200.0, 30000.0], n))
    values = {k: rng.random(n) for k in ("rainfall", "soil_moisture", "ground_movement", "water_level")}
    for v in values.values():
        v[rng.random(n) < 0.1] = np.nan
    return ts, values


def test_late_reading_gives_same_features_as_in_order():
    ts, values = _random_history(1)
    # Consumer view: the late reading (index 150) arrives after the others were
    # stored; once stored, features at every target equal the in-order ones.
    full = compute_features(ts, values, ts)
    arrival = np.r_[np.delete(np.arange(len(ts)), 150), 150]
    stored = np.sort(arrival)          # what the database returns, ordered by timestamp
    late = compute_features(ts[stored], {k: v[stored] for k, v in values.items()}, ts)
    np.testing.assert_array_equal(full, late)


def test_out_of_order_readings_give_same_features_as_in_order():
    ts, values = _random_history(2)
    perm = np.random.default_rng(3).permutation(len(ts))
    grouped = compute_features_grouped(np.zeros(len(ts), int), ts[perm],
                                       {k: v[perm] for k, v in values.items()},
                                       np.zeros(len(ts), int), ts[perm])
    np.testing.assert_array_equal(grouped, compute_features(ts, values, ts[perm]))


def test_features_depend_only_on_the_72h_window():
    ts, values = _random_history(4)
    target = ts[200]
    keep = (ts > target - 72 * H) & (ts <= target)
    full = compute_features(ts, values, np.array([target]))
    window_only = compute_features(ts[keep], {k: v[keep] for k, v in values.items()}, np.array([target]))
    np.testing.assert_array_equal(full, window_only)


def test_grouped_features_equal_per_sensor_features():
    (ts_a, va), (ts_b, vb) = _random_history(5), _random_history(6)
    ts_b = ts_b.copy()
    ts_b[:] = ts_b - ts_b[0] + ts_a[10]   # overlapping in time with sensor a
    groups = np.r_[np.full(len(ts_a), 7), np.full(len(ts_b), 3)]
    ts = np.r_[ts_a, ts_b]
    values = {k: np.r_[va[k], vb[k]] for k in va}
    got = compute_features_grouped(groups, ts, values, groups, ts,
                                   flood_stage=np.where(groups == 7, 2.0, 3.0))
    np.testing.assert_array_equal(got[:len(ts_a)], compute_features(ts_a, va, ts_a, flood_stage=2.0))
    np.testing.assert_array_equal(got[len(ts_a):], compute_features(ts_b, vb, ts_b, flood_stage=3.0))


def test_unsorted_history_is_rejected():
    with pytest.raises(ValueError, match="sorted"):
        compute_features(np.array([2.0, 1.0]), {}, np.array([2.0]))


def test_features_from_measurements_defaults_to_nan_and_derives_identities():
    row = features_from_measurements({"rainfall": 12.5, "ground_movement": 3.0, "water_level": 4.0,
                                      "flood_stage": 3.5, "rain_72h": 120.0})
    assert row.shape == (1, len(FEATURE_NAMES)) and row.dtype == np.float32
    d = features_to_dict(row[0])
    assert d["rain_1h"] == 12.5 and d["rain_72h"] == 120.0
    assert d["ground_movement_velocity"] == 3.0
    assert d["water_level_above_flood_stage"] == 0.5
    assert d["soil_moisture"] is None and d["rain_24h"] is None


@pytest.mark.parametrize("payload, message", [
    ({"rainfal": 1.0}, "unknown"),
    ({"rainfall": "1"}, "number"),
    ({"rainfall": True}, "number"),
    ({"soil_moisture": 1.5}, "within"),
    ({"water_level": math.inf}, "finite"),
])
def test_features_from_measurements_rejects_bad_input(payload, message):
    with pytest.raises(ValueError, match=message):
        features_from_measurements(payload)


def test_features_to_dict_maps_nan_to_none_with_float32_precision():
    row = np.full(len(FEATURE_NAMES), np.nan, dtype=np.float32)
    row[0] = 0.1
    d = features_to_dict(row)
    assert list(d) == list(FEATURE_NAMES)
    assert d["rainfall"] == 0.1 and d["soil_moisture"] is None
