"""Health checks, each bounded by a short timeout so /health never hangs.

Database, broker or models failing means readings cannot be safely accepted
or scored: 503, so load balancers route around the instance. Redis failing
only degrades caching and rate limiting (ingestion keeps working), so the
answer is 200 with status "degraded" and the failing check named.
"""
from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)

_broker_lock = threading.Lock()
_broker_state: dict = {"checked": 0.0, "servers": None, "result": None}
BROKER_CHECK_TTL = 2.0  # seconds; health is polled often, metadata calls are not free


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return text[:160]


def check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "down"
        return f"database unreachable: {_short(exc)}"
    return None


def check_cache() -> str | None:
    if not settings.REDIS_URL:
        return None
    try:
        from django_redis import get_redis_connection

        get_redis_connection("default").ping()
    except Exception as exc:
        return f"redis unreachable: {_short(exc)}"
    return None


def check_broker() -> str | None:
    from warning_system import kafka

    # The remembered answer is only valid for the broker it was asked of.
    servers = settings.KAFKA_BOOTSTRAP_SERVERS
    now = time.monotonic()
    with _broker_lock:
        if _broker_state["servers"] == servers and now - _broker_state["checked"] < BROKER_CHECK_TTL:
            return _broker_state["result"]
    result = kafka.broker_problem(timeout=1.0)
    with _broker_lock:
        _broker_state.update(checked=time.monotonic(), servers=servers, result=result)
    return result


def check_models() -> str | None:
    from predictions.scoring import ModelUnavailable, get_registry

    try:
        get_registry()
    except ModelUnavailable as exc:
        return str(exc)
    return None


def run_checks() -> tuple[int, dict]:
    checks: dict[str, str] = {}
    errors: dict[str, str] = {}
    probes = {"database": check_database, "cache": check_cache, "models": check_models}
    if not settings.PIPELINE_EAGER:
        probes["broker"] = check_broker
    for name, probe in probes.items():
        problem = probe()
        checks[name] = "ok" if problem is None else "error"
        if problem:
            errors[name] = problem
    if settings.PIPELINE_EAGER:
        checks["broker"] = "skipped (eager mode)"
    fatal = [name for name in errors if name != "cache"]
    if fatal:
        status_code, overall = 503, "error"
    elif errors:
        status_code, overall = 200, "degraded"
    else:
        status_code, overall = 200, "ok"
    body = {"status": overall, "checks": checks}
    if errors:
        body["errors"] = errors
        logger.warning("health.failing", extra={"errors": errors})
    return status_code, body
