"""Alert rules and lifecycle: raise, escalate, clear with hysteresis, acknowledge, resolve.

Rules (one evaluation per new reading, per sensor in timestamp order):

* Model: a landslide or flood risk of "medium" or "high" (the predictions
  stage applied RISK_MEDIUM / RISK_HIGH) triggers that hazard at that level.
* Thresholds, from each sensor's admin-set limits; a value strictly above the
  limit triggers:

  ===================  ==============================  =======================  ====================
  measurement          hazard                          high when                clear at or below
  ===================  ==============================  =======================  ====================
  water_level          flood                           >= flood stage + 1.0 m   flood stage - 0.25 m
  rainfall             by sensor kind (see below)      >= 1.5 x limit           0.9 x limit
  ground_movement      landslide                       >= 2 x limit             0.9 x limit
  soil_moisture        landslide                       >= 1.5 x limit           0.9 x limit
  ===================  ==============================  =======================  ====================

  Water level margins are in metres because stages are measured from an
  arbitrary gauge datum (a ratio of a stage near zero means nothing).
  Rainfall feeds both hazards, so its limit maps by what the sensor watches:
  river gauges -> flood, slope instruments (extensometer, soil-moisture probe)
  -> landslide, rain gauges and multi-parameter stations -> both.
  The same mapping decides which *model* verdicts can raise alerts: a river
  gauge observes none of a landslide's drivers, so the landslide model scores
  it from an almost empty feature row — exactly where a model is least
  trustworthy — and an alert from it would be crying wolf.

* Model and threshold triggers of one hazard merge into one alert whose level
  is the highest trigger. At most one active (open/acknowledged) alert exists
  per (sensor, hazard); a new trigger updates it: a higher level escalates it
  (an "escalated" event; an acknowledged alert re-opens, since the higher
  level needs a fresh acknowledgement); the same level only moves
  ``last_triggered_at`` and restarts the clear count (no event: a storm of
  readings must not become a storm of events).
* Hysteresis: a reading is *calm* for a hazard when its model probability is
  below ALERT_CLEAR_LEVEL and every threshold value it carries is at or
  below its clear point. An active alert resolves automatically after
  ALERT_CLEAR_READINGS consecutive calm readings, or once calm readings have
  lasted ALERT_CLEAR_MINUTES of reading time, whichever comes first. A
  reading in the dead band (neither triggering nor calm) raises nothing and
  resets nothing. Only readings newer than the alert's last trigger count
  towards clearing, so late, out-of-order readings cannot clear it early.
* Sensors in maintenance (status, or ``maintenance_until`` in the future) and
  retired sensors raise, escalate and clear nothing: technicians at work
  produce readings nobody should act on. Their readings are still stored.
* No data: an active sensor silent for STALE_SENSOR_MINUTES raises a
  "no_data" alert (medium); any new reading from it resolves that alert.

Every change writes an AlertEvent in the same transaction; events are the
outbox for the ``alerts`` topic. Every change also invalidates the cached
alert lists on commit.
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from sensors.models import Sensor
from sensors.records import UNIX_EPOCH, ScoredReading
from warning_system.db import binary_cursor, bulk_create_binary

from . import outbox
from .cache import alerts_generation_bump_on_commit
from .models import LEVEL_RANK, Alert, AlertEvent, Hazard, Level

if TYPE_CHECKING:
    from predictions.services import ScoredBatch

logger = logging.getLogger(__name__)

LANDSLIDE, FLOOD, NO_DATA = Hazard.LANDSLIDE.value, Hazard.FLOOD.value, Hazard.NO_DATA.value
MEDIUM, HIGH = Level.MEDIUM.value, Level.HIGH.value
OPEN, ACKNOWLEDGED, RESOLVED = Alert.Status.OPEN.value, Alert.Status.ACKNOWLEDGED.value, Alert.Status.RESOLVED.value
_RANK = {MEDIUM: LEVEL_RANK[Level.MEDIUM], HIGH: LEVEL_RANK[Level.HIGH]}
_MODEL_TRIGGER_RISKS = frozenset((MEDIUM, HIGH))

DATA_RECEIVED = "data received"
CLEARED_READINGS = "below clear level for {n} consecutive readings"
CLEARED_MINUTES = "below clear level for {n} minutes"

# Which hazards a sensor kind can speak to: for rainfall limits and model verdicts alike.
_HAZARDS_BY_KIND = {
    Sensor.Kind.RIVER_GAUGE.value: (FLOOD,),
    Sensor.Kind.EXTENSOMETER.value: (LANDSLIDE,),
    Sensor.Kind.SOIL_MOISTURE.value: (LANDSLIDE,),
    Sensor.Kind.RAIN_GAUGE.value: (LANDSLIDE, FLOOD),
    Sensor.Kind.MULTI.value: (LANDSLIDE, FLOOD),
}


class InvalidTransition(Exception):
    """The requested status change is not allowed from the alert's current status."""


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    measurement: str
    limit_field: str
    label: str
    unit: str
    limit_label: str
    high_ratio: float | None = None  # high at >= limit * ratio ...
    high_margin: float | None = None  # ... or at >= limit + margin
    clear_ratio: float | None = None  # clear at <= limit * ratio ...
    clear_margin: float | None = None  # ... or at <= limit - margin

    def high_at(self, limit: float) -> float:
        return limit + self.high_margin if self.high_margin is not None else limit * self.high_ratio

    def clear_at(self, limit: float) -> float:
        return limit - self.clear_margin if self.clear_margin is not None else limit * self.clear_ratio


