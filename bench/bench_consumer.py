"""End-to-end consumer benchmark: Kafka -> decode -> store -> features -> XGBoost -> PostgreSQL.

Why: one consumer process must sustain >= 20,000 readings/s. This creates a
fresh PostgreSQL database and a fresh topic, produces N readings over S
sensors (5-minute cadence per sensor, so feature windows hold real history),
runs the real ``ReadingsConsumer`` in this process and measures readings/s
from the first to the last offset commit (group join and model loading are
excluded; they happen once per process). Prints a markdown row.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 \\
    python bench/bench_consumer.py [--readings 200000] [--sensors 500] [--batch-size N] [--partitions 6] [--keep-db]
        [--stages] [--profile FILE]

``--stages`` adds a table of wall and CPU microseconds per reading for each
stage (CPU is this process only, XGBoost's threads included; the database's
own work shows as wall minus CPU), the figures to compare when optimising on
a shared machine. Like the headline rate, it counts from the first offset
commit (group join and model loading left out). ``--profile`` writes a cProfile of the consumer loop.
"""
from __future__ import annotations

import argparse
import cProfile
import functools
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


class StageClock:
    """Wall and CPU time spent inside chosen functions, by wrapping them where they are looked up."""

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def reset(self) -> None:
        """Start counting afresh (at the first commit: group join and model loading are not measured)."""
        self.wall = dict.fromkeys(self.wall, 0.0)
        self.cpu = dict.fromkeys(self.cpu, 0.0)

    def wrap(self, module, attribute: str, label: str) -> None:
        inner = getattr(module, attribute)

        @functools.wraps(inner)
        def timed(*args, **kwargs):
            w, c = time.perf_counter(), time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                self.wall[label] = self.wall.get(label, 0.0) + time.perf_counter() - w
                self.cpu[label] = self.cpu.get(label, 0.0) + time.process_time() - c

        setattr(module, attribute, timed)

    def rows(self, readings: int) -> list[str]:
        def us(seconds: float) -> str:
            return f"{seconds / readings * 1e6:.1f}"

        return [f"| {label} | {us(self.wall[label])} | {us(self.cpu[label])} |" for label in self.wall]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--sensors", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=None, help="default: KAFKA_BATCH_SIZE")
    parser.add_argument("--batch-seconds", type=float, default=0.5)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--keep-db", action="store_true", help="leave the benchmark database in place")
    parser.add_argument(
        "--store-only", action="store_true",
        help="replace the scoring and alerting stages with no-ops: the ceiling of Kafka + decode + store alone",
    )
    parser.add_argument("--stages", action="store_true", help="print wall/CPU µs per reading for each stage")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile (pstats) of the consumer loop to FILE")
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
        sensors.pipeline.alerts_evaluate_batch = lambda *, batch: 0

    clock = StageClock()
    if args.stages:
        import sensors.consumer
        import sensors.pipeline

        # Nested: "process_batch" includes decode and "pipeline"; "pipeline" includes
        # the stages below it plus the transaction's COMMIT.
        clock.wrap(sensors.consumer.ReadingsConsumer, "_collect", "consume (Kafka poll)")
        clock.wrap(sensors.consumer, "process_batch", "process_batch (decode + pipeline)")
        clock.wrap(sensors.consumer, "process_readings", "pipeline (incl. COMMIT)")
        clock.wrap(sensors.pipeline, "sensor_pks_for", "sensor lookup")
        clock.wrap(sensors.pipeline, "readings_store_batch", "store readings")
        clock.wrap(sensors.pipeline, "sensors_touch_last_seen", "touch last_seen")
        clock.wrap(sensors.pipeline, "predictions_score_stored", "score (features, XGBoost, upsert)")
        clock.wrap(sensors.pipeline, "alerts_evaluate_batch", "alerts")
        clock.wrap(sensors.consumer.ReadingsConsumer, "_commit", "offset commit")
        clock.wrap(sensors.consumer.ReadingsConsumer, "_publish_outbox", "outbox")

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
                if len(commits) == 1:
                    clock.reset()
                    cpu_marks.append(time.process_time())
                if sum(n for _, n in commits) >= total:
                    self.stop()

        consumer = Measured(topic=topic, group=f"bench-{suffix}", batch_size=args.batch_size, batch_seconds=args.batch_seconds)
        profiler = cProfile.Profile() if args.profile else None
        cpu_marks: list[float] = []
        if profiler:
            profiler.enable()
        consumer.run()
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
        cpu_total = time.process_time() - cpu_marks[0]  # from the first commit, like the rate

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
    print(f"| {stages} | {total:,} | {args.sensors} | {args.partitions} | {consumer.batch_size} | {batches} | {produce_seconds:.1f} | "
          f"{stored:,} | {predictions:,} | {rate:,.0f} |")
    print()
    load = os.getloadavg()
    print(f"Consumer process CPU: {cpu_total / (total - commits[0][1]) * 1e6:.1f} µs/reading; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}.")
    if args.stages:
        print()
        print("| stage | wall µs/reading | CPU µs/reading |")
        print("|---|---|---|")
        print("\n".join(clock.rows(total - commits[0][1])))
    print()
    print("Target: >= 20,000 readings/s end to end in one process.")


if __name__ == "__main__":
    main()
