"""Reads of alerts for the API, the pages and the admin.

Visibility is decided here, once: an API key restricted to some sensors sees
only their alerts, everywhere (lists, details, exports, actions).
"""
from __future__ import annotations

from collections.abc import Collection

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Prefetch, QuerySet

from sensors.models import Sensor, Site
from warning_system.db import fetch_rows, joined_select

from .models import Alert, AlertEvent

# The API list's row, as (key, queryset field), in AlertSerializer's field order.
LIST_COLUMNS = (
    ("id", "id"), ("sensor_id", "sensor__sensor_id"), ("site", "sensor__site__name"), ("hazard", "hazard"),
    ("level", "level"), ("source", "source"), ("status", "status"), ("message", "message"),
    ("probability", "probability"), ("peak_probability", "peak_probability"), ("value", "value"),
    ("threshold", "threshold"), ("model_version", "model_version"), ("triggered_at", "triggered_at"),
    ("last_triggered_at", "last_triggered_at"), ("acknowledged_at", "acknowledged_at"),
    ("acknowledged_by", "acknowledged_by"), ("resolved_at", "resolved_at"), ("resolved_by", "resolved_by"),
    ("resolution_reason", "resolution_reason"), ("note", "note"), ("created_at", "created_at"),
    ("updated_at", "updated_at"),
)
_LIST_KEYS = tuple(key for key, _ in LIST_COLUMNS)
_LIST_FIELDS = tuple(field for _, field in LIST_COLUMNS)


def _list_page_sql() -> str:
    """The list's columns for a page of alert ids given by a sub-select (``{ids}``), in that sub-select's order.

    Built once from the models' metadata. Compiling the filtered queryset
    with all 23 columns and two joins cost ~0.4 ms per request; compiling
    only ``values("pk")`` costs a quarter of that, and PostgreSQL looks up
    the page's rows by primary key.
    """
    columns, table, joins = joined_select(Alert, _LIST_FIELDS, {(): "a", ("sensor",): "s", ("sensor", "site"): "st"})
    return (
        f"SELECT {columns} FROM unnest(ARRAY({{ids}})) WITH ORDINALITY AS page(id, n) "
        f"JOIN {table} ON a.{connection.ops.quote_name(Alert._meta.pk.column)} = page.id {joins} ORDER BY page.n"
    )


_LIST_PAGE_SQL = _list_page_sql()


def _list_page_with_total_sql() -> str:
    """``_list_page_sql`` plus a last column, the number of matching alerts (``{total}``: the matching statement).

    Why: an uncached list was two statements, the count and the page, so two
    round trips to PostgreSQL, each waiting for its backend to be scheduled.
    The count here is an uncorrelated scalar sub-select, which PostgreSQL
    runs once (an InitPlan) with the same plan as the standalone count, and
    the page keeps its ordered index scan. (A window count over the matching
    ids was tried instead: it sorts every matching row, 28 ms instead of
    8.8 ms for the unfiltered list of 100,000 alerts.) An empty page has no
    row to carry the count; ``AlertListRows.count`` then asks separately.
    """
    head, rest = _LIST_PAGE_SQL.split(" FROM unnest(", 1)
    return f"{head}, (SELECT COUNT(*) FROM ({{total}}) AS matching) FROM unnest({rest}"


# The lists' order, newest first, and the same as SQL on the alert table (ties broken by id).
_LIST_ORDER = ("-triggered_at", "-id")
_LIST_ORDER_SQL = ", ".join(
    f"{connection.ops.quote_name(Alert._meta.db_table)}.{connection.ops.quote_name(Alert._meta.get_field(name.lstrip('-')).column)}"
    + (" DESC" if name.startswith("-") else "")
    for name in _LIST_ORDER
)
_LIST_PAGE_WITH_TOTAL_SQL = _list_page_with_total_sql()


def alerts_visible(*, sensor_ids: Collection[str] | None = None) -> QuerySet[Alert]:
    """Alerts newest first, with sensor and site joined; ``sensor_ids`` None means every sensor."""
    qs = Alert.objects.select_related("sensor", "sensor__site").order_by(*_LIST_ORDER)
    if sensor_ids is not None:
        qs = qs.filter(sensor__sensor_id__in=list(sensor_ids))
    return qs


def alerts_with_history(*, sensor_ids: Collection[str] | None = None) -> QuerySet[Alert]:
    """Visible alerts with their events (oldest first) prefetched, for detail views."""
    return alerts_visible(sensor_ids=sensor_ids).prefetch_related(
        Prefetch("events", queryset=AlertEvent.objects.order_by("at", "id"))
    )


