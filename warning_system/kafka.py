"""Shared confluent-kafka configuration. Broker-agnostic: any Kafka-protocol broker works."""
from __future__ import annotations

import logging

from django.conf import settings

logger = logging.getLogger(__name__)


def base_config() -> dict:
    return {"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS}


def producer_config(**overrides) -> dict:
    """Durable producer: acks from all in-sync replicas, idempotent (no broker-side duplicates on retry).

    ``message.timeout.ms`` bounds how long a message may wait for the broker:
    after it the delivery report fails instead of the message lingering in the
    queue and being sent long after the caller gave up on it.
    """
    timeout_ms = int(settings.KAFKA_PRODUCE_TIMEOUT_SECONDS * 1000)
    return {
        **base_config(),
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "message.timeout.ms": timeout_ms,
        **overrides,
    }


def consumer_config(*, group: str, **overrides) -> dict:
    """At-least-once consumer: offsets are committed by hand, only after the database commit."""
    return {
        **base_config(),
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": settings.KAFKA_SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": max(100, settings.KAFKA_SESSION_TIMEOUT_MS // 3),
        # An idle consumer's fetch waits at most this long for new readings. Brokers that
        # answer a fetch only at its deadline (Tansu here: 100-150 ms with librdkafka's
        # default) delay every alert by that much; 50 ms costs ~20 empty fetches a second.
        "fetch.wait.max.ms": 50,
        # Prefetch at most ~2 full batches (a message is ~250 bytes) instead of
        # librdkafka's default 64 MB: under backlog the prefetch queue stays full,
        # and the consumer's RSS budget is 300 MB.
        "queued.max.messages.kbytes": 16384,
        **overrides,
    }


def ensure_topics(topics: dict[str, int], *, timeout: float = 15.0) -> dict[str, str]:
    """Create each topic (name -> partitions) unless it exists; returns name -> "created" | "exists".

    Idempotent so deploy scripts and tests can call it every time.
    Raises ``KafkaException`` for any failure other than "already exists".
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(base_config())
    existing = set(admin.list_topics(timeout=timeout).topics)
    outcome = {name: "exists" for name in topics if name in existing}
    wanted = [
        NewTopic(name, num_partitions=partitions, replication_factor=settings.KAFKA_REPLICATION_FACTOR)
        for name, partitions in topics.items()
        if name not in existing
    ]
    if wanted:
        for name, future in admin.create_topics(wanted, request_timeout=timeout).items():
            try:
                future.result(timeout=timeout)
                outcome[name] = "created"
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
                outcome[name] = "exists"
    logger.info("kafka.topics_ensured", extra={"topics": outcome})
    return outcome


def broker_problem(timeout: float = 1.0) -> str | None:
    """None when the broker answers a metadata request within ``timeout`` seconds."""
    from confluent_kafka.admin import AdminClient

    try:
        admin = AdminClient({**base_config(), "socket.connection.setup.timeout.ms": int(timeout * 1000)})
        admin.list_topics(timeout=timeout)
    except Exception as exc:
        return f"broker unreachable: {str(exc)[:160]}"
    return None
