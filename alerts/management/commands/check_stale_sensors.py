"""Raise "no data" alerts for silent sensors (cron-friendly; the consumer also runs the check every minute)."""
from django.core.management.base import BaseCommand

from alerts.services import alert_events_publish_after_commit, alerts_raise_stale


class Command(BaseCommand):
    help = "Raise a no_data alert for every active sensor silent longer than STALE_SENSOR_MINUTES."

    def handle(self, *args, **options):
        raised = alerts_raise_stale()
        if raised:
            alert_events_publish_after_commit()
        self.stdout.write(f"{raised} no-data alert(s) raised.")
