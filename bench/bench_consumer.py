"""End-to-end consumer benchmark: Kafka -> decode -> store -> features -> XGBoost -> PostgreSQL.

Why: one consumer process must sustain >= 20,000 readings/s. This creates a
fresh PostgreSQL database and a fresh topic, produces N readings over S
sensors (5-minute cadence per sensor by default, so feature windows hold real history),
runs the real ``ReadingsConsumer`` in this process and measures readings/s
from the first to the last offset commit (group join and model loading are
excluded; they happen once per process). Prints a markdown row.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 \\
    python bench/bench_consumer.py [--readings 200000] [--sensors 500] [--batch-size N] [--partitions 6] [--keep-db]
        [--cadence-seconds 300] [--order sensor|time] [--history N] [--stages] [--profile FILE] [--db-prefix P] [--topic-prefix P]

``--history N`` first stores N readings (``load_history --generate``, same
cadence, ending one cadence before the first produced reading), so every
new reading has stored history in its 72 h window: the situation of a
database holding millions of readings at 1-minute cadence
(``--cadence-seconds 60``). The history load is not measured.

Besides the rate it prints CPU per reading of the consumer process and of
its PostgreSQL backends (from /proc: on a shared machine the sum is the
figure to compare, not the wall clock), and the consumer's RSS. The
readings are produced by a forked child, so the RSS is the consumer's own.
Use ``--db-prefix``/``--topic-prefix`` to keep to your own names on a
shared server.

``--stages`` adds a table of wall and CPU microseconds per reading for each
stage (CPU is this process only, XGBoost's threads included; the database's
own work shows as wall minus CPU) and the wall time of each SQL statement
(by its first words; CPU is not separated there), the figures to compare when optimising on
a shared machine. Like the headline rate, it counts from the first offset
commit (group join and model loading left out). ``--profile`` writes a cProfile of the consumer loop.
"""
from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import multiprocessing
import os
import platform
import random
import resource
import sys
import time
import uuid
from datetime import timedelta
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


