"""BRIN index on readings.timestamp for range scans over large tables (PostgreSQL only).

Readings arrive roughly in time order, so a BRIN index is tiny (kilobytes for
millions of rows) and lets time-range queries skip most of the table. SQLite
(the embedded default) has no BRIN; there the operation does nothing.
"""
from django.db import migrations

from warning_system.db import PostgresOnlySQL


class Migration(migrations.Migration):
    dependencies = [("sensors", "0001_initial")]

    operations = [
        PostgresOnlySQL(
            sql="CREATE INDEX IF NOT EXISTS reading_timestamp_brin ON sensors_reading USING brin (timestamp)",
            reverse_sql="DROP INDEX IF EXISTS reading_timestamp_brin",
        ),
    ]