WATER_LEVEL = ThresholdRule("water_level", "flood_stage_m", "water level", "m", "flood stage", high_margin=1.0, clear_margin=0.25)
RAINFALL = ThresholdRule("rainfall", "rainfall_limit_mm_h", "rainfall", "mm/h", "limit", high_ratio=1.5, clear_ratio=0.9)
GROUND_MOVEMENT = ThresholdRule("ground_movement", "ground_movement_limit_mm_h", "ground movement", "mm/h", "limit", high_ratio=2.0, clear_ratio=0.9)
SOIL_MOISTURE = ThresholdRule("soil_moisture", "soil_moisture_limit", "soil moisture", "", "limit", high_ratio=1.5, clear_ratio=0.9)
# The sensor field holding the limit each measurement is compared with.
_LIMIT_FIELDS = {rule.measurement: rule.limit_field for rule in (WATER_LEVEL, RAINFALL, GROUND_MOVEMENT, SOIL_MOISTURE)}


@dataclass(frozen=True, slots=True)
class _SensorRules:
    """A sensor's state as the rules see it: loaded once per batch."""

    pk: int
    code: str
    suppressed: bool
    rules: dict[str, tuple[tuple[ThresholdRule, float], ...]]  # hazard -> (rule, limit) pairs
    model_hazards: frozenset[str]  # hazards whose model verdict may raise an alert here
    limits: dict[str, float]  # limit field -> value, NaN when unset (for array pre-filtering)


@dataclass(slots=True)
class _Trigger:
    level: str
    source: str
    probability: float
    model_version: str
    value: float | None
    threshold: float | None
    reason: str  # what tripped, for the message


def _sensor_rules(sensor: Sensor, now: datetime) -> _SensorRules:
    suppressed = (
        sensor.status != Sensor.Status.ACTIVE
        or (sensor.maintenance_until is not None and sensor.maintenance_until > now)
    )
    rules: dict[str, list[tuple[ThresholdRule, float]]] = {LANDSLIDE: [], FLOOD: []}
    if sensor.flood_stage_m is not None:
        rules[FLOOD].append((WATER_LEVEL, sensor.flood_stage_m))
    if sensor.rainfall_limit_mm_h is not None:
        for hazard in _HAZARDS_BY_KIND.get(sensor.kind, (LANDSLIDE, FLOOD)):
            rules[hazard].append((RAINFALL, sensor.rainfall_limit_mm_h))
    if sensor.ground_movement_limit_mm_h is not None:
        rules[LANDSLIDE].append((GROUND_MOVEMENT, sensor.ground_movement_limit_mm_h))
    if sensor.soil_moisture_limit is not None:
        rules[LANDSLIDE].append((SOIL_MOISTURE, sensor.soil_moisture_limit))
    return _SensorRules(
        sensor.pk, sensor.sensor_id, suppressed, {h: tuple(r) for h, r in rules.items()},
        frozenset(_HAZARDS_BY_KIND.get(sensor.kind, (LANDSLIDE, FLOOD))),
        {f: math.nan if (v := getattr(sensor, f)) is None else v for f in _LIMIT_FIELDS.values()},
    )


