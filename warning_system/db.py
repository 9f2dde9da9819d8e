"""Database helpers shared by migrations, the bulk-write hot paths and the big read endpoints."""
import json
import struct
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait

import numpy as np
import psycopg
from django.db import connection, migrations
from psycopg.adapt import Dumper
from psycopg.postgres import types as pg_types
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


def joined_select(model, lookups, aliases: dict[tuple[str, ...], str]) -> tuple[str, str, str]:
    """SQL text for a precomposed read of ``lookups`` (Django paths like ``"sensor__site__name"``) of ``model``.

    ``aliases`` names a table alias for the model (key ``()``) and for each
    forward relation the lookups follow (``("sensor",)``, ``("sensor", "site")``).
    Returns (the column list, the model's table with its alias, the JOIN
    clauses of the relations), built from the models' metadata, so the
    statements follow the models' table and column names.
    """
    quote = connection.ops.quote_name
    metas = {(): model._meta}
    joins = []
    for path in sorted((p for p in aliases if p), key=len):
        field = metas[path[:-1]].get_field(path[-1])
        meta = metas[path] = field.related_model._meta
        joins.append(
            f"JOIN {quote(meta.db_table)} {aliases[path]} "
            f"ON {aliases[path]}.{quote(meta.pk.column)} = {aliases[path[:-1]]}.{quote(field.column)}"
        )

    def column(lookup: str) -> str:
        *hops, name = lookup.split("__")
        return f"{aliases[tuple(hops)]}.{quote(metas[tuple(hops)].get_field(name).column)}"

    return ", ".join(column(lookup) for lookup in lookups), f"{quote(model._meta.db_table)} {aliases[()]}", " ".join(joins)


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

    The statement is prepared on the connection at its first use and reused
    by name. The callers send a few fixed statements with parameters; parsing
    and planning an uncached alert list's two statements cost PostgreSQL
    ~0.75 ms, more than running them (``EXPLAIN (ANALYZE, SUMMARY)``), and a
    prepared statement lets PostgreSQL switch to a generic plan after five
    executions when it is no worse. Django sets psycopg's
    ``prepare_threshold`` to None, which disables preparation on the
    connection even for ``prepare=True``; so the threshold is set only around
    this execute (never reached: nothing is prepared automatically) and put
    back, leaving the ORM's statements unprepared as Django expects.
    ``tests/test_db_prepared.py`` checks that the statement is prepared once
    and reused. psycopg keeps at most 100 prepared statements per connection
    (least recently used are deallocated) and forgets them all on a rollback.
    Nothing here runs ``DISCARD ALL`` (the pool does not), which would drop
    the statements behind psycopg's back.
    """
    with connection.wrap_database_errors:
        cursor = binary_cursor()
        cursor.adapters.register_loader(_TIMESTAMPTZ_OID, _TIMESTAMPTZ_BINARY_LOADER)
        conn = cursor.connection
        automatic = conn.prepare_threshold
        conn.prepare_threshold = _PREPARE_ONLY_WHEN_ASKED
        try:
            with cursor:
                cursor.execute(sql, params, binary=True, prepare=True)
                return cursor.fetchall()
        finally:
            conn.prepare_threshold = automatic


# A threshold no statement reaches: only an explicit ``prepare=True`` prepares.
_PREPARE_ONLY_WHEN_ASKED = 2**62


# PostgreSQL counts timestamps in microseconds from 2000-01-01 UTC.
PG_EPOCH_US = 946_684_800 * 1_000_000

class Int8Array:
    """A 1-D numpy array sent as a binary ``bigint[]`` (or, via subclasses, another fixed-width type)."""

    __slots__ = ("values",)
    pg_type = "int8"
    dtype = ">i8"

    def __init__(self, values: np.ndarray):
        self.values = values


class Float8Array(Int8Array):
    __slots__ = ()
    pg_type = "float8"
    dtype = ">f8"


class Float4Array(Int8Array):
    """float32 values; NaN elements are turned into NULL in SQL where needed."""

    __slots__ = ()
    pg_type = "float4"
    dtype = ">f4"


class TimestamptzArray(Int8Array):
    """int64 microseconds since 2000-01-01 UTC: PostgreSQL's own timestamptz representation."""

    __slots__ = ()
    pg_type = "timestamptz"
    dtype = ">i8"


_ARRAY_HEADER = struct.Struct(">iiIii")  # ndim, has-nulls flag, element oid, length, lower bound


