"""Gunicorn settings for the API: ``gunicorn -c gunicorn.conf.py warning_system.wsgi:application``.

Sizing: ``GUNICORN_WORKERS`` processes x ``GUNICORN_THREADS`` threads serve
requests concurrently. The ingestion API spends most of a request waiting for
the broker's acknowledgement and the database, so threads (``gthread``) give
concurrency without a process (and a copy of numpy/XGBoost) per request. The
defaults (2 x 32) fit a 2 GB VPS: an ingest request holds its thread ~5 ms
waiting for the broker's acknowledgement, so with 4 threads a worker could
never pass ~700 requests/s; an idle thread costs a stack, not RSS. Of those
threads only ``WEB_CPU_SLOTS`` (2) run Django at once, in arrival order
(``warning_system/cpu_slots.py``): CPU-bound requests running together only
slow each other down under one GIL. Reads that
need the database queue for one of ``DB_POOL_MAX_SIZE`` pooled connections
per worker (ingestion uses none), which keeps PostgreSQL's connection count
bounded however many threads wait.

``preload_app``: on. The master imports Django and every view (numpy, pandas,
XGBoost: seconds of imports) once, then forks workers that share those pages
copy-on-write. Memory stays down, and a worker recycled by ``max_requests``
serves its first request at once instead of stalling it on imports. It is
fork-safe because importing creates nothing that must not cross a fork: the
Kafka producer (``sensors.producer``) and the XGBoost models
(``predictions.scoring``) are created lazily in each worker, and Django opens
database connections (and its psycopg pool) on first use
(``tests/deploy/test_production.py`` checks all three, and that the master
starts no thread).

Memory: ``when_ready`` keeps scikit-learn, pandas and most of SciPy out of
the workers (see its docstring).

ASGI alternative (sync Django views then run in a thread per worker, so
gunicorn+gthread serves this API better)::

    uvicorn warning_system.asgi:application --host 0.0.0.0 --port 8000 \
        --workers 2 --proxy-headers --forwarded-allow-ips='*'
"""
import ctypes
import gc
import os
import platform
import time
import traceback

import gunicorn.workers.gthread
from gunicorn import glogging

# The garbage collector and the start-up objects (Django, every view, NumPy,
# XGBoost: ~180,000 tracked objects per worker). A full collection walks all of
# them: ~110 ms, during which the worker's 32 threads serve nothing; they came
# every few thousand requests, a stall the size of the ingestion p99 target. As
# the gc module recommends for servers that fork without exec: no collection
# in the master while it imports (no holes in pages the workers share),
# gc.freeze() before each fork, collection back on (in the master from its
# first fork on, and in each worker), and the
# worker freezes again once warmed up (post_worker_init). Frozen objects are
# never scanned; everything made by requests is collected as usual.
gc.disable()

# glibc gives each thread that allocates its own malloc arena (up to 8 per core), and
# freed memory stays in the arena: with 32 request threads a worker's RSS crept from
# ~110 to ~165 MB after a load test. Two arenas keep it near the start-up size at no
# measurable throughput cost (docs/benchmarks.md, benchmark 8). Set here, in the master
# before any thread exists, so every forked worker inherits it; MALLOC_ARENA_MAX in
# the environment (the Dockerfile sets it) does the same for every process.
if platform.libc_ver()[0] == "glibc" and "MALLOC_ARENA_MAX" not in os.environ:
    M_ARENA_MAX = -8  # glibc's malloc.h
    ctypes.CDLL(None).mallopt(M_ARENA_MAX, 2)