def _fmt(value: float, unit: str) -> str:
    return f"{value:g} {unit}".rstrip()


@dataclass(frozen=True, slots=True)
class _Policy:
    """The hysteresis settings, read once per batch (``settings`` lookups are not free on a per-reading path)."""

    clear_level: float
    clear_readings: int
    clear_minutes: float
    clear_after: timedelta

    @classmethod
    def current(cls) -> _Policy:
        minutes = settings.ALERT_CLEAR_MINUTES
        return cls(settings.ALERT_CLEAR_LEVEL, settings.ALERT_CLEAR_READINGS, minutes, timedelta(minutes=minutes))


def _evaluate(s: ScoredReading, hazard: str, rules, use_model: bool, clear_level: float) -> tuple[_Trigger | None, bool]:
    """(strongest trigger or None, calm?) for one hazard on one reading."""
    if hazard == LANDSLIDE:
        p, risk, version = s.landslide_probability, s.landslide_risk, s.landslide_model_version
    else:
        p, risk, version = s.flood_probability, s.flood_risk, s.flood_model_version
    trigger = None
    if use_model and risk in _MODEL_TRIGGER_RISKS:
        trigger = _Trigger(risk, Alert.Source.MODEL, p, version, None, None, "model")
    calm = p < clear_level or not use_model
    reading = s.reading
    for rule, limit in rules:
        value = getattr(reading, rule.measurement)
        if value is None:
            continue
        if value > limit:
            level = HIGH if value >= rule.high_at(limit) else MEDIUM
            if trigger is None or _RANK[level] > _RANK[trigger.level]:
                reason = f"{rule.label} {_fmt(value, rule.unit)} above {rule.limit_label} {_fmt(limit, rule.unit)}"
                trigger = _Trigger(level, Alert.Source.THRESHOLD, p, version, value, limit, reason)
            calm = False
        elif value > rule.clear_at(limit):
            calm = False
    return trigger, calm


def _context(s: ScoredReading) -> str:
    r = s.reading
    parts = []
    if r.water_level is not None:
        parts.append(f"water level {r.water_level:g} m")
    if r.rainfall is not None:
        parts.append(f"rain {r.rainfall:g} mm/h")
    rain_72h = s.features.get("rain_72h") if s.features else None
    if rain_72h is not None:
        parts.append(f"72 h rain {rain_72h:g} mm")
    if r.soil_moisture is not None:
        parts.append(f"soil moisture {r.soil_moisture:g}")
    if r.ground_movement is not None:
        parts.append(f"ground movement {r.ground_movement:g} mm/h")
    return ", ".join(parts)


def _message(hazard: str, trigger: _Trigger, code: str, s: ScoredReading) -> str:
    head = f"{hazard.capitalize()} risk {trigger.level} (p={trigger.probability:.2f}) at {code}"
    detail = _context(s) if trigger.source == Alert.Source.MODEL else f"{trigger.reason}; {_context(s)}"
    return f"{head}: {detail}" if detail else head


def _clean_features(features: dict | None) -> dict:
    """JSON-safe snapshot: PostgreSQL's jsonb rejects NaN and Infinity."""
    return {k: (v if v is None or math.isfinite(v) else None) for k, v in (features or {}).items()}


def _event(alert: Alert, kind: str, *, actor: str = "", note: str = "", payload: dict | None = None) -> AlertEvent:
    return AlertEvent(
        alert=alert, kind=kind, actor=actor, note=note, level=alert.level, status=alert.status,
        probability=alert.probability, payload=payload or {},
    )


