"""Kafka: where readings and alert events flow.

With ``KAFKA_BOOTSTRAP_SERVERS`` empty the system runs *eager*: the API calls
the same pipeline function the consumer uses, in-process, and answers after
the database commit. Any Kafka-protocol broker works (plain confluent-kafka).
"""
from .env import env

KAFKA_BOOTSTRAP_SERVERS = env.str("KAFKA_BOOTSTRAP_SERVERS", default="")
PIPELINE_EAGER = not KAFKA_BOOTSTRAP_SERVERS

KAFKA_READINGS_TOPIC = env.str("KAFKA_READINGS_TOPIC", default="sensor.data")
KAFKA_ALERTS_TOPIC = env.str("KAFKA_ALERTS_TOPIC", default="alerts")
KAFKA_DLQ_TOPIC = env.str("KAFKA_DLQ_TOPIC", default="sensor.data.dlq")
KAFKA_TOPIC_PARTITIONS = env.int("KAFKA_TOPIC_PARTITIONS", default=6)
KAFKA_REPLICATION_FACTOR = env.int("KAFKA_REPLICATION_FACTOR", default=1)
KAFKA_CONSUMER_GROUP = env.str("KAFKA_CONSUMER_GROUP", default="warning-system-readings")
KAFKA_SESSION_TIMEOUT_MS = env.int("KAFKA_SESSION_TIMEOUT_MS", default=10000)
KAFKA_BATCH_SIZE = env.int("KAFKA_BATCH_SIZE", default=5000)
KAFKA_BATCH_SECONDS = env.float("KAFKA_BATCH_SECONDS", default=0.5)
# How long the API waits for the broker to acknowledge (acks=all) before 503.
KAFKA_PRODUCE_TIMEOUT_SECONDS = env.float("KAFKA_PRODUCE_TIMEOUT_SECONDS", default=5.0)
KAFKA_RETRY_AFTER_SECONDS = env.int("KAFKA_RETRY_AFTER_SECONDS", default=5)
