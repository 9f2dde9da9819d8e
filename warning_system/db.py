"""Database helpers shared by migrations and the bulk-write hot paths."""
import psycopg
from django.db import connection, migrations


def binary_cursor() -> psycopg.Cursor:
    """A plain psycopg cursor on Django's own connection (so inside the caller's transaction).

    Django's cursor sends list parameters as text, and psycopg escapes every
    array element with a regular expression; for a batch of thousands of
    rows that dominated the consumer's write time. A plain cursor can send
    arrays in binary (``%b``), several times cheaper. PostgreSQL only.
    """
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


class PostgresOnlySQL(migrations.RunSQL):
    """RunSQL that only runs on PostgreSQL (e.g. BRIN indexes, which SQLite lacks)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