class _BatchState:
    """Alerts touched by one batch: loaded active ones, new ones, and the events to write."""

    def __init__(self, active: dict[tuple[int, str], Alert]):
        self.active = active
        self.changed: dict[int, Alert] = {}  # existing alerts to UPDATE, by pk
        self.created: list[Alert] = []
        self.events: list[AlertEvent] = []

    def touch(self, alert: Alert) -> None:
        if alert.pk is not None:
            self.changed[alert.pk] = alert

    def resolve(self, alert: Alert, *, at: datetime, reason: str) -> None:
        alert.status = RESOLVED
        alert.resolved_at = at
        alert.resolved_by = ""
        alert.resolution_reason = reason
        self.touch(alert)
        self.events.append(_event(alert, AlertEvent.Kind.RESOLVED, payload={"reason": reason}))
        del self.active[(alert.sensor_id, alert.hazard)]


def _apply(state: _BatchState, sensor: _SensorRules, hazard: str, s: ScoredReading, trigger, calm: bool, now: datetime, policy: _Policy) -> None:
    key = (sensor.pk, hazard)
    alert = state.active.get(key)
    ts = s.reading.timestamp
    if trigger is not None:
        if alert is None:
            alert = Alert(
                sensor_id=sensor.pk, hazard=hazard, level=trigger.level, source=trigger.source, status=OPEN,
                probability=trigger.probability, peak_probability=trigger.probability,
                value=trigger.value, threshold=trigger.threshold, message=_message(hazard, trigger, sensor.code, s),
                triggered_at=ts, last_triggered_at=ts, model_version=trigger.model_version,
                features=_clean_features(s.features),
            )
            state.active[key] = alert
            state.created.append(alert)
            state.events.append(_event(alert, AlertEvent.Kind.RAISED))
            return
        _refresh(alert, trigger.probability, ts)
        if _RANK[trigger.level] > _RANK[alert.level]:
            previous = alert.level
            alert.level, alert.source = trigger.level, trigger.source
            alert.probability, alert.model_version = trigger.probability, trigger.model_version
            alert.value, alert.threshold = trigger.value, trigger.threshold
            alert.features = _clean_features(s.features)
            alert.message = _message(hazard, trigger, sensor.code, s)
            if alert.status == ACKNOWLEDGED:
                alert.status, alert.acknowledged_at, alert.acknowledged_by = OPEN, None, ""
            state.events.append(_event(alert, AlertEvent.Kind.ESCALATED, payload={"from_level": previous}))
        state.touch(alert)
        return
    if calm:
        _apply_calm(state, key, ts, now, policy)


def _refresh(alert: Alert, probability: float, ts: datetime) -> None:
    """A trigger for an active alert: it stays up, and the clear count starts again."""
    alert.peak_probability = max(alert.peak_probability or 0.0, probability)
    alert.last_triggered_at = max(alert.last_triggered_at, ts)
    alert.clear_streak = 0
    alert.below_since = None


def _apply_calm(state: _BatchState, key: tuple[int, str], ts: datetime, now: datetime, policy: _Policy) -> None:
    """A calm reading (no trigger) for ``key``: counts towards clearing its active alert, if any."""
    alert = state.active.get(key)
    if alert is None or ts <= alert.last_triggered_at:
        return  # nothing active, or a late reading: no change
    alert.clear_streak += 1
    if alert.below_since is None:
        alert.below_since = ts
    state.touch(alert)
    if alert.clear_streak >= policy.clear_readings:
        state.resolve(alert, at=now, reason=CLEARED_READINGS.format(n=alert.clear_streak))
    elif ts - alert.below_since >= policy.clear_after:
        state.resolve(alert, at=now, reason=CLEARED_MINUTES.format(n=policy.clear_minutes))


