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
# Consumer batches: at most this many messages or seconds. Every batch pays
# fixed costs (the COMMIT's fsync, one history query and one upsert per
# table, the sensor locks, the outbox sweep), so under backlog bigger
# batches are cheaper per reading: 5,000 -> 20,000 took the benchmark from
# ~5,500 to ~8,900 readings/s. A batch holds its sensors' row locks until
# it commits (2-3 s for 20,000 at ~8,000 readings/s), which is how long an
# analyst's acknowledge on one of those sensors can wait.
KAFKA_BATCH_SIZE = env.int("KAFKA_BATCH_SIZE", default=20000)
# Kept short: it bounds how long a lone reading waits before its batch is scored (alert latency).
KAFKA_BATCH_SECONDS = env.float("KAFKA_BATCH_SECONDS", default=0.25)
# The consumer publishes the alert outbox after each batch that wrote alert
# events, and at least this often otherwise (events from the API or admin
# whose immediate publish failed).
KAFKA_OUTBOX_SWEEP_SECONDS = env.float("KAFKA_OUTBOX_SWEEP_SECONDS", default=5.0)
# How long the API waits for the broker to acknowledge (acks=all) before 503.
KAFKA_PRODUCE_TIMEOUT_SECONDS = env.float("KAFKA_PRODUCE_TIMEOUT_SECONDS", default=5.0)
KAFKA_RETRY_AFTER_SECONDS = env.int("KAFKA_RETRY_AFTER_SECONDS", default=5)
# The consumer logs `consumer.stats` (throughput, batch sizes, lag) this often.
KAFKA_CONSUMER_STATS_SECONDS = env.float("KAFKA_CONSUMER_STATS_SECONDS", default=10.0)
# The consumer runs the stale-sensor check (and sweeps the alert outbox) this often.
KAFKA_STALE_CHECK_SECONDS = env.float("KAFKA_STALE_CHECK_SECONDS", default=60.0)
# Longest wait between retries of a batch that failed transiently (database or broker down).
KAFKA_RETRY_MAX_BACKOFF_SECONDS = env.float("KAFKA_RETRY_MAX_BACKOFF_SECONDS", default=30.0)
# The consumer keeps each of its sensors' last 73 h of readings in memory
# (predictions.windows), so scoring does not read them back from PostgreSQL:
# at most this many megabytes (16 bytes a typical row; 1,000 sensors at a
# 1-minute cadence need ~70 MB), the rest are scored from the database. Windows are re-read
# after WINDOW_CACHE_SECONDS: the bound on how long readings written behind
# the consumer's back (load_history into a live system) go unseen.
WINDOW_CACHE_MB = env.float("WINDOW_CACHE_MB", default=80.0)
WINDOW_CACHE_SECONDS = env.float("WINDOW_CACHE_SECONDS", default=600.0)
