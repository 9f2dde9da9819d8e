"""python manage.py consume_readings [--group G] [--topic T] [--batch-size N] [--batch-seconds S]"""
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from warning_system.lean_imports import xgboost_without_sklearn


# The consumer scores with xgboost.Booster only: keep scikit-learn, pandas and SciPy
# out of the process (warning_system.lean_imports; 205 -> 116 MB of RSS at start).
with xgboost_without_sklearn():
    from sensors.consumer import ReadingsConsumer


class Command(BaseCommand):
    help = "Consume sensor readings from Kafka: store, score, alert. SIGTERM/SIGINT finish the current batch and exit 0."

    def add_arguments(self, parser):
        parser.add_argument("--group", default=None, help=f"Consumer group (default KAFKA_CONSUMER_GROUP={settings.KAFKA_CONSUMER_GROUP})")
        parser.add_argument("--topic", default=None, help=f"Readings topic (default KAFKA_READINGS_TOPIC={settings.KAFKA_READINGS_TOPIC})")
        parser.add_argument("--batch-size", type=int, default=None, help=f"Most messages per batch (default {settings.KAFKA_BATCH_SIZE})")
        parser.add_argument("--batch-seconds", type=float, default=None, help=f"Longest wait to fill a batch (default {settings.KAFKA_BATCH_SECONDS})")

    def handle(self, *args, group, topic, batch_size, batch_seconds, **options):
        if not settings.KAFKA_BOOTSTRAP_SERVERS:
            raise CommandError("KAFKA_BOOTSTRAP_SERVERS is not set: in eager mode the API processes readings itself.")
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        if batch_seconds is not None and batch_seconds <= 0:
            raise CommandError("--batch-seconds must be positive")
        consumer = ReadingsConsumer(topic=topic, group=group, batch_size=batch_size, batch_seconds=batch_seconds)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: consumer.stop())
        consumer.run()