bind = "0.0.0.0:8000"
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
# gthread, with new connections spread evenly over the workers (see the module).
worker_class = "warning_system.gunicorn_worker.BalancedThreadWorker"
# How long a worker thread waits for the first request bytes of a NEW connection before
# handing the connection to the worker's poller (gunicorn's gthread default: 5 s). A
# client sends its request right after the TCP handshake, so it is there at once or
# the client is idle; waiting 5 s ties a thread to an idle connection. With 1,000
# stations connecting at once, 64 threads were held by connections whose first
# reading was still to come and p99 rose to ~200-900 ms even for a hello-world app;
# 5 ms gives p99 ~6 ms for it (docs/benchmarks.md, benchmark 1). A deferred
# connection costs one poller registration, not a thread.
FIRST_DATA_WAIT_SECONDS = int(os.environ.get("GUNICORN_FIRST_DATA_WAIT_MS", "5")) / 1000
if not hasattr(gunicorn.workers.gthread, "DEFAULT_WORKER_DATA_TIMEOUT"):
    raise RuntimeError("gunicorn's gthread worker changed: review FIRST_DATA_WAIT_SECONDS in gunicorn.conf.py")
gunicorn.workers.gthread.DEFAULT_WORKER_DATA_TIMEOUT = FIRST_DATA_WAIT_SECONDS

# gunicorn 27 bounds one more thing by that constant: after a keep-alive answer,
# ``_keepalive_after`` drains whatever body the application left unread, with a
# deadline of now + DEFAULT_WORKER_DATA_TIMEOUT that ``finish_body`` checks before its
# first read. With 5 ms, a thread that waited a few ms for the GIL between the two
# (32 threads share it) found the deadline passed and closed a connection whose body
# had been read completely, right after answering it with keep-alive: the client's
# next request met a closed socket. That was the 1-2 unexplained wrk read errors in
# about half of the 60 s benchmark runs. The drain keeps gunicorn's own bound of 5 s
# (tests/deploy/test_compose.py); the first-bytes wait above stays short.
BODY_DRAIN_SECONDS = 5.0
if not hasattr(gunicorn.workers.gthread.ThreadWorker, "_keepalive_after"):
    raise RuntimeError("gunicorn's gthread worker changed: review BODY_DRAIN_SECONDS in gunicorn.conf.py")


def _keepalive_after(self, conn, keepalive):
    if not keepalive:
        return False
    return bool(conn.parser.finish_body(deadline=time.monotonic() + BODY_DRAIN_SECONDS))


gunicorn.workers.gthread.ThreadWorker._keepalive_after = _keepalive_after

# Connections each worker holds open (kept-alive ones included): device fleets and
# load balancers keep many idle connections; beyond this a worker stops accepting.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "2000"))
preload_app = True

# A request that takes longer than this is stuck (the ingestion API gives up on
# the broker after KAFKA_PRODUCE_TIMEOUT_SECONDS); the worker is replaced.
timeout = 30
graceful_timeout = 30
# Keep-alive must outlast the idle timeout of a load balancer that reuses
# connections to gunicorn, or the balancer may send on a connection we just closed.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Recycle workers now and then so slow memory growth can never exhaust a small host;
# the jitter keeps workers from restarting all at once. Rarely: at 1,000+ requests/s a
# recycle every few thousand requests (seconds) would rebuild the Kafka producer, reload
# the models and drop every keep-alive connection of the worker (clients see resets);
# no leak is known (worker RSS is measured after the load by `make bench`, target 8).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "1000000"))
max_requests_jitter = max_requests // 20
# No runtime control socket: worker counts change through the environment and a
# restart, and the default socket path ($HOME) is not writable for the app user.
control_socket_disable = True

# Field stations send small requests: reject oversized request lines and header sets
# before Django sees them (the body limit is DATA_UPLOAD_MAX_MEMORY_SIZE).
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190

# Containers log to their standard streams; the platform collects them.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "INFO").lower()


def when_ready(server):
    """Import the URLconf, hence every view module, in the master before workers fork.

    Without scikit-learn (warning_system.lean_imports): the workers score with
    ``xgboost.Booster`` only, and scikit-learn would bring pandas and most of
    SciPy into every worker (~95 MB of RSS each). Only here, in a real server.
    """
    if server.cfg.preload_app:
        from django.urls import get_resolver

        from warning_system.lean_imports import xgboost_without_sklearn

        with xgboost_without_sklearn():
            get_resolver().url_patterns


