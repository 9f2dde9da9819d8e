"""End-to-end consumer benchmark: Kafka -> decode -> store -> features -> XGBoost -> PostgreSQL.

Why: one consumer process must sustain >= 20,000 readings/s. This creates a
fresh PostgreSQL database and a fresh topic, produces N readings over S
sensors (5-minute cadence per sensor, so feature windows hold real history),
runs the real ``ReadingsConsumer`` in this process and measures readings/s
from the first to the last offset commit (group join and model loading are
excluded; they happen once per process). Prints a markdown row.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 \\
    python bench/bench_consumer.py [--readings 200000] [--sensors 500] [--batch-size 5000] [--partitions 6] [--keep-db]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _fresh_database(url: str, name: str) -> str:
    """Create database ``name`` on the server of ``url``; return its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunparse(urlparse(url)._replace(path=f"/{name}"))


def _drop_database(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--sensors", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--batch-seconds", type=float, default=0.5)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--keep-db", action="store_true", help="leave the benchmark database in place")
    parser.add_argument(
        "--store-only", action="store_true",
        help="replace the scoring and alerting stages with no-ops: the ceiling of Kafka + decode + store alone",
    )
    args = parser.parse_args()

    admin_url = os.environ.get("DATABASE_URL", "")
    if not admin_url.startswith("postgres") or not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        raise SystemExit("Set DATABASE_URL (PostgreSQL server; a fresh database is created) and KAFKA_BOOTSTRAP_SERVERS.")
    suffix = uuid.uuid4().hex[:8]
    db_name = f"bench_consumer_{suffix}"
    os.environ["DATABASE_URL"] = _fresh_database(admin_url, db_name)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "warning_system.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from sensors.consumer import ReadingsConsumer
    from sensors.models import Reading, Sensor, Site
    from tests.kafka_utils import make_readings, produce_readings
    from warning_system.kafka import ensure_topics

    if args.store_only:
        import sensors.pipeline

        sensors.pipeline.predictions_score_stored = lambda *, stored: []
        sensors.pipeline.alerts_evaluate_scored = lambda *, scored: 0

    try:
        call_command("migrate", verbosity=0)
        site = Site.objects.create(name="Bench", region="Bench")
        codes = [f"B-{i:04d}" for i in range(args.sensors)]
        Sensor.objects.bulk_create([Sensor(sensor_id=c, site=site, flood_stage_m=4.0, rainfall_limit_mm_h=40) for c in codes])

        topic = f"bench.sensor.data.{suffix}"
        settings.KAFKA_DLQ_TOPIC = f"bench.sensor.data.dlq.{suffix}"
        settings.KAFKA_ALERTS_TOPIC = f"bench.alerts.{suffix}"
        ensure_topics({topic: args.partitions, settings.KAFKA_DLQ_TOPIC: 1, settings.KAFKA_ALERTS_TOPIC: 1})
        readings = make_readings(codes, args.readings // args.sensors)
        t0 = time.perf_counter()
        produce_readings(readings, topic=topic)
        produce_seconds = time.perf_counter() - t0
        total = len(readings)

        commits: list[tuple[float, int]] = []

        class Measured(ReadingsConsumer):
            def _commit(self, batch):
                super()._commit(batch)
                commits.append((time.perf_counter(), len(batch)))
                if sum(n for _, n in commits) >= total:
                    self.stop()

        consumer = Measured(topic=topic, group=f"bench-{suffix}", batch_size=args.batch_size, batch_seconds=args.batch_seconds)
        consumer.run()

        stored = Reading.objects.count()
        # The first commit's own batch was processed before the clock started.
        span = commits[-1][0] - commits[0][0]
        rate = (total - commits[0][1]) / span if span > 0 else float("nan")
        batches = len(commits)
        from predictions.models import Prediction

        predictions = Prediction.objects.count()
        connection.close()
    finally:
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            for conn in connections.all():
                if getattr(conn, "pool", None):
                    conn.close_pool()
            _drop_database(admin_url, db_name)

    print(f"# Consumer benchmark — {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}, broker {settings.KAFKA_BOOTSTRAP_SERVERS}")
    print()
    print("| stages | readings | sensors | partitions | batch size | batches | produce (s) | stored | predictions | readings/s (first→last commit) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    stages = "store only" if args.store_only else "store+score+alert"
    print(f"| {stages} | {total:,} | {args.sensors} | {args.partitions} | {args.batch_size} | {batches} | {produce_seconds:.1f} | "
          f"{stored:,} | {predictions:,} | {rate:,.0f} |")
    print()
    print("Target: >= 20,000 readings/s end to end in one process.")


if __name__ == "__main__":
    main()
