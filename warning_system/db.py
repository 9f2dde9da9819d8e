"""Database helpers shared by migrations, the bulk-write hot paths and the big read endpoints."""
import json

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


def bulk_create_binary(model, objs: list) -> None:
    """``model.objects.bulk_create(objs)`` in one statement of binary column arrays; sets each object's pk.

    Why: in a storm the alert stage creates hundreds of alerts and events per
    consumer batch, and Django's bulk_create prepares every value through its
    field (``get_db_prep_save``) and has psycopg quote each one into a
    multi-row VALUES text: ~0.74 s per batch of 20,000 readings under the
    profiler, a third of the stage (bench/bench_consumer.py --profile). Here
    each column goes as one binary array (``%b``) expanded by unnest(), the
    same technique as the readings and predictions writes. Same semantics
    for the models it is used on: ``auto_now``/``auto_now_add`` fields get
    the current time, JSON fields are encoded, related objects saved
    earlier in the batch supply their pks, and the new pks are set in order
    (as Django's own bulk_create relies on, RETURNING follows the insert
    order; the rows are inserted ordered by their position). No signals,
    like bulk_create. Other databases (the embedded SQLite default) use
    bulk_create.
    """
    if not objs:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs)
        return
    from django.db import models as m
    from django.utils import timezone

    meta = model._meta
    now = timezone.now()
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    columns, casts, arrays = [], [], []
    for obj in objs:
        obj._prepare_related_fields_for_save(operation_name="bulk_create")
    for field in fields:
        if isinstance(field, m.DateTimeField) and (field.auto_now or field.auto_now_add):
            values = [now] * len(objs)
            for obj in objs:
                setattr(obj, field.attname, now)
        else:
            values = [getattr(obj, field.attname) for obj in objs]
        if isinstance(field, m.JSONField):
            values = [None if v is None else json.dumps(v, cls=field.encoder) for v in values]
            cast = "jsonb"
            param = "%b::text[]"
        else:
            cast = field.db_type(connection)
            param = f"%b::{cast}[]"
        columns.append(quote(field.column))
        casts.append(f"c{len(casts)}::{cast}")
        arrays.append((param, values))
    names = ", ".join(f"c{i}" for i in range(len(columns)))
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(columns)}) "
        f"SELECT {', '.join(casts)} FROM unnest({', '.join(p for p, _ in arrays)}) WITH ORDINALITY AS u({names}, position) "
        f"ORDER BY position RETURNING {quote(meta.pk.column)}"
    )
    with connection.wrap_database_errors, binary_cursor() as cursor:
        cursor.execute(sql, [values for _, values in arrays], binary=True)
        pks = [row[0] for row in cursor.fetchall()]
    for obj, pk in zip(objs, pks, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias
