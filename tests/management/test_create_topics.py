"""create_topics: makes the readings, alerts and dead-letter topics; running it again changes nothing."""
from io import StringIO

import pytest
from confluent_kafka.admin import AdminClient
from django.core.management import CommandError, call_command


def _partitions(settings) -> dict[str, int]:
    topics = AdminClient({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS}).list_topics(timeout=10).topics
    wanted = (settings.KAFKA_READINGS_TOPIC, settings.KAFKA_ALERTS_TOPIC, settings.KAFKA_DLQ_TOPIC)
    return {name: len(topics[name].partitions) for name in wanted if name in topics}


def test_create_topics_creates_all_three_and_is_idempotent(kafka_topics):
    first, second = StringIO(), StringIO()
    call_command("create_topics", "--partitions", "4", stdout=first)
    call_command("create_topics", "--partitions", "4", stdout=second)

    names = (kafka_topics.KAFKA_READINGS_TOPIC, kafka_topics.KAFKA_ALERTS_TOPIC, kafka_topics.KAFKA_DLQ_TOPIC)
    assert _partitions(kafka_topics) == dict.fromkeys(names, 4)
    assert all(f"{name}: created (4 partitions)" in first.getvalue() for name in names)
    assert all(f"{name}: exists" in second.getvalue() for name in names)


def test_create_topics_defaults_to_the_configured_partitions(kafka_topics):
    kafka_topics.KAFKA_TOPIC_PARTITIONS = 2
    call_command("create_topics", stdout=StringIO())
    assert _partitions(kafka_topics)[kafka_topics.KAFKA_READINGS_TOPIC] == 2


def test_create_topics_refuses_eager_mode(settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    with pytest.raises(CommandError, match="KAFKA_BOOTSTRAP_SERVERS"):
        call_command("create_topics", stdout=StringIO())