# The filters of AlertFilterSet that _matching_from_filters composes (all of them; a test keeps it so).
_COMPOSED_FILTERS = frozenset({"status", "active", "hazard", "level", "source", "sensor_id", "site", "since", "until"})


def _matching_from_filters(filters: dict, sensor_ids: Collection[str] | None) -> tuple[str, tuple]:
    """The ids of the alerts ``AlertFilterSet`` selects with these cleaned values, as one statement.

    Why: building the filtered queryset (a clone and ``add_q`` per filter)
    and compiling it was about a third of the web CPU of an uncached alert
    list (bench/bench_api_cpu.py alerts-sensor --profile: 0.9 of 2.8 s),
    for a statement whose shape depends only on which filters are set. The
    filterset still validates the request (its errors are the API's 400s)
    and stays the only filter code of the HTML pages and the CSV export;
    ``tests/alerts/test_selectors.py`` checks that this statement selects
    exactly what the filterset's queryset selects, filter by filter and in
    combination, with and without a key's sensor restriction. A filter added
    to ``AlertFilterSet`` must be added here (the test fails until it is).
    """
    unknown = set(filters) - _COMPOSED_FILTERS
    if unknown:
        raise ValueError(f"filters not composed here: {sorted(unknown)}")
    quote = connection.ops.quote_name
    alert, sensor, site = (quote(m._meta.db_table) for m in (Alert, Sensor, Site))

    def column(table: str, model, name: str) -> str:
        return f"{table}.{quote(model._meta.get_field(name).column)}"

    where: list[str] = []
    params: list = []
    joins: list[str] = []
    for name in ("status", "hazard", "level", "source"):
        if filters.get(name):
            where.append(f"{column(alert, Alert, name)} = %s")
            params.append(filters[name])
    if filters.get("active"):
        where.append(("" if filters["active"] == "true" else "NOT ") + f"{column(alert, Alert, 'status')} = ANY(%s)")
        params.append([status.value for status in Alert.ACTIVE_STATUSES])
    if filters.get("since") is not None:
        where.append(f"{column(alert, Alert, 'triggered_at')} >= %s")
        params.append(filters["since"])
    if filters.get("until") is not None:
        where.append(f"{column(alert, Alert, 'triggered_at')} <= %s")
        params.append(filters["until"])
    if filters.get("sensor_id") or filters.get("site") or sensor_ids is not None:
        joins.append(f"INNER JOIN {sensor} ON {column(alert, Alert, 'sensor')} = {column(sensor, Sensor, 'id')}")
    if filters.get("sensor_id"):
        where.append(f"{column(sensor, Sensor, 'sensor_id')} = %s")
        params.append(filters["sensor_id"])
    if sensor_ids is not None:
        where.append(f"{column(sensor, Sensor, 'sensor_id')} = ANY(%s)")
        params.append(list(sensor_ids))
    value = filters.get("site")
    if value:
        joins.append(f"INNER JOIN {site} ON {column(sensor, Sensor, 'site')} = {column(site, Site, 'id')}")
        if value.isascii() and value.isdigit() and len(value) <= 18:  # as AlertFilterSet.filter_site
            where.append(f"({column(site, Site, 'name')} = %s OR {column(sensor, Sensor, 'site')} = %s)")
            params += [value, int(value)]
        else:
            where.append(f"{column(site, Site, 'name')} = %s")
            params.append(value)
    sql = f"SELECT {column(alert, Alert, 'id')} FROM {alert} {' '.join(joins)}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql, tuple(params)


def alert_list_rows(*, filterset, sensor_ids: Collection[str] | None) -> AlertListRows:
    """The API list's rows for a validated ``AlertFilterSet`` over ``alerts_visible(sensor_ids=sensor_ids)``.

    On PostgreSQL the matching statement is composed from the cleaned values
    (``_matching_from_filters``); elsewhere (the embedded SQLite default) the
    filterset's queryset is used as it is.
    """
    if connection.vendor != "postgresql":
        return AlertListRows(filterset.qs)
    return AlertListRows(filterset.queryset, matching=_matching_from_filters(filterset.form.cleaned_data, sensor_ids))


