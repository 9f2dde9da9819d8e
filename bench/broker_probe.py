"""Broker CPU per consumed message while a drain is watched, by how it is watched.

Why: benchmark 4 once ran at 19,716 readings/s with the private Tansu broker
at ~40 % of a core, while an in-process drain of the same size (4b) left it
at 1-2 %. The difference was the harness: it polled the consumer group's lag
every 0.25 s, and the high watermarks (ListOffsets) make Tansu walk its
stored batches. This probe reproduces that on a fresh private broker:

1. produce ``--messages`` readings-sized JSON messages keyed by sensor, as the
   API does (lz4, linger 10 ms), plus ``--small`` in batches of four (the
   single-reading benchmarks leave many small batches);
2. consume ``--drain`` of them at ``--rate`` messages/s three times: unwatched,
   watched with committed offsets only, and watched with committed offsets
   plus watermarks; print the broker's CPU per consumed message for each.

    python bench/broker_probe.py [--messages 2000000] [--small 100000] [--drain 400000] [--rate 20000]
"""
from __future__ import annotations

import argparse
import socket
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

import services as svc  # noqa: E402  (scripts/services.py)
from bench.lib import cpu_seconds  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

PARTITIONS = 6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def message(i: int) -> tuple[bytes, bytes]:
    sensor = f"BN-{i % 1000:05d}"
    value = (
        '{"v":1,"sensor_id":"%s","timestamp":"2026-12-07T%02d:%02d:%02d+00:00","rainfall":%.2f,"soil_moisture":%.4f,'
        '"water_level":%.3f,"received_at":"2026-12-07T05:00:00.%06d+00:00"}'
        % (sensor, (i // 3600) % 24, (i // 60) % 60, i % 60, (i * 7919 % 1000) / 10, (i * 104729 % 10000) / 10000,
           (i * 31 % 5000) / 1000, i % 1000000)
    )
    return sensor.encode(), value.encode()


def produce(bootstrap: str, topic: str, count: int, *, small: bool) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1 if small else 10, "compression.type": "lz4",
                         "acks": "all", "enable.idempotence": True})
    for i in range(count):
        key, value = message(i)
        while True:
            try:
                producer.produce(topic, value, key=key)
                break
            except BufferError:
                producer.poll(0.01)
        if small and i % 4 == 3:
            producer.flush()
        elif i % 1000 == 999:
            producer.poll(0)
    producer.flush()


def drain(bootstrap: str, topic: str, broker_pid: int, *, count: int, rate: int, watch: str) -> float:
    """Consume ``count`` messages at ``rate``/s; returns the broker's CPU µs per message."""
    group = "probe-" + uuid.uuid4().hex[:8]
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "fetch.wait.max.ms": 50, "queued.max.messages.kbytes": 16384})
    consumer.subscribe([topic])
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    got, started, cpu_start, next_watch = 0, None, 0.0, 0.0
    while got < count:
        batch = consumer.consume(5000, 0.25)
        if batch and started is None:
            started, cpu_start = time.monotonic(), cpu_seconds([broker_pid])
        got += len(batch)
        if batch:
            consumer.commit(asynchronous=True)
        if watch != "none" and time.monotonic() >= next_watch:
            next_watch = time.monotonic() + 0.25
            for tp in reader.committed(partitions, timeout=10):
                if watch == "watermarks":
                    reader.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
        if started is not None:
            due = started + got / rate
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
    used = cpu_seconds([broker_pid]) - cpu_start
    reader.close()
    consumer.close()
    return 1e6 * used / got


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--drain", type=int, default=400_000)
    parser.add_argument("--rate", type=int, default=20_000)
    args = parser.parse_args()
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    broker = svc.start_broker("127.0.0.1", port, log_path="/tmp/broker-probe.log")
    try:
        topic = "probe-" + uuid.uuid4().hex[:8]
        admin = AdminClient({"bootstrap.servers": bootstrap})  # kept referenced until the futures resolve
        for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
            future.result()
        produce(bootstrap, topic, args.messages, small=False)
        produce(bootstrap, topic, args.small, small=True)
        print(f"Tansu holding {args.messages + args.small:,} messages ({args.small:,} in batches of 4); "
              f"draining {args.drain:,} at {args.rate:,}/s, polling every 0.25 s:")
        print("| watching the drain with | broker CPU µs per consumed message |")
        print("|---|---|")
        for watch in ("none", "committed", "watermarks"):
            print(f"| {watch} | {drain(bootstrap, topic, broker.pid, count=args.drain, rate=args.rate, watch=watch):.1f} |", flush=True)
    finally:
        svc.stop(broker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