# Columns the rules change, with their PostgreSQL types for the VALUES list below.
_UPDATE_COLUMNS = {
    "level": "varchar", "source": "varchar", "status": "varchar", "probability": "float8",
    "peak_probability": "float8", "value": "float8", "threshold": "float8", "message": "text",
    "last_triggered_at": "timestamptz", "model_version": "varchar", "features": "jsonb",
    "clear_streak": "integer", "below_since": "timestamptz", "updated_at": "timestamptz",
    "acknowledged_at": "timestamptz", "acknowledged_by": "varchar", "resolved_at": "timestamptz",
    "resolved_by": "varchar", "resolution_reason": "varchar",
}
def _bulk_update(alerts: list[Alert]) -> None:
    """Write changed alerts in one ``UPDATE .. FROM unnest(arrays)`` statement.

    Django's bulk_update builds a CASE per column with a WHEN per row, which
    PostgreSQL evaluates row by row: quadratic, and seconds for a thousand
    alerts in a storm. One array per column keeps the statement and its
    parameter count constant, whatever the number of rows. Other databases
    (the embedded SQLite default) use bulk_update.
    """
    if connection.vendor != "postgresql":
        Alert.objects.bulk_update(alerts, list(_UPDATE_COLUMNS))
        return
    quote = connection.ops.quote_name
    names = list(_UPDATE_COLUMNS)
    assign = ", ".join(
        f"{quote(c)} = v.{quote(c)}" + ("::jsonb" if c == "features" else "") for c in names
    )
    arrays = ", ".join(["%b::bigint[]", *(f"%b::{'text' if t == 'jsonb' else t}[]" for t in _UPDATE_COLUMNS.values())])
    columns = ", ".join(["id", *(quote(c) for c in names)])
    params = [[a.pk for a in alerts]]
    for c in names:
        if c == "features":
            params.append([json.dumps(a.features) for a in alerts])
        else:
            params.append([getattr(a, c) for a in alerts])
    # Binary arrays (as in warning_system.db.bulk_create_binary): no per-element quoting.
    with connection.wrap_database_errors, binary_cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(Alert._meta.db_table)} AS a SET {assign} FROM unnest({arrays}) AS v({columns}) WHERE a.id = v.id",
            params,
            binary=True,
        )


def alerts_evaluate_scored(*, scored: Sequence[ScoredReading]) -> int:
    """Apply the rules to a list of scored readings; returns the number of alert events written.

    The list form of ``alerts_evaluate_batch`` (hand-built readings, tools):
    every reading goes through the rules.
    """
    if not scored:
        return 0
    by_sensor: dict[int, list[ScoredReading]] = {}
    for s in scored:
        by_sensor.setdefault(s.reading.sensor_pk, []).append(s)

    def run(state: _BatchState, sensors: dict[int, _SensorRules], now: datetime, policy: _Policy) -> None:
        for sensor_pk, readings in by_sensor.items():
            sensor = sensors[sensor_pk]
            if sensor.suppressed:
                continue
            readings.sort(key=lambda s: s.reading.timestamp)
            for s in readings:
                for hazard in (LANDSLIDE, FLOOD):
                    trigger, calm = _evaluate(s, hazard, sensor.rules[hazard], hazard in sensor.model_hazards, policy.clear_level)
                    _apply(state, sensor, hazard, s, trigger, calm, now, policy)

    return _evaluate_sensors(sensor_pks=list(by_sensor), readings=len(scored), run=run)


