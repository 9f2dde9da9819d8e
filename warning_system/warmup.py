"""Work a server worker does once when it starts instead of on its first requests.

Without it the first requests of every worker (after a deploy, a crash or a
``max_requests`` recycle) pay for connecting the Kafka producer (bootstrap,
metadata and the idempotent producer's id: ~0.3–0.5 s against the local
broker), loading the XGBoost models and loading the sensor-status snapshot.
Stations that post during those moments saw p99 latencies of ~460 ms in a
quiet 50-connection benchmark (docs/benchmarks.md, benchmark 1); a reading
that waits half a second for a cold producer is exactly the tail an
early-warning API must not have.

Each step is best effort: a broker, database or model that is unavailable
at start is logged and left to the request path, which reports it properly
(503 with Retry-After, health checks) and recovers by itself.
"""
from __future__ import annotations

import logging
import time

from django.conf import settings

logger = logging.getLogger(__name__)

WARMUP_BROKER_TIMEOUT_SECONDS = 5.0


def worker_warmup() -> dict[str, bool]:
    """Connect the producer, load the models and the sensor snapshot; returns which steps succeeded."""
    started = time.monotonic()
    done: dict[str, bool] = {}
    if not settings.PIPELINE_EAGER:
        try:
            from sensors.producer import get_producer

            get_producer().warm(timeout=WARMUP_BROKER_TIMEOUT_SECONDS)
            done["producer"] = True
        except Exception as exc:  # noqa: BLE001 - the request path reports a broker problem as 503
            logger.warning("warmup.producer_failed", extra={"error": str(exc)})
            done["producer"] = False
    try:
        from predictions.scoring import get_registry

        get_registry()
        done["models"] = True
    except Exception as exc:  # noqa: BLE001 - /predictions answers 503 and the health check says why
        logger.warning("warmup.models_failed", extra={"error": str(exc)})
        done["models"] = False
    try:
        from sensors.sensor_cache import sensor_statuses

        sensor_statuses(())
        done["sensors"] = True
    except Exception as exc:  # noqa: BLE001 - the next ingest request loads it
        logger.warning("warmup.sensors_failed", extra={"error": str(exc)})
        done["sensors"] = False
    finally:
        from django.db import close_old_connections

        close_old_connections()  # hand the connection back to the pool; requests take their own
    logger.info("warmup.done", extra={**done, "ms": round((time.monotonic() - started) * 1000, 1)})
    return done
