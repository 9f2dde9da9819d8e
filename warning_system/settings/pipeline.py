"""Models, risk cut-offs and alerting rules."""
from pathlib import Path

from .env import BASE_DIR, env

MODEL_DIR = Path(env.str("MODEL_DIR", default=str(BASE_DIR / "models")))
RISK_MEDIUM = env.float("RISK_MEDIUM", default=0.4)
RISK_HIGH = env.float("RISK_HIGH", default=0.7)
LANDSLIDE_HORIZON_HOURS = env.int("LANDSLIDE_HORIZON_HOURS", default=24)
FLOOD_HORIZON_HOURS = env.int("FLOOD_HORIZON_HOURS", default=6)
MODEL_METRIC_FLOORS = env.dict("MODEL_METRIC_FLOORS", cast={"value": float}, default={"roc_auc": 0.90})
PREDICTION_CACHE_SECONDS = env.int("PREDICTION_CACHE_SECONDS", default=300)
# XGBoost threads for batch scoring (the consumer, eager ingestion); 0 = one per
# CPU, at most 4. One by default: the consumer scores while PostgreSQL writes the
# batch on the other core, and a second OpenMP thread competed with it, spinning
# between calls: 6.6-7.2 µs of CPU per reading (both models) against 4.9-5.1 with
# one thread (20,000 rows; docs/benchmarks.md, 2026-12-07).
SCORING_BATCH_THREADS = env.int("SCORING_BATCH_THREADS", default=1)

# Hysteresis: an open alert clears only after the risk stays below
# ALERT_CLEAR_LEVEL for ALERT_CLEAR_READINGS consecutive readings or
# ALERT_CLEAR_MINUTES, whichever comes first.
ALERT_CLEAR_LEVEL = env.float("ALERT_CLEAR_LEVEL", default=0.3)
ALERT_CLEAR_READINGS = env.int("ALERT_CLEAR_READINGS", default=3)
ALERT_CLEAR_MINUTES = env.int("ALERT_CLEAR_MINUTES", default=120)
STALE_SENSOR_MINUTES = env.int("STALE_SENSOR_MINUTES", default=180)
# Cached alert lists live at most this long; every alert change invalidates them at once.
ALERTS_LIST_CACHE_SECONDS = env.int("ALERTS_LIST_CACHE_SECONDS", default=300)