def alerts_evaluate_batch(*, batch: ScoredBatch, loaded: AlertsLoaded | None = None) -> int:
    """Apply the rules to the pipeline's scored batch; returns the number of alert events written.

    Same decisions as ``alerts_evaluate_scored``, reading by reading in
    timestamp order per sensor, but the per-reading verdicts of ``_evaluate``
    (trigger level, calm) are computed with array comparisons, and Python
    only walks the readings of sensors that have an active alert or a
    trigger in the batch:

    - no trigger and not calm (the dead band): nothing;
    - calm: counts towards clearing the active alert, if any;
    - a trigger at or below the active alert's level (a storm goes on):
      the alert is refreshed, as ``_apply`` does;
    - a trigger with no active alert, or above its level: the full rules
      (``_evaluate``/``_apply``), which word the message and keep the snapshot;
    - readings of suppressed sensors are skipped, as in the rules.

    On the benchmark's storm-heavy data (most readings trigger) the stage
    went from 26-32 to 15-17 µs CPU per reading (bench/bench_consumer.py,
    load ~3); on calm data almost every reading is skipped.

    ``loaded``: the batch's sensors and alerts, loaded and locked earlier in
    the transaction by ``alerts_load_batch`` (the consumer's pipeline does it
    before scoring, so that the predictions' upsert can run while Python
    applies the rules); it must cover every sensor of ``batch``.
    """
    n = len(batch)
    if not n:
        return 0
    pks, inverse = np.unique(batch.sensor_pks, return_inverse=True)
    pk_list = pks.tolist()

    def run(state: _BatchState, sensors: dict[int, _SensorRules], now: datetime, policy: _Policy) -> None:
        rules = [sensors[pk] for pk in pk_list]
        m = batch.measurements
        medium, high = batch.risk_cutoffs
        probability = {LANDSLIDE: batch.landslide_probability, FLOOD: batch.flood_probability}
        # Per hazard and reading, what _evaluate would decide: the trigger
        # level (0 none, else _RANK) and whether the reading is calm.
        # NaN (a missing value, or no limit set) compares False: no trigger, no unrest.
        level, calm = {}, {}
        with np.errstate(invalid="ignore"):
            for hazard in (LANDSLIDE, FLOOD):
                p = probability[hazard]
                use_model = np.array([hazard in r.model_hazards for r in rules])[inverse]
                lvl = np.where(use_model, np.where(p > high, _RANK[HIGH], np.where(p > medium, _RANK[MEDIUM], 0)), 0)
                quiet = (p < policy.clear_level) | ~use_model
                for measurement in _LIMIT_FIELDS:
                    limit, high_at, clear_at = (np.full(len(rules), np.nan) for _ in range(3))
                    for k, r in enumerate(rules):
                        for rule, value in r.rules[hazard]:
                            if rule.measurement == measurement:
                                limit[k], high_at[k], clear_at[k] = value, rule.high_at(value), rule.clear_at(value)
                    v = m[measurement]
                    over = v > limit[inverse]
                    lvl = np.maximum(lvl, np.where(over, np.where(v >= high_at[inverse], _RANK[HIGH], _RANK[MEDIUM]), 0))
                    quiet &= ~(over | (v > clear_at[inverse]))
                level[hazard], calm[hazard] = lvl, quiet
        suppressed = np.array([r.suppressed for r in rules])[inverse]
        # Sensors with an active alert, or one a reading of this batch may raise:
        # only their readings can change anything.
        watched = np.zeros(len(rules), dtype=bool)
        watched[inverse[(level[LANDSLIDE] > 0) | (level[FLOOD] > 0)]] = True
        for sensor_pk, hazard in state.active:
            if hazard != NO_DATA:
                watched[np.searchsorted(pks, sensor_pk)] = True
        rows = np.flatnonzero(~suppressed & watched[inverse])
        rows = rows[np.lexsort((batch.us[rows], inverse[rows]))]  # each sensor's readings in timestamp order
        verdicts = {h: (level[h].tolist(), calm[h].tolist(), probability[h].tolist()) for h in (LANDSLIDE, FLOOD)}
        # The timestamp from the µs column, not from batch.stored[i]: on the overlapped
        # path that builds a whole StoredReading per row, and in a storm nearly every
        # row is watched (~3 µs of CPU per reading, bench/bench_consumer.py --profile).
        sensor_of, us = inverse.tolist(), batch.us.tolist()
        for i in rows.tolist():
            sensor = rules[sensor_of[i]]
            ts = UNIX_EPOCH + timedelta(microseconds=us[i])
            s = None
            for hazard in (LANDSLIDE, FLOOD):
                levels, calms, ps = verdicts[hazard]
                key = (sensor.pk, hazard)
                if levels[i]:
                    alert = state.active.get(key)
                    if alert is not None and levels[i] <= _RANK[alert.level]:
                        # The storm case: an alert already up at this level or above.
                        _refresh(alert, ps[i], ts)
                        state.touch(alert)
                        continue
                    # A new alert or an escalation: the full rules, for the message and the snapshot.
                    s = s or batch.scored(i)
                    trigger, is_calm = _evaluate(s, hazard, sensor.rules[hazard], hazard in sensor.model_hazards, policy.clear_level)
                    _apply(state, sensor, hazard, s, trigger, is_calm, now, policy)
                elif calms[i]:
                    _apply_calm(state, key, ts, now, policy)

    return _evaluate_sensors(sensor_pks=pk_list, readings=n, run=run, loaded=loaded)