class AlertListRows:
    """A filtered alert queryset as the paginator sees it: countable, and sliced into plain row dicts.

    Why not the queryset and ``AlertSerializer``: a page of 50 alerts built 50
    model instances (with sensor and site), ran DRF's field machinery on 23
    fields each and parsed 6 timestamps per row in Django's pure-Python
    loader: ~13 ms of CPU per uncached request, 51 requests/s in benchmark 6.
    A page here is one query for the listed columns only (never the
    ``features`` JSON; see ``_list_page_sql``) fetched in binary by psycopg's C loaders
    (``warning_system.db.fetch_rows``) into dicts with AlertSerializer's keys
    and values; datetimes stay datetimes and are rendered like DRF's (UTC as
    ``Z``) by the caller. ``tests/alerts/test_api.py`` checks the rows equal
    AlertSerializer's output.
    """

    def __init__(self, queryset: QuerySet[Alert], *, matching: tuple[str, tuple] | None = None):
        """``matching``: the matching ids' statement when the caller composed it (else compiled from ``queryset``)."""
        self.queryset = queryset
        self.ordered = queryset.ordered  # Paginator warns about unordered lists
        self._matching = matching
        self._count: int | None = None
        self._prefetched: tuple[int, list[tuple]] | None = None  # (start, rows from start on)

    def prefetch(self, page: slice) -> None:
        """Fetch the page the caller will ask for, and the count with it, in one statement (see ``_list_page_with_total_sql``).

        The paginator then asks for the count and for this page (or its first
        rows, on the last page) and both come from here. Only for PostgreSQL
        and the list's own order; otherwise, and for a page past the end, the
        two usual statements run as before.
        """
        if connection.vendor != "postgresql" or not self._composed(page):
            return
        ids = self._page_ids_sql(page)
        if ids is None:
            rows = []
        else:
            sql, params = self._matching_sql()
            rows = fetch_rows(_LIST_PAGE_WITH_TOTAL_SQL.format(total=sql, ids=ids[0]), (*params, *ids[1]))
        if rows:
            self._count = rows[0][-1]
        elif not page.start or ids is None:
            self._count = 0
        self._prefetched = (page.start or 0, [row[:-1] for row in rows])

    def _composed(self, page: slice) -> bool:
        """Whether this page's statement is composed here (the list's own order) rather than compiled by Django."""
        return self.queryset.query.order_by == _LIST_ORDER and not self.queryset.query.distinct and page.stop is not None and page.step is None

    def _matching_sql(self) -> tuple[str, tuple] | None:
        """The filtered ids as one compiled, unordered statement (None: nothing can match).

        Compiled once for both the count and the page: compiling the filtered
        queryset is ~0.3 ms of CPU each time (bench/bench_api_cpu.py alerts-sensor).
        """
        if self._matching is None:
            try:
                self._matching = self.queryset.order_by().values("pk").query.sql_with_params()
            except EmptyResultSet:
                self._matching = ()
        return self._matching or None

    def count(self) -> int:
        if self._count is not None:
            return self._count
        if connection.vendor != "postgresql":
            return self.queryset.count()
        # QuerySet.count() goes through Query.get_aggregation, ~3x the compile cost of this
        # equivalent statement (PostgreSQL flattens the sub-select): ~0.25 ms per list.
        matching = self._matching_sql()
        if matching is None:
            return 0
        sql, params = matching
        return fetch_rows(f"SELECT COUNT(*) FROM ({sql}) AS matching", params)[0][0]

    def __len__(self) -> int:
        return self.count()

    def _page_ids_sql(self, page: slice) -> tuple[str, tuple] | None:
        """The statement of the page's ids in list order; LIMIT and OFFSET are parameters, so one statement serves every page."""
        if self._composed(page):
            matching = self._matching_sql()
            if matching is None:
                return None
            sql, params = matching
            start, stop = page.start or 0, page.stop
            return f"{sql} ORDER BY {_LIST_ORDER_SQL} LIMIT %s OFFSET %s", (*params, max(0, stop - start), start)
        try:  # another order: Django compiles the slice
            return self.queryset.values("pk")[page].query.sql_with_params()
        except EmptyResultSet:  # an empty slice, or a filter that matches nothing by construction
            return None

    def __getitem__(self, page: slice) -> list[dict]:
        if self._prefetched is not None and page.step is None and page.stop is not None:
            first, fetched = self._prefetched
            start = page.start or 0
            reaches_end = self._count is not None and first + len(fetched) >= self._count
            if start >= first and (page.stop <= first + len(fetched) or reaches_end):
                return [dict(zip(_LIST_KEYS, row)) for row in fetched[start - first:page.stop - first]]
        if connection.vendor != "postgresql":  # the embedded SQLite default: the ORM's own loaders
            rows = list(self.queryset.values_list(*_LIST_FIELDS)[page])
        else:
            ids = self._page_ids_sql(page)
            if ids is None:
                return []
            rows = fetch_rows(_LIST_PAGE_SQL.format(ids=ids[0]), ids[1])
        return [dict(zip(_LIST_KEYS, row)) for row in rows]
