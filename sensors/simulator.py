"""Storm simulator: replays a synthetic scenario through the real ingestion API.

Why through HTTP rather than straight into the database: the point is to
exercise what field stations exercise — API keys, validation, rate limits,
the broker, the consumer, scoring and alerting — and to see the result on the
analyst pages. Readings come from ``predictions.ml.synth.scenario_readings``
(physically motivated rain, soil, river and ground-movement histories).

Batching follows the gateways: each site has one gateway that uploads its
sensors' readings once per simulated hour, so one POST carries one site's
hour (split at ``INGEST_MAX_BATCH``). Timestamps run from (now − hours + 1 h)
to now, so the data lands in the window the pages and the stale-sensor check
look at. Each sensor sends only what its instrument measures (a rain gauge
sends rainfall; a multi-parameter station sends everything).

``rate`` is in POST requests (batches) per second. 429 and 503 are retried
after the server's ``Retry-After``; connection errors after a short backoff.
A 4xx on a batch is reported and the run goes on (one bad batch must not
hide the rest); a rejected key (401/403) or a batch still failing after the
retries stops the run. Only the standard library is used for HTTP, so the
simulator needs nothing beyond the app's own dependencies.
"""
from __future__ import annotations

import logging
import math
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
from django.conf import settings
from django.utils import timezone

from predictions.ml.synth import SCENARIOS, scenario_readings

from .models import Sensor
from .records import MEASUREMENTS
from .selectors import sensor_list
from .validation import RANGES

logger = logging.getLogger(__name__)

INGEST_PATH = "/api/v1/sensor-data"
MAX_RETRY_WAIT_SECONDS = 60.0
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    Sensor.Kind.RAIN_GAUGE: ("rainfall",),
    Sensor.Kind.SOIL_MOISTURE: ("soil_moisture",),
    Sensor.Kind.EXTENSOMETER: ("ground_movement",),
    Sensor.Kind.RIVER_GAUGE: ("water_level",),
    Sensor.Kind.MULTI: MEASUREMENTS,
}


class SimulatorError(Exception):
    """The run cannot go on (bad key, server unreachable); the summary so far is attached."""

    def __init__(self, message: str, summary: Summary):
        super().__init__(message)
        self.summary = summary


@dataclass(frozen=True)
class SimSensor:
    sensor_id: str
    gateway: str
    kind: str


@dataclass(frozen=True)
class Batch:
    gateway: str
    hour: datetime
    items: list[dict]


@dataclass
class Summary:
    batches: int = 0
    readings: int = 0
    accepted: int = 0
    retries: int = 0
    failed_batches: int = 0
    errors: list[str] = field(default_factory=list)
    elapsed_seconds: float = 0.0

    def line(self) -> str:
        return (
            f"{self.batches} batches posted, {self.readings} readings sent, {self.accepted} accepted, "
            f"{self.retries} retries, {self.failed_batches} failed batches in {self.elapsed_seconds:.1f} s"
        )


def simulation_sensors(*, count: int) -> list[SimSensor]:
    """The first ``count`` active sensors by code; a sensor's gateway is its site."""
    sensors = sensor_list().filter(status=Sensor.Status.ACTIVE)[:count]
    return [SimSensor(sensor_id=s.sensor_id, gateway=s.site.name, kind=s.kind) for s in sensors]


def _clean(name: str, value: float) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    lo, hi = RANGES[name]
    return round(min(max(value, lo), hi), 4)


def simulated_batches(*, sensors: Sequence[SimSensor], scenario: str, hours: int, seed: int, now: datetime | None = None, max_batch: int | None = None) -> list[Batch]:
    """The scenario's readings for ``sensors`` as gateway batches, oldest hour first."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")
    if not sensors or hours <= 0:
        return []
    max_batch = max_batch or settings.INGEST_MAX_BATCH
    now = (now or timezone.now()).replace(microsecond=0)
    start = now - timedelta(hours=hours - 1)
    grouped: dict[tuple[datetime, str], list[dict]] = {}
    for row in scenario_readings(scenario, len(sensors), hours, seed, start):
        sensor = sensors[row["sensor_index"]]
        values = {name: _clean(name, row.get(name)) for name in KIND_FIELDS.get(sensor.kind, MEASUREMENTS)}
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            continue  # the instrument was silent that hour
        item = {"sensor_id": sensor.sensor_id, "timestamp": row["timestamp"].isoformat(), **values}
        grouped.setdefault((row["timestamp"], sensor.gateway), []).append(item)
    batches = []
    for (hour, gateway), items in sorted(grouped.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        for i in range(0, len(items), max_batch):
            batches.append(Batch(gateway=gateway, hour=hour, items=items[i : i + max_batch]))
    return batches


def _retry_after(headers: dict, default: float) -> float:
    """Seconds the server asked us to wait (capped), or ``default`` when it did not say."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return min(max(float(value), 0.0), MAX_RETRY_WAIT_SECONDS)
    except (TypeError, ValueError):
        return default


def _post(url: str, api_key: str, body: bytes, timeout: float) -> tuple[int, dict, dict]:
    """(status, headers, parsed JSON body); HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Api-Key {api_key}", "User-Agent": "warning-system-simulator",
    })
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), _json(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers or {}), _json(exc.read())


def _json(raw: bytes) -> dict:
    try:
        data = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return {"detail": raw[:200].decode(errors="replace")}
    return data if isinstance(data, dict) else {"detail": data}


def simulate(
    *,
    batches: Sequence[Batch],
    base_url: str,
    api_key: str,
    rate: float = 0.0,
    max_retries: int = 5,
    timeout: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[str], None] | None = None,
) -> Summary:
    """POST every batch at most ``rate`` batches per second (0: as fast as the server answers)."""
    url = base_url.rstrip("/") + INGEST_PATH
    summary = Summary()
    started = time.monotonic()
    for index, batch in enumerate(batches):
        if rate > 0:
            wait = started + index / rate - time.monotonic()
            if wait > 0:
                sleep(wait)
        body = orjson.dumps(batch.items)
        attempt = 0
        while True:
            try:
                status, headers, data = _post(url, api_key, body, timeout)
            except (urllib.error.URLError, OSError) as exc:
                status, headers, data = 0, {}, {"detail": str(getattr(exc, "reason", exc))}
            if status in (0, 429, 503) and attempt < max_retries:
                attempt += 1
                summary.retries += 1
                wait = _retry_after(headers, default=min(2.0 ** (attempt - 1), MAX_RETRY_WAIT_SECONDS))
                logger.info("simulator.retry", extra={"status": status, "attempt": attempt, "wait_seconds": wait})
                sleep(wait)
                continue
            break
        summary.batches += 1
        summary.readings += len(batch.items)
        summary.elapsed_seconds = time.monotonic() - started
        if status == 202:
            summary.accepted += int(data.get("accepted", 0))
        else:
            summary.failed_batches += 1
            error = f"{batch.gateway} {batch.hour.isoformat()}: HTTP {status or 'connection error'}: {orjson.dumps(data).decode()[:500]}"
            summary.errors.append(error)
            logger.warning("simulator.batch_failed", extra={"status": status, "gateway": batch.gateway})
            if status in (0, 401, 403, 429, 503):
                raise SimulatorError(error, summary)
        if progress and (index + 1) % 50 == 0:
            progress(f"{index + 1}/{len(batches)} batches, {summary.accepted} readings accepted")
    summary.elapsed_seconds = time.monotonic() - started
    logger.info("simulator.finished", extra={"batches": summary.batches, "accepted": summary.accepted, "failed": summary.failed_batches})
    return summary
