"""The consumer's fast paths decide exactly what the plain paths decide.

Three places trade Python objects for array work on the consumer's hot
path: message decoding (``sensors.messages``), alert evaluation of a scored
batch (``alerts.services.alerts_evaluate_batch``) and the stored feature
snapshot (``predictions.services``). Each is checked against the plain
implementation on randomised input, so a divergence fails here rather than
as a missed or spurious alert.
"""
from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest
from django.conf import settings

from alerts.models import Alert, AlertEvent
from alerts.services import alerts_evaluate_batch, alerts_evaluate_scored
from predictions.features import FEATURE_NAMES
from predictions.models import Prediction
from predictions.services import ScoredBatch
from sensors.messages import InvalidMessage, _decode_checked, decode_reading, encode_reading
from sensors.pipeline import process_readings
from sensors.records import MEASUREMENTS, ReadingIn, ScoredReading, StoredReading

T0 = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
VERSIONS = {"landslide": "landslide-test-1", "flood": "flood-test-1"}


# -- decoding ------------------------------------------------------------------------

def _outcome(decode, value):
    try:
        return "ok", decode(value)
    except InvalidMessage as exc:
        return "invalid", str(exc)


def test_fast_decode_accepts_and_rejects_exactly_what_the_validator_does():
    _, base = encode_reading(ReadingIn("RG-1", T0, T0, rainfall=12.5, soil_moisture=0.3, water_level=1.5))
    template = orjson.loads(base)
    values = [None, 0, 1, -1, 0.5, 1.5, 500, 500.0, 500.1, -50, -50.1, 100, 1000, 1000.1, True, False, "1", [], {}]
    times = ["2026-01-01T00:00:00", "2026-01-01T00:00:00+02:00", "bad", 5, None, "2026-01-01", "2026-01-01T00:00:00Z"]
    rng = random.Random(6)
    accepted = rejected = 0
    for _ in range(5000):
        obj = dict(template)
        for name in MEASUREMENTS:
            if rng.random() < 0.5:
                obj[name] = rng.choice(values)
        roll = rng.random()
        if roll < 0.05:
            obj.pop(rng.choice(list(obj)))
        elif roll < 0.1:
            obj["extra"] = 1
        elif roll < 0.15:
            obj["v"] = rng.choice([0, 2, "1", True, 1.0, None])
        elif roll < 0.2:
            obj["sensor_id"] = rng.choice(["", " ", "x" * 64, "x" * 65, 5, None])
        elif roll < 0.3:
            obj[rng.choice(["timestamp", "received_at"])] = rng.choice(times)
        value = orjson.dumps(obj)
        fast, checked = _outcome(decode_reading, value), _outcome(_decode_checked, value)
        assert fast == checked, obj
        accepted += fast[0] == "ok"
        rejected += fast[0] == "invalid"
    for value in (None, b"", b"[]", b"nul", b"{}", b"1", b"\xff"):
        assert _outcome(decode_reading, value) == _outcome(_decode_checked, value)
    assert accepted > 500 and rejected > 500  # both sides of the contract were exercised


# -- alert evaluation --------------------------------------------------------------------

