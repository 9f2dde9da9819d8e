"""Test helpers for the real broker: topics, producing, reading back, and running the consumer.

The consumer runs either in a thread of the test process (fast; stopped with
``stop()``) or as a ``manage.py consume_readings`` subprocess against the
*test* database, for tests that kill or signal it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from django.conf import settings
from django.db import connection

from sensors.messages import encode_reading
from sensors.records import ReadingIn
from warning_system.kafka import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
BASE_TIME = datetime(2026, 11, 1, tzinfo=timezone.utc)


def create_test_topics(partitions: int = 3) -> None:
    ensure_topics({settings.KAFKA_READINGS_TOPIC: partitions, settings.KAFKA_DLQ_TOPIC: 1, settings.KAFKA_ALERTS_TOPIC: 1})


def make_readings(sensor_codes: Iterable[str], per_sensor: int, *, start: datetime = BASE_TIME) -> list[ReadingIn]:
    """Deterministic valid readings, one every 5 minutes per sensor."""
    readings = []
    for code in sensor_codes:
        for i in range(per_sensor):
            ts = start + timedelta(minutes=5 * i)
            readings.append(ReadingIn(sensor_id=code, timestamp=ts, received_at=ts, rainfall=float(i % 50), soil_moisture=0.3, water_level=1.5))
    return readings


def produce(messages: Iterable[tuple[bytes | None, bytes | None] | tuple[bytes | None, bytes | None, list]], *, topic: str | None = None) -> dict[int, int]:
    """Produce (key, value[, headers]), wait for every acknowledgement; returns partition -> next offset.

    End offsets come from the delivery reports rather than a ListOffsets
    request, whose answer differs between Kafka-protocol brokers.
    """
    producer = Producer({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS, "acks": "all", "linger.ms": 20})
    ends: dict[int, int] = {}
    failures: list = []

    def on_delivery(err, msg):
        if err is not None:
            failures.append(err)
        else:
            ends[msg.partition()] = max(ends.get(msg.partition(), 0), msg.offset() + 1)

    for count, item in enumerate(messages, 1):
        key, value, *rest = item
        while True:
            try:
                producer.produce(topic or settings.KAFKA_READINGS_TOPIC, key=key, value=value, headers=rest[0] if rest else None, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.1)
        if count % 10000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0 and not failures, f"broker did not acknowledge every test message: {failures[:3]}"
    return ends


def produce_readings(readings: Iterable[ReadingIn], *, topic: str | None = None) -> dict[int, int]:
    return produce((encode_reading(r) for r in readings), topic=topic)


def merge_ends(*ends: dict[int, int]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for part in ends:
        for partition, offset in part.items():
            merged[partition] = max(merged.get(partition, 0), offset)
    return merged


def read_topic(topic: str, *, expected: int, timeout: float = 20.0) -> list:
    """Every message of ``topic`` from the beginning, once ``expected`` arrived (or the timeout passed)."""
    consumer = Consumer({
        "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
        "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    metadata = consumer.list_topics(topic, timeout=10)
    consumer.assign([TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions])
    messages = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            messages.extend(m for m in consumer.consume(num_messages=1000, timeout=0.5) if not m.error())
    finally:
        consumer.close()
    return messages


def committed_offsets(*, group: str, topic: str) -> dict[int, int]:
    """partition -> committed offset of ``group`` (partitions without a commit are left out)."""
    consumer = Consumer({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS, "group.id": group, "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in committed if tp.offset >= 0}


def wait_for(condition: Callable[[], bool], *, timeout: float, interval: float = 0.2, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


class ThreadedConsumer:
    """The real ReadingsConsumer in a thread of the test process (needs a transactional test)."""

    def __init__(self, **options):
        from sensors.consumer import ReadingsConsumer

        options.setdefault("batch_seconds", 0.2)
        self.consumer = ReadingsConsumer(**options)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.consumer.run()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def __enter__(self) -> ThreadedConsumer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        self.consumer.stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "consumer thread did not stop"
        if self.error is not None:
            raise self.error


def database_url_for_subprocess() -> str:
    """DATABASE_URL of the database this test uses (pytest-django's test_<name>)."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class ConsumerProcess:
    """``manage.py consume_readings`` as a subprocess on the test database and topics."""

    def __init__(self, *, batch_size: int = 500, batch_seconds: float = 0.2, log_path: Path | None = None, env: dict | None = None):
        self.log_path = log_path or Path(f"/tmp/consumer-test-{uuid.uuid4().hex[:8]}.log")
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url_for_subprocess(),
            "KAFKA_BOOTSTRAP_SERVERS": settings.KAFKA_BOOTSTRAP_SERVERS,
            "KAFKA_READINGS_TOPIC": settings.KAFKA_READINGS_TOPIC,
            "KAFKA_DLQ_TOPIC": settings.KAFKA_DLQ_TOPIC,
            "KAFKA_ALERTS_TOPIC": settings.KAFKA_ALERTS_TOPIC,
            "KAFKA_CONSUMER_GROUP": settings.KAFKA_CONSUMER_GROUP,
            "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "KAFKA_RETRY_MAX_BACKOFF_SECONDS": "2",
            "LOG_FORMAT": "json",
            **(env or {}),
        }
        self.args = [sys.executable, "manage.py", "consume_readings", "--batch-size", str(batch_size), "--batch-seconds", str(batch_seconds)]
        self.proc: subprocess.Popen | None = None

    def start(self) -> ConsumerProcess:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