@dataclass(frozen=True, slots=True)
class AlertsLoaded:
    """Some sensors' alert rules and active alerts, locked until the transaction ends (``alerts_load_batch``)."""

    sensors: dict[int, _SensorRules]
    active: dict[tuple[int, str], Alert]
    now: datetime
    policy: _Policy


def alerts_load_batch(*, sensor_pks: list[int]) -> AlertsLoaded:
    """Lock the sensors and load their rules and active alerts, for ``alerts_evaluate_batch`` later in the transaction.

    Two queries: the sensors, locked FOR NO KEY UPDATE in pk order, so the
    stale check and a rebalanced consumer serialise with us per sensor (not
    FOR UPDATE, which would deadlock two batches that both hold the lookup's
    FOR KEY SHARE, see ``sensors.pipeline.batch_sensors_lock``); and their
    active alerts, locked, so acknowledge/resolve serialise with us.
    """
    now = timezone.now()
    sensors = {
        sensor.pk: _sensor_rules(sensor, now)
        for sensor in Sensor.objects.select_for_update(no_key=True, of=("self",)).filter(pk__in=sensor_pks).order_by("pk")
    }
    active = {
        (a.sensor_id, a.hazard): a
        for a in Alert.objects.select_for_update().filter(sensor_id__in=sensor_pks, status__in=Alert.ACTIVE_STATUSES)
    }
    return AlertsLoaded(sensors, active, now, _Policy.current())


def _evaluate_sensors(*, sensor_pks: list[int], readings: int, run, loaded: AlertsLoaded | None = None) -> int:
    """Lock the batch's sensors, load their active alerts, let ``run`` apply the rules, write the changes.

    Runs inside the pipeline's batch transaction; ``alerts_load_batch`` does
    the loading and locking unless the caller did (``loaded``, which may
    cover more sensors than ``sensor_pks``: only theirs are used).
    Decisions are made in Python; only changed alerts are written, in bulk.
    Existing alerts are updated before new ones are inserted, because an
    alert resolved in this batch must leave the (sensor, hazard) slot free
    for one raised later in it. Any reading from a sensor resolves its
    "no data" alert, selected or not.
    """
    if loaded is None:
        loaded = alerts_load_batch(sensor_pks=sensor_pks)
    wanted = set(sensor_pks)
    sensors, now, policy = loaded.sensors, loaded.now, loaded.policy
    active = {key: alert for key, alert in loaded.active.items() if key[0] in wanted}
    state = _BatchState(active)
    for sensor_pk in sensor_pks:
        stale = state.active.get((sensor_pk, NO_DATA))
        if stale is not None:
            state.resolve(stale, at=now, reason=DATA_RECEIVED)
    run(state, sensors, now, policy)
    if state.changed:
        for alert in state.changed.values():
            alert.updated_at = now
        _bulk_update(list(state.changed.values()))
    if state.created:
        bulk_create_binary(Alert, state.created)
    if state.events:
        bulk_create_binary(AlertEvent, state.events)
    if state.changed or state.created:
        alerts_generation_bump_on_commit()
    if state.events:
        logger.info(
            "alerts.batch_evaluated",
            extra={"readings": readings, "raised": len(state.created), "events": len(state.events)},
        )
    return len(state.events)


