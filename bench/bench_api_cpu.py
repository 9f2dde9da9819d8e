"""CPU per request of the read and prediction endpoints, in process, authentication included.

Drives Django's WSGI handler directly (full middleware stack, URL routing,
DRF view, API-key auth from the process cache, Redis cache, PostgreSQL) and
measures ``time.process_time()`` per request: the CPU the web process spends,
which is what caps throughput on a small host, unlike wall-clock latency
(noisy when other load shares the machine). PostgreSQL's and Redis's own CPU
is not counted; use EXPLAIN (ANALYZE, BUFFERS) for the database side.

Scenarios (the same requests as bench/wrk/read.lua and bench/wrk/predict.lua):

- ``predict-miss``: POST /api/v1/predictions, every body new (XGBoost each time);
- ``predict-hit``: POST /api/v1/predictions, the same body (prediction cache hits);
- ``predict-array``: POST /api/v1/predictions with 100 fresh items;
- ``readings``: GET /api/v1/sensors/<rotating>/readings?limit=500;
- ``alerts-open``: GET /api/v1/alerts?status=open&hazard=flood (list cache warm);
- ``alerts-sensor``: GET /api/v1/alerts?sensor_id=<rotating>&hazard=<rotating>&until=<unique> (cache misses).

Usage::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ws_bench REDIS_URL=redis://127.0.0.1:6379/14 \\
    .venv/bin/python bench/bench_api_cpu.py readings alerts-sensor --sensors 1000 --prefix BN-

The read scenarios need the benchmark dataset (``bench/run.py`` seeds it) and
run against DATABASE_URL itself (they only read, plus one API key created
for the run); the prediction scenarios run against the test database of
DATABASE_URL (``test_<name>``, created if needed and kept), like
bench/bench_ingest_cpu.py.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "warning_system.settings")

SCENARIOS = ("predict-miss", "predict-hit", "predict-array", "readings", "alerts-open", "alerts-sensor")
READS = {"readings", "alerts-open", "alerts-sensor"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="+", choices=SCENARIOS)
    parser.add_argument("--requests", type=int, default=None, help="requests per round (default: 2000 for predictions, 300 for reads)")
    parser.add_argument("--rounds", type=int, default=5, help="the figure is the median round (robust to other load on the machine)")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--sensors", type=int, default=1000, help="read scenarios: sensors <prefix>00001 .. <prefix><sensors>")
    parser.add_argument("--prefix", default="BN-")
    parser.add_argument("--limit", type=int, default=500, help="readings per request")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the measured loop")
    args = parser.parse_args()

    import orjson

    from bench.inprocess import django_setup, wsgi_call

    django_setup(test_db=not READS.intersection(args.scenarios))
    from django.core.handlers.wsgi import WSGIHandler

    from management.services import api_key_create

    _, key = api_key_create(name=f"bench-cpu-{uuid.uuid4().hex[:6]}", scopes=["read", "predict"])
    app = WSGIHandler()
    statuses: dict[str, int] = {}
    rng = random.Random(7)

    def start_response(status, headers, exc_info=None):
        statuses[status] = statuses.get(status, 0) + 1

    def call(method: str, path: str, query: str = "", body: bytes = b"") -> bytes:
        return wsgi_call(app, start_response, method=method, path=path, key=key, query=query, body=body)

    def fresh() -> dict:
        return {"rainfall": round(rng.random() * 60, 2), "soil_moisture": round(0.1 + rng.random() * 0.6, 4),
                "ground_movement": round(rng.random() * 8, 3), "water_level": round(rng.random() * 6, 3),
                "rain_72h": round(rng.random() * 250, 1)}

    hit_body = orjson.dumps(fresh())
    until = [datetime.now(timezone.utc)]

    def sensor() -> str:
        return f"{args.prefix}{rng.randint(1, args.sensors):05d}"

    def request(scenario: str) -> bytes:
        if scenario == "predict-miss":
            return call("POST", "/api/v1/predictions", body=orjson.dumps(fresh()))
        if scenario == "predict-hit":
            return call("POST", "/api/v1/predictions", body=hit_body)
        if scenario == "predict-array":
            return call("POST", "/api/v1/predictions", body=orjson.dumps([fresh() for _ in range(100)]))
        if scenario == "readings":
            return call("GET", f"/api/v1/sensors/{sensor()}/readings", f"limit={args.limit}")
        if scenario == "alerts-open":
            return call("GET", "/api/v1/alerts", "status=open&hazard=flood")
        until[0] -= timedelta(seconds=64)
        stamp = until[0].strftime("%Y-%m-%dT%H:%M:%SZ")
        return call("GET", "/api/v1/alerts", f"sensor_id={sensor()}&hazard={rng.choice(('flood', 'landslide'))}&until={stamp}")

    for scenario in args.scenarios:
        n = args.requests or (300 if scenario in READS else 2000)
        for _ in range(args.warmup):
            request(scenario)
        statuses.clear()
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile(time.process_time)  # CPU, not wall: waits on Redis/PostgreSQL are not ours
            profiler.enable()
        rounds: list[tuple[float, float]] = []
        for _ in range(args.rounds):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for _ in range(n):
                request(scenario)
            rounds.append(((time.process_time() - cpu0) / n, (time.perf_counter() - wall0) / n))
        if profiler is not None:
            import pstats

            profiler.disable()
            stats = pstats.Stats(profiler).sort_stats(os.environ.get("BENCH_SORT", "tottime"))
            stats.print_stats(int(os.environ.get("BENCH_TOP", "30")))
            if os.environ.get("BENCH_CALLERS"):  # e.g. BENCH_CALLERS=deepcopy: who calls it, and how much
                stats.print_callers(os.environ["BENCH_CALLERS"])
        cpus = sorted(cpu for cpu, _ in rounds)
        cpu, wall = statistics.median(cpus), statistics.median(w for _, w in rounds)
        print(f"{scenario}: CPU per request {cpu * 1e6:,.0f} µs (median of {args.rounds} x {n}; min {cpus[0] * 1e6:,.0f}, "
              f"max {cpus[-1] * 1e6:,.0f}); wall {wall * 1e6:,.0f} µs sequential; statuses {statuses}; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
        if set(statuses) != {"200 OK"}:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