def _backend_cpu_seconds(db_name: str) -> float:
    """CPU (user + system) used so far by the PostgreSQL backends connected to ``db_name``.

    Read from /proc (PostgreSQL on the same machine): on a shared machine the
    consumer's cost is its own CPU plus its backends', whatever the wall clock
    says. Backends that exit between two samples are missed; the consumer's
    pooled connection stays open for the whole run. NaN when /proc does not
    show them (another host or container).
    """
    from bench.lib import cpu_seconds

    backends = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            continue
        if cmdline.startswith(b"postgres:") and f" {db_name} ".encode() in cmdline:
            backends.append(int(entry.name))
    return cpu_seconds(backends) if backends else float("nan")


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return int(fh.read().split("VmRSS:")[1].split()[0]) / 1024


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

    def watch_gc(self) -> None:
        """Also count the time the garbage collector stops the consumer, per generation."""
        started: list[tuple[float, float]] = []

        def callback(phase: str, info: dict) -> None:
            if phase == "start":
                started.append((time.perf_counter(), time.process_time()))
            elif started:
                w, c = started.pop()
                label = f"garbage collector, generation {info['generation']}"
                self.wall[label] = self.wall.get(label, 0.0) + time.perf_counter() - w
                self.cpu[label] = self.cpu.get(label, 0.0) + time.process_time() - c

        gc.callbacks.append(callback)

    def watch_sql(self) -> None:
        """Also count wall time per SQL statement (by its first words): the database's share, statement by statement."""
        import psycopg

        inner = psycopg.Cursor.execute

        def execute(cursor, query, *args, **kwargs):
            w = time.perf_counter()
            try:
                return inner(cursor, query, *args, **kwargs)
            finally:
                text = query if isinstance(query, str) else str(query)
                label = "SQL: " + " ".join(text.split())[:70].replace("|", "/")
                self.wall[label] = self.wall.get(label, 0.0) + time.perf_counter() - w
                self.cpu[label] = self.cpu.get(label, 0.0)

        psycopg.Cursor.execute = execute

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
    parser.add_argument("--cadence-seconds", type=int, default=300, help="seconds between a sensor's readings (default 300)")
    parser.add_argument("--order", choices=("sensor", "time"), default="sensor", help="produce order (default: sensor)")
    parser.add_argument(
        "--values", choices=("steady", "wrk"), default="steady",
        help="steady: deterministic values (rain cycling 0-49 mm/h); wrk: bench/wrk/ingest.lua's random values on "
             "bench/run.py's multi-parameter sensors (the backlog benchmark 4 drains: ~10 %% of readings raise an alert)",
    )
    parser.add_argument("--history", type=int, default=0, metavar="N", help="store N readings of history first (not measured)")
    parser.add_argument("--db-prefix", default="bench_consumer_", help="name prefix of the database created (shared servers)")
    parser.add_argument("--topic-prefix", default="bench.", help="name prefix of the topics and consumer group created")
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
    db_name = f"{args.db_prefix}{suffix}"
    os.environ["DATABASE_URL"] = _fresh_database(admin_url, db_name)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "warning_system.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # As in production: with DEBUG on, Django formats and keeps every query's SQL
    # (up to 9,000, with bulk statements' parameters), which costs CPU and grows the RSS.
    os.environ.setdefault("DEBUG", "false")

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from sensors.management.commands.consume_readings import ReadingsConsumer  # imported as the command does (RSS)
    from sensors.models import Reading, Sensor, Site
    from sensors.records import ReadingIn
    from tests.kafka_utils import BASE_TIME, produce_readings
    from warning_system.kafka import ensure_topics

    if args.store_only:
        import sensors.pipeline

        sensors.pipeline.predictions_score_stored = lambda *, stored, windows=None: []
        sensors.pipeline.alerts_evaluate_batch = lambda *, batch: 0

    clock = StageClock()
    if args.stages:
        import sensors.consumer
        import sensors.pipeline
        import warning_system.db

        # Nested: "process_batch" includes decode and "pipeline"; "pipeline" includes
        # the stages below it plus the transaction's COMMIT.
        clock.wrap(sensors.consumer.ReadingsConsumer, "_collect", "consume (Kafka poll)")
        clock.wrap(sensors.consumer, "process_batch", "process_batch (decode + pipeline)")
        clock.wrap(sensors.consumer, "process_readings", "pipeline (incl. COMMIT)")
        clock.wrap(sensors.pipeline, "batch_sensors_lock", "sensor lookup")
        clock.wrap(sensors.pipeline, "readings_store_batch", "store readings (plain path)")
        clock.wrap(sensors.pipeline, "expected_new_readings", "guess the new readings from the windows")
        clock.wrap(sensors.pipeline, "readings_insert_new", "insert the new readings (sent to the overlap)")
        clock.wrap(warning_system.db.Overlap, "result", "wait for an overlapped statement's result")
        clock.wrap(sensors.pipeline, "sensors_touch_last_seen", "touch last_seen")
        clock.wrap(sensors.pipeline, "predictions_score_stored", "score (features, XGBoost; upserts sent to the overlap)")
        clock.wrap(sensors.pipeline, "alerts_load_batch", "alerts: load and lock")
        clock.wrap(sensors.pipeline, "alerts_evaluate_batch", "alerts: rules and writes (the writes wait for the upsert)")
        clock.wrap(warning_system.db.Overlap, "__exit__", "wait for overlapped statements")
        clock.wrap(sensors.consumer.ReadingsConsumer, "_commit", "offset commit")
        clock.wrap(sensors.consumer.ReadingsConsumer, "_publish_outbox", "outbox (on its own thread, overlapping the batches: CPU is the process's meanwhile)")
        clock.watch_gc()
        clock.watch_sql()

    try:
        call_command("migrate", verbosity=0)
        site = Site.objects.create(name="Bench", region="Bench")
        codes = [f"B-{i:04d}" for i in range(args.sensors)]
        if args.values == "wrk":  # as bench/run.py seeds them
            from bench.lib import BENCH_SENSOR_FIELDS

            Sensor.objects.bulk_create([Sensor(sensor_id=c, site=site, kind=Sensor.Kind.MULTI, **BENCH_SENSOR_FIELDS) for c in codes])
        else:
            Sensor.objects.bulk_create([Sensor(sensor_id=c, site=site, flood_stage_m=4.0, rainfall_limit_mm_h=40) for c in codes])

        cadence = timedelta(seconds=args.cadence_seconds)
        if args.history:
            t0 = time.perf_counter()
            call_command(
                "load_history", "--generate", str(args.history), "--prefix", "B-", "--interval-seconds", str(args.cadence_seconds),
                "--end", (BASE_TIME - cadence).isoformat(), verbosity=0,
            )
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
            print(f"History: {args.history:,} readings stored in {time.perf_counter() - t0:.0f} s.", file=sys.stderr)

        topic = f"{args.topic_prefix}bench.sensor.data.{suffix}"
        settings.KAFKA_DLQ_TOPIC = f"{args.topic_prefix}bench.sensor.data.dlq.{suffix}"
        settings.KAFKA_ALERTS_TOPIC = f"{args.topic_prefix}bench.alerts.{suffix}"
        ensure_topics({topic: args.partitions, settings.KAFKA_DLQ_TOPIC: 1, settings.KAFKA_ALERTS_TOPIC: 1})
        # Deterministic readings; "time" order is live traffic (every sensor at t, then at t + cadence),
        # "sensor" order (each sensor's readings in a row) is a replayed backlog. Produced by a
        # forked child, so the peak RSS reported is the consumer's, not the producer's.
        steps = range(args.readings // args.sensors)

        def produce_all() -> None:
            pairs = [(code, i) for i in steps for code in codes] if args.order == "time" else [(code, i) for code in codes for i in steps]
            if args.values == "wrk":
                rng = random.Random(42)

                def reading(code: str, i: int) -> ReadingIn:  # bench/wrk/ingest.lua's reading()
                    ts = BASE_TIME + cadence * i
                    rain = round(rng.random() * 15, 1) if rng.random() < 0.3 else 0.0
                    return ReadingIn(
                        sensor_id=code, timestamp=ts, received_at=ts, rainfall=rain, soil_moisture=round(0.2 + rng.random() * 0.15, 3),
                        ground_movement=round(rng.random() * 0.5, 2), water_level=round(1.0 + rng.random() * 1.5, 2),
                    )
            else:
                def reading(code: str, i: int) -> ReadingIn:
                    ts = BASE_TIME + cadence * i
                    return ReadingIn(sensor_id=code, timestamp=ts, received_at=ts, rainfall=float(i % 50), soil_moisture=0.3, water_level=1.5)
            produce_readings((reading(code, i) for code, i in pairs), topic=topic)

        connection.close()  # the child must not share the parent's database connection
        t0 = time.perf_counter()
        producer = multiprocessing.get_context("fork").Process(target=produce_all)
        producer.start()
        producer.join()
        if producer.exitcode != 0:
            raise SystemExit(f"producing the readings failed (exit code {producer.exitcode})")
        produce_seconds = time.perf_counter() - t0
        total = len(steps) * len(codes)

        commits: list[tuple[float, int]] = []
        rss_mb: list[float] = []

        class Measured(ReadingsConsumer):
            def _commit(self, batch):
                super()._commit(batch)
                commits.append((time.perf_counter(), len(batch)))
                rss_mb.append(_rss_mb())
                if len(commits) == 1:
                    clock.reset()
                    cpu_marks.append(time.process_time())
                    pg_marks.append(_backend_cpu_seconds(db_name))
                if sum(n for _, n in commits) >= total:
                    self.stop()

        consumer = Measured(topic=topic, group=f"{args.topic_prefix}bench-{suffix}", batch_size=args.batch_size, batch_seconds=args.batch_seconds)
        profiler = cProfile.Profile() if args.profile else None
        cpu_marks: list[float] = []
        pg_marks: list[float] = []
        if profiler:
            profiler.enable()
        consumer.run()
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
        cpu_total = time.process_time() - cpu_marks[0]  # from the first commit, like the rate
        pg_total = _backend_cpu_seconds(db_name) - pg_marks[0]

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
    measured = total - commits[0][1]
    if measured <= 0:
        raise SystemExit(f"All {total:,} readings came in one batch: the rate counts from the first commit, so nothing "
                         f"was measured. Use more --readings or a smaller --batch-size (now {consumer.batch_size}).")
    print(f"Consumer process CPU: {cpu_total / measured * 1e6:.1f} µs/reading; its PostgreSQL backends: "
          f"{pg_total / measured * 1e6:.1f} µs/reading (together {(cpu_total + pg_total) / measured * 1e6:.1f}); "
          f"RSS after the first batch {rss_mb[0]:.0f} MB, after the last {rss_mb[-1]:.0f} MB, "
          f"peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}.")
    if args.stages:
        print()
        print("| stage | wall µs/reading | CPU µs/reading |")
        print("|---|---|---|")
        print("\n".join(sorted(clock.rows(total - commits[0][1]), key=lambda row: row.startswith("| SQL"))))
    print()
    print("Target: >= 20,000 readings/s end to end in one process.")


if __name__ == "__main__":
    main()
