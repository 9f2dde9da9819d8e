"""Shared confluent-kafka configuration. Broker-agnostic: any Kafka-protocol broker works."""
from __future__ import annotations

from django.conf import settings


def base_config() -> dict:
    return {"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS}


def broker_problem(timeout: float = 1.0) -> str | None:
    """None when the broker answers a metadata request within ``timeout`` seconds."""
    from confluent_kafka.admin import AdminClient

    try:
        admin = AdminClient({**base_config(), "socket.connection.setup.timeout.ms": int(timeout * 1000)})
        admin.list_topics(timeout=timeout)
    except Exception as exc:
        return f"broker unreachable: {str(exc)[:160]}"
    return None