# Which requests get an access-log line (ACCESS_LOG):
#   errors (default): status >= 400, or slower than ACCESS_LOG_SLOW_MS (default 1000);
#   all: every request; off: none.
# Why not every request by default: a station fleet posts thousands of readings a
# second, and a line per accepted reading is ~120 µs of CPU per request in a worker
# (gthread hello-world: 174 -> 296 µs/request with the access log on; docs/benchmarks.md)
# plus gigabytes of logs a day that nobody reads. Failures and slow requests are
# what operators act on; throughput is visible in the consumer's stats events.
ACCESS_LOG = os.environ.get("ACCESS_LOG", "errors").strip().lower()
if ACCESS_LOG not in ("errors", "all", "off"):
    raise ValueError(f"ACCESS_LOG must be errors, all or off, not {ACCESS_LOG!r}")
ACCESS_LOG_SLOW_MS = float(os.environ.get("ACCESS_LOG_SLOW_MS", "1000"))
if ACCESS_LOG == "off":
    accesslog = None


def access_wanted(status: int, duration_ms: float, mode: str = ACCESS_LOG, slow_ms: float = ACCESS_LOG_SLOW_MS) -> bool:
    """Whether a request with this status and duration gets an access-log line under ``mode``."""
    if mode == "all":
        return True
    if mode == "off":
        return False
    return status >= 400 or duration_ms >= slow_ms


def _status_code(resp) -> int:
    return int(str(resp.status).split(None, 1)[0])


class AccessLogger(glogging.Logger):
    """gunicorn's text access log, restricted to the requests ``ACCESS_LOG`` asks for."""

    def access(self, resp, req, environ, request_time):
        if self.access_log_enabled and access_wanted(_status_code(resp), request_time.total_seconds() * 1000):
            super().access(resp, req, environ, request_time)


def pre_fork(server, worker):
    gc.freeze()  # what the master built so far is shared, unscanned, with the worker about to fork
    gc.enable()  # the master itself runs for weeks: its own later garbage (respawns...) must be collected


def post_fork(server, worker):
    gc.enable()


def post_worker_init(worker):
    """Connect the producer and load models and sensors before the worker takes requests (warning_system.warmup).

    Then freeze what start-up built (see ``gc.disable()`` above).
    """
    from warning_system.warmup import worker_warmup

    worker_warmup()
    gc.freeze()


class JsonAccessLogger(glogging.Logger):
    """Logs each wanted request (``ACCESS_LOG``) as the ``http.request`` event with named fields.

    Gunicorn's own access format is a printf template that cannot escape quotes
    in user agents or paths, so it cannot produce valid JSON; logging fields as
    ``extra`` lets the application's JSON formatter encode them properly.
    """

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        try:
            status = _status_code(resp)
            duration_ms = request_time.total_seconds() * 1000
            if not access_wanted(status, duration_ms):
                return
            self.access_log.info("http.request", extra={
                "method": environ.get("REQUEST_METHOD"),
                "path": environ.get("PATH_INFO"),
                "query": environ.get("QUERY_STRING") or None,
                "status": status,
                "bytes": getattr(resp, "sent", None),
                "duration_ms": round(duration_ms, 1),
                "remote_addr": environ.get("REMOTE_ADDR"),
                "forwarded_for": environ.get("HTTP_X_FORWARDED_FOR"),
                "user_agent": environ.get("HTTP_USER_AGENT"),
            })
        except Exception:
            self.error(traceback.format_exc())


# LOG_FORMAT is the application's switch too (json unless set to text), so the
# server's and the application's lines share one format.
if os.environ.get("LOG_FORMAT", "json") == "json":
    logger_class = JsonAccessLogger
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "warning_system.logging.JsonFormatter"}},
        "handlers": {
            "stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
        },
        "root": {"level": "INFO", "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": loglevel.upper(), "handlers": ["stdout"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        },
    }
else:
    logger_class = AccessLogger


def child_exit(server, worker):
    """Free the exited worker's connection-balancing slot (warning_system.gunicorn_worker)."""
    from warning_system.gunicorn_worker import release

    release(worker.pid)
