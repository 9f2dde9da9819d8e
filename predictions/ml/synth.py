"""Synthetic, physically motivated station histories for training and demos.

Why synthetic: the network has no labelled history yet. The generator encodes the
published rules a hydrologist would use, so a model trained on it learns those
rules plus the sensor signals (saturation, ground-movement acceleration, river
response) that rainfall-only thresholds ignore. Every figure it produces is
deterministic for a seed. See docs/models.md for sources and limitations.

Per site (all vectorised over sites, stepped hourly):

* Rain: Poisson storm arrivals with a seasonal cycle; storm duration log-normal
  (median ~6 h); mean intensity falls with duration (I ~ k D^-0.45) as in observed
  intensity-duration envelopes; hourly amounts within a storm are gamma-distributed.
* Soil: bucket model. Infiltration = rain x (1 - runoff coefficient), the runoff
  coefficient rising with saturation; drainage above field capacity and slow
  evapotranspiration between storms.
* River: runoff feeds a linear reservoir (outflow = storage / K, K = catchment lag
  in hours) and stage follows a power-law rating curve. A site's flood stage is
  the stage of its 99.0-99.8th percentile hour (a return-period style definition).
* Landslides: possible only above the Guzzetti et al. (2008) global minimum
  intensity-duration threshold (I = 2.20 D^-0.44); the hourly failure hazard grows
  with the exceedance of Caine's (1980) threshold (I = 14.82 D^-0.39), with soil
  saturation, antecedent (72 h minus last 24 h) rain and slope angle.
* Ground movement: creep that grows exponentially with saturation, plus an
  inverse-velocity (Fukuzono 1985) acceleration before most failures, and some
  accelerations that never fail (false precursors).
* Sensors: multiplicative/additive noise, 0.2 mm tipping-bucket quantisation,
  missing hours, multi-hour outages, missing fields, absent instruments.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

logger = logging.getLogger(__name__)

HOUR = 3600
WET_MM = 0.2          # a "wet hour" for the intensity-duration rules (one tipping-bucket tip)
EVENT_DRY_GAP_H = 6   # dry hours that end a rain event
CAINE_A, CAINE_B = 14.82, -0.39        # Caine (1980): I = 14.82 D^-0.39 (mm/h, h)
GUZZETTI_A, GUZZETTI_B = 2.20, -0.44   # Guzzetti et al. (2008) global minimum threshold
DEFAULT_START = datetime(2024, 1, 1, tzinfo=timezone.utc)
#: Flood stage (m above datum) of the sensors produced by :func:`scenario_readings`.
SCENARIO_FLOOD_STAGE_M = 4.0


@dataclass(frozen=True)
class SiteParams:
    """Per-site physical constants, one array entry per site."""

    storm_rate: np.ndarray      # storms per hour (before seasonal modulation)
    season_amp: np.ndarray
    season_phase: np.ndarray
    intensity_k: np.ndarray     # mm/h scale of storm intensity
    porosity: np.ndarray
    field_capacity: np.ndarray
    soil_depth_mm: np.ndarray
    drainage: np.ndarray        # 1/h above field capacity
    runoff_c0: np.ndarray
    lag_h: np.ndarray           # linear reservoir constant K
    rating_a: np.ndarray        # stage = a * Q^0.6
    datum: np.ndarray           # m; water_level = datum + stage
    slope_deg: np.ndarray
    creep_v0: np.ndarray        # mm/h
    site_effect: np.ndarray     # unexplained site susceptibility (logit units)


@dataclass(frozen=True)
class Simulation:
    """Hourly truth and observations for ``n_sites`` x ``n_hours``."""

    start: datetime
    params: SiteParams
    rain: np.ndarray            # true mm/h
    saturation: np.ndarray      # 0..1
    stage: np.ndarray           # true m above datum (= water level)
    landslide: np.ndarray       # bool, failure in that hour
    flooding: np.ndarray        # bool, true stage above flood stage
    flood_stage: np.ndarray     # (n_sites,) m above datum
    flood_stage_known: np.ndarray  # (n_sites,) bool: is it registered with the sensor?
    ts: np.ndarray              # (n_sites, n_hours) epoch seconds of delivered readings
    present: np.ndarray         # bool: was a reading delivered that hour?
    obs: dict[str, np.ndarray]  # observed readings (NaN = missing field)

    @property
    def n_sites(self) -> int:
        return self.rain.shape[0]

    @property
    def n_hours(self) -> int:
        return self.rain.shape[1]


def draw_site_params(rng: np.random.Generator, n: int) -> SiteParams:
    """Sites spanning dry to monsoon climates, gentle to steep slopes, small to large catchments."""
    porosity = rng.uniform(0.40, 0.50, n)
    return SiteParams(
        storm_rate=rng.uniform(0.04, 0.35, n) / 24.0,
        season_amp=rng.uniform(0.0, 0.8, n),
        season_phase=rng.uniform(0.0, 2 * np.pi, n),
        intensity_k=rng.lognormal(np.log(9.0), 0.35, n),
        porosity=porosity,
        field_capacity=porosity * rng.uniform(0.55, 0.7, n),
        soil_depth_mm=rng.uniform(300.0, 900.0, n),
        drainage=rng.uniform(0.01, 0.05, n),
        runoff_c0=rng.uniform(0.05, 0.25, n),
        lag_h=rng.uniform(3.0, 30.0, n),
        rating_a=rng.uniform(0.8, 1.6, n),
        datum=rng.uniform(-20.0, 60.0, n),
        slope_deg=rng.uniform(12.0, 45.0, n),
        creep_v0=rng.lognormal(np.log(0.02), 0.5, n),
        site_effect=rng.normal(0.0, 0.5, n),
    )


def _storm_rain(rng: np.random.Generator, p: SiteParams, n_hours: int) -> np.ndarray:
    n = len(p.storm_rate)
    rain = np.zeros((n, n_hours))
    doy = np.arange(n_hours) / 24.0
    for s in range(n):
        rate = p.storm_rate[s] * (1 + p.season_amp[s] * np.sin(2 * np.pi * doy / 365.25 + p.season_phase[s]))
        starts = np.flatnonzero(rng.random(n_hours) < rate)
        for t0 in starts:
            dur = int(np.clip(round(rng.lognormal(np.log(6.0), 0.9)), 1, 96))
            mean_i = p.intensity_k[s] * dur ** -0.45 * rng.lognormal(0.0, 0.6)
            weights = rng.gamma(2.0, 1.0, dur)
            amounts = weights / weights.sum() * mean_i * dur
            end = min(t0 + dur, n_hours)
            rain[s, t0:end] += amounts[: end - t0]
    return np.minimum(rain, 300.0)


def _physics(p: SiteParams, rain: np.ndarray, sat0: np.ndarray | float = 0.45
             ) -> tuple[np.ndarray, np.ndarray]:
    """Step soil bucket and linear reservoir hourly; returns (saturation, stage)."""
    n, n_hours = rain.shape
    theta_r = 0.05
    span = p.porosity - theta_r
    theta = theta_r + span * np.broadcast_to(np.asarray(sat0, dtype=float), (n,)).copy()
    base_q = 0.02  # mm/h baseflow
    storage = base_q * p.lag_h  # reservoir at baseflow equilibrium
    sat = np.empty((n, n_hours))
    q_out = np.empty((n, n_hours))
    for t in range(n_hours):
        s = (theta - theta_r) / span
        runoff_c = p.runoff_c0 + (1 - p.runoff_c0) * s ** 3
        r = rain[:, t]
        theta = theta + r * (1 - runoff_c) / p.soil_depth_mm
        excess = np.maximum(theta - p.porosity, 0.0)  # saturation excess also runs off
        theta = theta - excess
        theta = theta - p.drainage * np.maximum(theta - p.field_capacity, 0.0) - 2e-4 * (theta - theta_r)
        storage = storage + r * runoff_c + excess * p.soil_depth_mm + base_q - storage / p.lag_h
        sat[:, t] = (theta - theta_r) / span
        q_out[:, t] = storage / p.lag_h
    stage = p.rating_a[:, None] * q_out ** 0.6
    return sat, stage


def event_intensity_duration(rain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean intensity I (mm/h) and duration D (h) of the rain event ongoing at each hour.

    An event starts with a wet hour (>= 0.2 mm) preceded by >= 6 dry hours and is
    ongoing until 6 dry hours have passed; D runs from the first to the latest wet
    hour. Hours outside an event get I = 0, D = NaN. Works on the last axis; NaN
    rain is treated as dry (what a threshold-watching operator would see).
    """
    r = np.nan_to_num(np.asarray(rain, dtype=float), nan=0.0)
    t = np.arange(r.shape[-1])
    wet = r >= WET_MM
    last_wet = np.maximum.accumulate(np.where(wet, t, -10**9), axis=-1)
    prev_wet = np.concatenate([np.full(r.shape[:-1] + (1,), -10**9), last_wet[..., :-1]], axis=-1)
    start = wet & (t - prev_wet > EVENT_DRY_GAP_H)
    start_idx = np.maximum.accumulate(np.where(start, t, 0), axis=-1)
    active = (last_wet >= 0) & (t - last_wet < EVENT_DRY_GAP_H)
    csum = np.concatenate([np.zeros(r.shape[:-1] + (1,)), np.cumsum(r, axis=-1)], axis=-1)
    lw = np.clip(last_wet, 0, None)
    total = np.take_along_axis(csum, lw + 1, -1) - np.take_along_axis(csum, start_idx, -1)
    dur = (lw - start_idx + 1).astype(float)
    intensity = np.where(active, total / dur, 0.0)
    return intensity, np.where(active, dur, np.nan)


