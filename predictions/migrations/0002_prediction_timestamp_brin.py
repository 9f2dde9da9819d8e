"""BRIN index on predictions.timestamp for time-range scans (PostgreSQL only)."""
from django.db import migrations

from warning_system.db import PostgresOnlySQL


class Migration(migrations.Migration):
    dependencies = [("predictions", "0001_initial")]

    operations = [
        PostgresOnlySQL(
            sql="CREATE INDEX IF NOT EXISTS prediction_timestamp_brin ON predictions_prediction USING brin (timestamp)",
            reverse_sql="DROP INDEX IF EXISTS prediction_timestamp_brin",
        ),
    ]