class NumpyArrayDumper(Dumper):
    """PostgreSQL's binary array format, built by numpy in one pass instead of per element.

    psycopg's list dumper calls a Python function per element (about a
    microsecond each, ten columns per prediction row); here every element is
    (int32 length = 8, 8 big-endian bytes), one structured numpy array.
    No NULLs: float columns carry NaN and the SQL turns it into NULL where
    needed.
    """

    format = Format.BINARY
    element_oid = 0
    dtype = ">i8"

    def dump(self, obj: Int8Array) -> bytes:
        values = obj.values
        body = np.empty(len(values), dtype=[("size", ">i4"), ("value", self.dtype)])
        body["size"] = np.dtype(self.dtype).itemsize
        body["value"] = values
        return _ARRAY_HEADER.pack(1, 0, self.element_oid, len(values), 1) + body.tobytes()


def _dumper_for(array_class: type[Int8Array]) -> type[NumpyArrayDumper]:
    info = pg_types[array_class.pg_type]
    return type(
        f"_{array_class.pg_type.capitalize()}ArrayDumper", (NumpyArrayDumper,),
        {"oid": info.array_oid, "element_oid": info.oid, "dtype": array_class.dtype},
    )


_ARRAY_DUMPERS = {cls: _dumper_for(cls) for cls in (Int8Array, Float8Array, Float4Array, TimestamptzArray)}


def numpy_cursor():
    cursor = binary_cursor()
    for cls, dumper in _ARRAY_DUMPERS.items():
        cursor.adapters.register_dumper(cls, dumper)
    return cursor


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


class Overlap:
    """Statements sent on this thread's connection by a helper thread, while this thread's Python goes on.

    Why: a consumer batch alternates PostgreSQL work (insert the readings,
    upsert the predictions) and Python work (features and XGBoost, the alert
    rules), and ran them one after the other: on 2 cores the database's
    core idled while Python ran and the other way round. A statement
    submitted here runs in the transaction of the submitting thread (the
    same psycopg connection: psycopg serialises the connection's operations
    on its lock, and releases the GIL while it waits for the server), and its
    result, or its error translated to Django's exceptions, is collected with
    ``result()``. Statements run in submission order. Cursors are created by
    the caller, in its own thread, so they are on its connection.

    Use as a context manager inside the transaction: leaving it waits for
    every statement still running, so nothing is still in flight when the
    transaction commits or rolls back. When the block failed because a
    submitted statement failed (the connection then reports "current
    transaction is aborted" to everything after it), the statement's own
    error is raised instead, so the caller sees e.g. the ``DataError`` that
    says which data PostgreSQL refused (``sensors.consumer`` dead-letters it).
    """

    _executor: ThreadPoolExecutor | None = None
    _executor_lock = threading.Lock()

    def __init__(self):
        self._futures: list[Future] = []

    @classmethod
    def _pool(cls) -> ThreadPoolExecutor:
        with cls._executor_lock:
            if cls._executor is None:
                cls._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-overlap")
            return cls._executor

    def submit(self, cursor: psycopg.Cursor, sql: str, params, *, fetch: bool = False) -> Future:
        """Run ``cursor.execute(sql, params, binary=True)`` in the helper thread; the result is ``fetchall()`` if ``fetch``, else the row count."""
        future = self._pool().submit(_execute, cursor, sql, params, fetch)
        self._futures.append(future)
        return future

    @staticmethod
    def result(future: Future):
        """The statement's rows (or row count), raising its error as Django's database exception."""
        with connection.wrap_database_errors:
            return future.result()

    def __enter__(self) -> "Overlap":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        wait(self._futures)
        failed = next((f.exception() for f in self._futures if f.exception() is not None), None)
        self._futures.clear()
        if failed is None:
            return
        if exc is None or not _caused_by(exc, failed):
            with connection.wrap_database_errors:
                raise failed


def _execute(cursor: psycopg.Cursor, sql: str, params, fetch: bool):
    with cursor:
        cursor.execute(sql, params, binary=True)
        return cursor.fetchall() if fetch else cursor.rowcount


def execute_now(cursor: psycopg.Cursor, sql: str, params, *, fetch: bool = False) -> Future:
    """``Overlap.submit`` run in this thread: a done Future (for callers that have nothing to overlap)."""
    future: Future = Future()
    try:
        future.set_result(_execute(cursor, sql, params, fetch))
    except Exception as exc:
        future.set_exception(exc)
    return future


def _caused_by(exc: BaseException, cause: BaseException) -> bool:
    while exc is not None:
        if exc is cause:
            return True
        exc = exc.__cause__
    return False
