"""Database helpers shared by migrations, the bulk-write hot paths and the big read endpoints."""
import psycopg
from django.db import connection, migrations
from psycopg.pq import Format

# psycopg's own (C, with psycopg-binary) loader for binary timestamptz values.
_TIMESTAMPTZ_OID = psycopg.postgres.types["timestamptz"].oid
_TIMESTAMPTZ_BINARY_LOADER = psycopg.adapters.get_loader(_TIMESTAMPTZ_OID, Format.BINARY)


def binary_cursor() -> psycopg.Cursor:
    """A plain psycopg cursor on Django's own connection (so inside the caller's transaction).

    Django's cursor sends list parameters as text, and psycopg escapes every
    array element with a regular expression; for a batch of thousands of
    rows that dominated the consumer's write time. A plain cursor can send
    arrays in binary (``%b``), several times cheaper. PostgreSQL only.
    """
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def fetch_rows(sql: str, params: list | tuple) -> list[tuple]:
    """Rows of a read query, loaded from PostgreSQL's binary format by psycopg's C loaders.

    Django registers its own timestamptz loader on every connection (to attach
    its tzinfo): a pure-Python subclass that parses the text form, ~10 µs per
    value. A 500-row readings page has 1,000 timestamps, so that alone cost
    ~5 ms of CPU per request; with psycopg's C loader on binary results,
    fetching and encoding the 500 rows costs ~0.7 ms instead of ~5.4 ms (the
    whole request: 7.4 -> ~2 ms, bench/bench_api_cpu.py readings). Datetimes come back in the session's
    time zone, which Django keeps at UTC (USE_TZ), so they render exactly as
    the ORM's did. Raises Django's database exceptions. PostgreSQL only.
    """
    with connection.wrap_database_errors:
        cursor = binary_cursor()
        cursor.adapters.register_loader(_TIMESTAMPTZ_OID, _TIMESTAMPTZ_BINARY_LOADER)
        with cursor:
            cursor.execute(sql, params, binary=True)
            return cursor.fetchall()


class PostgresOnlySQL(migrations.RunSQL):
    """RunSQL that only runs on PostgreSQL (e.g. BRIN indexes, which SQLite lacks)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
