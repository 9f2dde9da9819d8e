"""Fixtures for the ingestion API tests: topics on the real broker and a consumer to read them back."""
from __future__ import annotations

import time
import uuid

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from sensors import sensor_cache
from sensors.producer import producer_close

INGEST_URL = "/api/v1/sensor-data"


@pytest.fixture(autouse=True)
def _forget_sensor_statuses():
    """The sensor-status cache is process-wide; database rollbacks between tests do not reach it."""
    sensor_cache.clear()
    yield
    sensor_cache.clear()


def create_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)], operation_timeout=10)
    for future in futures.values():
        try:
            future.result(10)
        except KafkaException as exc:
            if exc.args[0].code() != exc.args[0].TOPIC_ALREADY_EXISTS:
                raise


@pytest.fixture
def readings_topic(kafka_topics):
    """A fresh readings topic on the configured broker; returns its name."""
    create_topic(kafka_topics.KAFKA_BOOTSTRAP_SERVERS, kafka_topics.KAFKA_READINGS_TOPIC)
    return kafka_topics.KAFKA_READINGS_TOPIC


def consume(bootstrap: str, topic: str, *, expected: int, timeout: float = 10.0, settle: float = 0.0) -> list:
    """Read every partition from the beginning until ``expected`` messages arrived (then ``settle`` s more) or timeout.

    Partitions are assigned directly (no consumer group join), which keeps each read well under a second.
    """
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
    })
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    messages = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if len(messages) >= expected:
                if settle <= 0:
                    break
                deadline = min(deadline, time.monotonic() + settle)
                settle = 0
            msg = consumer.poll(0.1)
            if msg is None or msg.error():
                continue
            messages.append(msg)
    finally:
        consumer.close()
    return messages


@pytest.fixture
def close_producer_after():
    """Tests that point the app at a private broker close the process producer they caused."""
    yield
    producer_close()


@pytest.fixture
def post_json(api_client):
    """POST a Python value (or raw bytes) to the ingestion endpoint with a key header."""

    def _post(body, *, key: str | None = None, content_type: str = "application/json", headers: dict | None = None, client=None):
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        extra = dict(headers or {})
        if key is not None:
            extra.setdefault("HTTP_AUTHORIZATION", f"Api-Key {key}")
        return (client or api_client).generic("POST", INGEST_URL, raw, content_type=content_type, **extra)

    return _post