def caine_ratio(intensity: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """I / I_Caine(D); >= 1 means the Caine (1980) threshold is exceeded (0 outside events)."""
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(intensity / (CAINE_A * duration ** CAINE_B), nan=0.0)


def _landslides(rng: np.random.Generator, p: SiteParams, rain: np.ndarray, sat: np.ndarray
                ) -> np.ndarray:
    intensity, dur = event_intensity_duration(rain)
    with np.errstate(invalid="ignore", divide="ignore"):
        guzzetti = np.nan_to_num(intensity / (GUZZETTI_A * dur ** GUZZETTI_B), nan=0.0)
        log_caine = np.log(np.maximum(caine_ratio(intensity, dur), 1e-3))
    csum = np.concatenate([np.zeros((rain.shape[0], 1)), np.cumsum(rain, axis=1)], axis=1)
    t = np.arange(rain.shape[1])
    antecedent = csum[:, np.clip(t - 23, 0, None)] - csum[:, np.clip(t - 71, 0, None)]
    slope = np.sin(np.radians(p.slope_deg))[:, None]
    logit = (-8.0 + 3.0 * log_caine + 12.0 * (sat - 0.75) + 0.8 * np.log1p(antecedent / 50.0)
             + 6.0 * (slope - 0.45) + p.site_effect[:, None])
    hazard = np.where(guzzetti >= 1.0, 1.0 / (1.0 + np.exp(-logit)), 0.0)
    draws = rng.random(rain.shape) < hazard
    # A slope that just failed cannot fail again for 3 days (material removed).
    events = np.zeros_like(draws)
    for s, h in zip(*np.nonzero(draws)):
        if not events[s, max(0, h - 72):h].any():
            events[s, h] = True
    return events


def _ground_movement(rng: np.random.Generator, p: SiteParams, sat: np.ndarray,
                     events: np.ndarray) -> np.ndarray:
    n, n_hours = sat.shape
    v = p.creep_v0[:, None] * np.exp(6.0 * np.maximum(sat - 0.6, 0.0))
    t = np.arange(n_hours)

    def accelerate(s: int, t_fail: int) -> None:
        lead = int(rng.uniform(24, 48))
        c = rng.lognormal(np.log(12.0), 0.4)  # mm: v = c / (time to failure)
        window = (t >= t_fail - lead) & (t < t_fail)
        v[s, window] += c / (t_fail - t[window])

    for s, h in zip(*np.nonzero(events)):
        if rng.random() < 0.95:   # a few failures are sudden, without precursor
            accelerate(s, h)
    # False precursors: accelerations that stall (~as many as real failures overall).
    n_false = max(1, int(events.sum()))
    for _ in range(n_false):
        s = int(rng.integers(n))
        h = int(rng.integers(48, n_hours))
        accelerate(s, h)
        v[s, h:min(n_hours, h + 6)] = v[s, h - 1]  # stalls instead of failing
    return np.minimum(v, 1000.0)


def _observe(rng: np.random.Generator, p: SiteParams, start: datetime, rain: np.ndarray,
             sat: np.ndarray, stage: np.ndarray, gm: np.ndarray, gaps: bool
             ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    n, n_hours = rain.shape
    rain_obs = np.round(rain * rng.lognormal(0.0, 0.05, rain.shape) / WET_MM) * WET_MM
    soil_obs = np.clip(
        (0.05 + sat * (p.porosity - 0.05)[:, None]) + rng.normal(0, 0.01, sat.shape), 0.0, 1.0)
    gm_obs = np.clip(gm * rng.lognormal(0.0, 0.1, gm.shape), 0.0, 1000.0)
    wl_obs = np.clip(p.datum[:, None] + stage + rng.normal(0, 0.01, stage.shape), -50.0, 100.0)
    obs = {"rainfall": rain_obs, "soil_moisture": soil_obs,
           "ground_movement": gm_obs, "water_level": wl_obs}
    offset = rng.integers(0, 3600, n)[:, None]  # devices report at their own minute
    jitter = rng.integers(-30, 31, (n, n_hours))
    ts = start.timestamp() + np.arange(n_hours)[None, :] * HOUR + offset + jitter
    present = np.ones((n, n_hours), dtype=bool)
    if gaps:
        present &= rng.random((n, n_hours)) >= rng.uniform(0.01, 0.06, n)[:, None]
        for s in range(n):  # outages of 6-72 h, ~one a month
            for h in np.flatnonzero(rng.random(n_hours) < 1 / 720):
                present[s, h:h + int(rng.integers(6, 73))] = False
        for name, arr in obs.items():
            arr[rng.random((n, n_hours)) < 0.02] = np.nan
        obs["ground_movement"][rng.random(n) < 0.05] = np.nan  # site without extensometer
        obs["water_level"][rng.random(n) < 0.05] = np.nan     # site without stage gauge
    return ts.astype(np.float64), present, obs


def simulate(n_sites: int, days: int, seed: int, start: datetime = DEFAULT_START) -> Simulation:
    """Simulate ``n_sites`` independent sites for ``days`` days, deterministic per seed."""
    rng = np.random.default_rng(seed)
    n_hours = days * 24
    params = draw_site_params(rng, n_sites)
    rain = _storm_rain(rng, params, n_hours)
    sat, stage = _physics(params, rain)
    events = _landslides(rng, params, rain, sat)
    gm = _ground_movement(rng, params, sat, events)
    levels = rng.uniform(0.990, 0.998, n_sites)
    flood_stage = np.array([np.quantile(stage[s], levels[s]) for s in range(n_sites)])
    flooding = stage > flood_stage[:, None]
    ts, present, obs = _observe(rng, params, start, rain, sat, stage, gm, gaps=True)
    logger.info("synth.simulated", extra={"sites": n_sites, "days": days, "seed": seed,
                                           "landslides": int(events.sum()),
                                           "flood_hours": int(flooding.sum())})
    return Simulation(start=start, params=params, rain=rain, saturation=sat, stage=stage,
                      landslide=events, flooding=flooding,
                      flood_stage=params.datum + flood_stage,
                      flood_stage_known=rng.random(n_sites) >= 0.05,
                      ts=ts, present=present, obs=obs)


def event_within(events: np.ndarray, horizon_hours: int) -> np.ndarray:
    """Label per hour: does an event occur in the NEXT ``horizon_hours`` hours, (t, t+H]?

    Hours whose horizon runs past the end of the simulation are labelled from the
    hours that exist; callers drop them (see ``train``) since the future is unknown.
    """
    e = np.asarray(events, dtype=np.int64)
    csum = np.concatenate([np.zeros(e.shape[:-1] + (1,), dtype=np.int64), np.cumsum(e, axis=-1)], -1)
    t = np.arange(e.shape[-1])
    hi = np.minimum(t + 1 + horizon_hours, e.shape[-1])
    return (csum[..., hi] - csum[..., t + 1]) > 0


def landslide_labels(sim: Simulation, horizon_hours: int = 24) -> np.ndarray:
    """Early-warning label: a landslide occurs within the next ``horizon_hours``."""
    return event_within(sim.landslide, horizon_hours)


def flood_labels(sim: Simulation, horizon_hours: int = 6) -> np.ndarray:
    """Early-warning label: the stage exceeds flood stage within the next ``horizon_hours``."""
    return event_within(sim.flooding, horizon_hours)


SCENARIOS = ("calm", "storm", "flood", "landslide")


def _scenario_rain(rng: np.random.Generator, scenario: str, n: int, hours: int) -> np.ndarray:
    rain = np.zeros((n, hours))
    if scenario == "calm":
        showers = rng.random((n, hours)) < 0.03
        rain[showers] = rng.uniform(0.2, 1.0, showers.sum())
        return rain
    # (onset fraction, duration fraction, mean intensity mm/h)
    onset, dur_frac, mean_i = {"storm": (0.1, 0.25, 6.0), "flood": (0.05, 0.6, 16.0),
                               "landslide": (0.05, 0.5, 22.0)}[scenario]
    for s in range(n):
        t0 = int(onset * hours + rng.integers(0, max(1, hours // 20)))
        dur = max(1, int(dur_frac * hours))
        amounts = rng.gamma(2.0, mean_i / 2.0, dur) * rng.lognormal(0.0, 0.15)
        end = min(hours, t0 + dur)
        rain[s, t0:end] = amounts[: end - t0]
    return np.minimum(rain, 300.0)


def scenario_readings(scenario: str, n_sensors: int, hours: int, seed: int,
                      start: datetime | None = None) -> list[dict]:
    """Realistic hourly readings of ``n_sensors`` sensors under a named scenario.

    For the storm simulator: ``calm`` (dry spell, stable ground), ``storm`` (a
    moderate storm, soils wet up), ``flood`` (long heavy rain: stage rises past
    :data:`SCENARIO_FLOOD_STAGE_M`), ``landslide`` (intense rain on saturated
    slopes: ground movement accelerates towards failure near the end). Water level
    is metres above a datum of 0 so the flood stage is the same for every sensor.
    Readings carry sensor noise but no gaps. Deterministic per seed.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")
    if n_sensors < 0 or hours < 0:
        raise ValueError("n_sensors and hours must be non-negative")
    start = start or datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if n_sensors == 0 or hours == 0:
        return []
    rng = np.random.default_rng(seed)
    p = draw_site_params(rng, n_sensors)
    p = SiteParams(**{**p.__dict__, "datum": np.zeros(n_sensors), "rating_a": np.full(n_sensors, 1.0),
                      "lag_h": rng.uniform(3.0, 8.0, n_sensors),
                      "slope_deg": rng.uniform(30.0, 45.0, n_sensors)})
    rain = _scenario_rain(rng, scenario, n_sensors, hours)
    sat0 = {"calm": 0.4, "storm": 0.55, "flood": 0.8, "landslide": 0.85}[scenario]
    sat, stage = _physics(p, rain, sat0=sat0)
    events = np.zeros((n_sensors, hours), dtype=bool)
    if scenario == "landslide":
        events[:, min(hours - 1, max(1, int(0.9 * hours)))] = True
    gm = p.creep_v0[:, None] * np.exp(6.0 * np.maximum(sat - 0.6, 0.0))
    if scenario == "landslide":
        t = np.arange(hours)
        for s in range(n_sensors):
            t_fail = int(np.flatnonzero(events[s])[0]) + 1
            lead = min(t_fail, 24)
            w = (t >= t_fail - lead) & (t < t_fail)
            gm[s, w] += 8.0 / (t_fail - t[w])
    _, _, obs = _observe(rng, p, start, rain, sat, stage, gm, gaps=False)
    out = []
    for h in range(hours):
        when = start + timedelta(hours=h)
        for s in range(n_sensors):
            out.append({"sensor_index": s, "timestamp": when,
                        **{k: float(v[s, h]) for k, v in obs.items()}})
    return out
