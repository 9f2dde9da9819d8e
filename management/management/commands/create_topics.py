"""python manage.py create_topics [--partitions N]: the readings, alerts and dead-letter topics."""
from confluent_kafka import KafkaException
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from warning_system.kafka import ensure_topics


class Command(BaseCommand):
    help = "Create the Kafka topics (sensor.data, alerts, sensor.data.dlq); existing topics are left as they are."

    def add_arguments(self, parser):
        parser.add_argument(
            "--partitions", type=int, default=None,
            help=f"Partitions of the readings topic (default KAFKA_TOPIC_PARTITIONS={settings.KAFKA_TOPIC_PARTITIONS})",
        )

    def handle(self, *args, partitions, **options):
        if not settings.KAFKA_BOOTSTRAP_SERVERS:
            raise CommandError("KAFKA_BOOTSTRAP_SERVERS is not set (eager mode has no topics).")
        partitions = partitions or settings.KAFKA_TOPIC_PARTITIONS
        if partitions < 1:
            raise CommandError("--partitions must be at least 1")
        # Alerts and the DLQ are low-volume; their partition count only needs to
        # match the readings topic so per-sensor order can be kept downstream.
        topics = {
            settings.KAFKA_READINGS_TOPIC: partitions,
            settings.KAFKA_ALERTS_TOPIC: partitions,
            settings.KAFKA_DLQ_TOPIC: partitions,
        }
        try:
            outcome = ensure_topics(topics)
        except KafkaException as exc:
            raise CommandError(f"could not create topics: {exc}") from exc
        for name, state in outcome.items():
            self.stdout.write(f"{name}: {state}" + (f" ({topics[name]} partitions)" if state == "created" else ""))