def _batch_of(scored: list[ScoredReading]) -> ScoredBatch:
    """What predictions_score_stored hands to alerting, built from hand-made scored readings."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return ScoredBatch(
        stored=[s.reading for s in scored],
        sensor_pks=np.array([s.reading.sensor_pk for s in scored], dtype=np.int64),
        us=np.array([(s.reading.timestamp - epoch) // timedelta(microseconds=1) for s in scored], dtype=np.int64),
        landslide_probability=np.array([s.landslide_probability for s in scored]),
        flood_probability=np.array([s.flood_probability for s in scored]),
        measurements={m: np.array([getattr(s.reading, m) for s in scored], dtype=np.float64) for m in MEASUREMENTS},
        features=np.array([[np.nan if (v := s.features.get(name)) is None else v for name in FEATURE_NAMES] for s in scored],
                          dtype=np.float32).reshape(len(scored), len(FEATURE_NAMES)),
        versions=VERSIONS,
        risk_cutoffs=(settings.RISK_MEDIUM, settings.RISK_HIGH),
    )


def _risk(p: float) -> str:
    return "high" if p > settings.RISK_HIGH else "medium" if p > settings.RISK_MEDIUM else "low"


_SENSORS = [  # (kind, status, limits)
    ("multi", "active", {"flood_stage_m": 4.0, "rainfall_limit_mm_h": 40, "ground_movement_limit_mm_h": 5, "soil_moisture_limit": 0.45}),
    ("river_gauge", "active", {"flood_stage_m": -2.0, "rainfall_limit_mm_h": 30}),
    ("extensometer", "active", {"ground_movement_limit_mm_h": 5}),
    ("rain_gauge", "active", {"rainfall_limit_mm_h": 20}),
    ("soil_moisture", "active", {}),
    ("multi", "maintenance", {"flood_stage_m": 4.0, "rainfall_limit_mm_h": 40}),
]
_AROUND = {  # values below clear, in the dead band, above the limit, above the high point
    "water_level": [None, 1.0, 3.9, 4.5, 5.5, -3.0, -1.9, -0.5],
    "rainfall": [None, 5.0, 19.0, 25.0, 35.0, 39.0, 45.0, 70.0],
    "ground_movement": [None, 1.0, 4.8, 6.0, 12.0],
    "soil_moisture": [None, 0.2, 0.42, 0.5, 0.7],
}
_PROBABILITIES = [0.05, 0.25, 0.35, 0.45, 0.75, 0.95]


def _alert_state(sensor) -> list[tuple]:
    fields = ("hazard", "level", "source", "status", "probability", "peak_probability", "value", "threshold",
              "message", "triggered_at", "last_triggered_at", "clear_streak", "below_since", "resolution_reason", "features",
              "acknowledged_at")
    rows = Alert.objects.filter(sensor=sensor).order_by("id").values_list(*fields)
    code = sensor.sensor_id
    return [tuple(v.replace(code, "<code>") if isinstance(v, str) else v for v in row) for row in rows]


def _event_state(sensor) -> list[tuple]:
    return list(
        AlertEvent.objects.filter(alert__sensor=sensor).order_by("id").values_list("alert__hazard", "kind", "level", "status", "probability", "payload")
    )


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batch_evaluation_raises_refreshes_escalates_and_clears_like_the_rules(make_sensor, settings, seed):
    settings.ALERT_CLEAR_READINGS = 3
    settings.ALERT_CLEAR_MINUTES = 45
    rng = random.Random(seed)
    pairs = []
    for n, (kind, status, limits) in enumerate(_SENSORS):
        twins = tuple(make_sensor(f"EQ{seed}-{side}-{n}", kind=kind, status=status, **limits) for side in "AB")
        pairs.append(twins)
    # Already active before the first batch: an acknowledged medium flood alert and a "no data" alert.
    for sensor in pairs[0]:
        Alert.objects.create(sensor=sensor, hazard="flood", level="medium", source="model", status="acknowledged",
                             probability=0.5, peak_probability=0.5, triggered_at=T0 - timedelta(hours=1),
                             last_triggered_at=T0 - timedelta(hours=1), message="x", acknowledged_at=T0)
    for sensor in pairs[3]:
        Alert.objects.create(sensor=sensor, hazard="no_data", level="medium", source="stale", status="open",
                             triggered_at=T0 - timedelta(hours=5), last_triggered_at=T0 - timedelta(hours=5), message="x")
    ids = iter(range(1, 10**6))
    minute = {n: 0 for n in range(len(pairs))}
    for _ in range(8):
        batch_a, batch_b = [], []
        for n, (a, b) in enumerate(pairs):
            if rng.random() < 0.2:
                continue
            for _ in range(rng.randint(1, 8)):
                step = rng.choice([5, 5, 5, 5, 30, -40])  # mostly in order, some late readings
                minute[n] += step
                values = {m: rng.choice(_AROUND[m]) for m in MEASUREMENTS}
                if all(v is None for v in values.values()):
                    values["rainfall"] = 1.0
                p_land, p_flood = rng.choice(_PROBABILITIES), rng.choice(_PROBABILITIES)
                features = {name: rng.choice([None, round(rng.uniform(0, 80), 3)]) for name in FEATURE_NAMES}
                for sensor, out in ((a, batch_a), (b, batch_b)):
                    reading = StoredReading(next(ids), sensor.pk, sensor.sensor_id, T0 + timedelta(minutes=minute[n]), **values)
                    out.append(ScoredReading(reading, p_land, p_flood, _risk(p_land), _risk(p_flood),
                                             VERSIONS["landslide"], VERSIONS["flood"], features))
        order = list(range(len(batch_a)))
        rng.shuffle(order)
        batch = _batch_of([batch_a[i] for i in order])
        assert alerts_evaluate_batch(batch=batch) == alerts_evaluate_scored(scored=batch_b)
        for a, b in pairs:
            assert _alert_state(a) == _alert_state(b)
            assert _event_state(a) == _event_state(b)
    kinds = set(AlertEvent.objects.values_list("kind", flat=True))
    assert {"raised", "escalated", "resolved"} <= kinds  # the walk went through the whole lifecycle


# -- the stored snapshot ----------------------------------------------------------------

@pytest.mark.django_db
def test_stored_snapshot_names_every_feature_with_its_float32_value_or_null(sensor):
    readings = [
        ReadingIn(sensor.sensor_id, T0 + timedelta(minutes=10 * i), T0, rainfall=1.0 / 3 + i, soil_moisture=None if i % 2 else 0.31)
        for i in range(6)
    ]
    process_readings(readings=readings)
    latest = Prediction.objects.filter(sensor=sensor).latest("timestamp")
    assert set(latest.features) == set(FEATURE_NAMES)
    assert latest.features["water_level"] is None  # never measured: null, not NaN or 0
    assert latest.features["soil_moisture"] is None  # the latest reading lacks it
    rain = latest.features["rainfall"]
    assert np.float32(rain) == np.float32(1.0 / 3 + 5) and not math.isnan(rain)
    assert latest.features["flood_stage"] == sensor.flood_stage_m