def _stale_message(sensor: Sensor, since: datetime, now: datetime) -> str:
    minutes = int((now - since).total_seconds() // 60)
    seen = "last seen" if sensor.last_seen_at else "never reported; registered"
    return f"No data from {sensor.sensor_id} for {minutes} min ({seen} {since:%Y-%m-%d %H:%M} UTC)"


@transaction.atomic
def alerts_raise_stale(*, now: datetime | None = None) -> int:
    """Raise a "no_data" alert for each active sensor silent longer than STALE_SENSOR_MINUTES.

    A sensor never heard from counts from its installation (or registration).
    Sensors already carrying an active no_data alert are skipped, so calling
    this every minute raises each outage once. Sensor rows a consumer is
    writing (locked) are skipped: data is arriving for them right now.
    Returns the number of alerts raised.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(minutes=settings.STALE_SENSOR_MINUTES)
    has_alert = Alert.objects.filter(sensor=OuterRef("pk"), hazard=NO_DATA, status__in=Alert.ACTIVE_STATUSES)
    candidates = (
        Sensor.objects.filter(status=Sensor.Status.ACTIVE)
        .filter(Q(maintenance_until__isnull=True) | Q(maintenance_until__lte=now))
        .annotate(seen=Coalesce("last_seen_at", "installed_at", "created_at"))
        .filter(seen__lt=cutoff)
        .exclude(Exists(has_alert))
        .select_for_update(of=("self",), skip_locked=True)
        .order_by("pk")
    )
    alerts, events = [], []
    for sensor in candidates:
        alert = Alert(
            sensor=sensor, hazard=NO_DATA, level=MEDIUM, source=Alert.Source.STALE, status=OPEN,
            message=_stale_message(sensor, sensor.seen, now), triggered_at=now, last_triggered_at=now,
            features={"last_seen_at": sensor.last_seen_at.isoformat() if sensor.last_seen_at else None},
        )
        alerts.append(alert)
        events.append(_event(alert, AlertEvent.Kind.RAISED))
    if alerts:
        Alert.objects.bulk_create(alerts)
        AlertEvent.objects.bulk_create(events)
        alerts_generation_bump_on_commit()
        logger.warning("alerts.stale_sensors", extra={"count": len(alerts), "sensors": [a.sensor.sensor_id for a in alerts]})
    return len(alerts)


def alert_events_publish_after_commit() -> None:
    """Ask the outbox to publish changes now rather than on the consumer's next sweep (people are waiting)."""
    transaction.on_commit(outbox.publish_pending_now)


def _locked(alert: Alert) -> Alert:
    return Alert.objects.select_for_update(of=("self",)).select_related("sensor").get(pk=alert.pk)


@transaction.atomic
def alert_acknowledge(*, alert: Alert, actor: str, note: str = "") -> Alert:
    """Record that a person has seen an open alert and is acting on it."""
    alert = _locked(alert)
    if alert.status != OPEN:
        raise InvalidTransition(f"alert {alert.pk} is {alert.status}; only open alerts can be acknowledged")
    now = timezone.now()
    alert.status, alert.acknowledged_at, alert.acknowledged_by = ACKNOWLEDGED, now, actor
    if note:
        alert.note = note
    alert.save(update_fields=["status", "acknowledged_at", "acknowledged_by", "note", "updated_at"])
    _event(alert, AlertEvent.Kind.ACKNOWLEDGED, actor=actor, note=note).save()
    alerts_generation_bump_on_commit()
    alert_events_publish_after_commit()
    logger.info("alerts.acknowledged", extra={"alert_id": alert.pk, "actor": actor})
    return alert


@transaction.atomic
def alert_resolve(*, alert: Alert, actor: str, note: str = "") -> Alert:
    """Close an open or acknowledged alert by hand; the rules may raise a new one if the hazard persists."""
    alert = _locked(alert)
    if alert.status == RESOLVED:
        raise InvalidTransition(f"alert {alert.pk} is already resolved")
    alert.status, alert.resolved_at, alert.resolved_by = RESOLVED, timezone.now(), actor
    alert.resolution_reason = "resolved manually"
    if note:
        alert.note = note
    alert.save(update_fields=["status", "resolved_at", "resolved_by", "resolution_reason", "note", "updated_at"])
    _event(alert, AlertEvent.Kind.RESOLVED, actor=actor, note=note).save()
    alerts_generation_bump_on_commit()
    alert_events_publish_after_commit()
    logger.info("alerts.resolved", extra={"alert_id": alert.pk, "actor": actor})
    return alert

