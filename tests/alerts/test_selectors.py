"""alerts.selectors.AlertListRows: the list's count and pages, composed from one compiled statement, as the ORM gives them."""
from __future__ import annotations

import pytest
from django.db import connection

from alerts.filtersets import AlertFilterSet
from alerts.models import Alert
from alerts.selectors import AlertListRows, alerts_visible

pytestmark = pytest.mark.django_db


@pytest.fixture
def many(sensor, make_sensor, make_alert):
    """23 alerts on two sensors, with ties in triggered_at (the id breaks them); one active per sensor and hazard."""
    other = make_sensor("SEL-2")
    for i in range(23):
        make_alert(sensor if i % 3 else other, hazard="flood" if i % 2 else "landslide", status="open" if i < 4 else "resolved", minute=(i // 2) * 10)
    return other


@pytest.mark.parametrize("data", [{}, {"hazard": "flood"}, {"sensor_id": "SEL-2", "active": "true"}, {"status": "resolved", "until": "2030-01-01T00:00:00Z"}, {"sensor_id": "NOBODY"}])
@pytest.mark.parametrize("restricted", [False, True])
def test_count_and_every_page_match_the_orm(many, data, restricted):
    queryset = AlertFilterSet(data, alerts_visible(sensor_ids=["SEL-2"] if restricted else None)).qs
    rows = AlertListRows(queryset)
    expected = list(queryset.values_list("pk", flat=True))
    assert rows.count() == len(expected)
    for start, stop in ((0, 5), (5, 10), (20, 25), (0, 100), (30, 40), (3, 3)):
        assert [row["id"] for row in rows[start:stop]] == expected[start:stop], (start, stop)


def test_a_list_compiles_its_filters_once_for_count_and_page(many, monkeypatch):
    assert connection.vendor == "postgresql"  # the suite runs on PostgreSQL, whose path composes the statements
    from django.db.models.sql import query as sql_query

    compiled = []
    original = sql_query.Query.sql_with_params
    monkeypatch.setattr(sql_query.Query, "sql_with_params", lambda self: compiled.append(1) or original(self))
    rows = AlertListRows(AlertFilterSet({"hazard": "flood"}, alerts_visible()).qs)
    rows.count()
    rows[0:5]
    rows[5:10]
    assert len(compiled) == 1


def test_another_order_is_paged_by_the_orm(many):
    queryset = Alert.objects.order_by("triggered_at", "id")
    assert [row["id"] for row in AlertListRows(queryset)[2:6]] == list(queryset.values_list("pk", flat=True))[2:6]


@pytest.mark.parametrize("data", [{}, {"hazard": "flood"}, {"sensor_id": "SEL-2", "active": "true"}, {"sensor_id": "NOBODY"}])
@pytest.mark.parametrize("page", [slice(0, 5), slice(20, 25), slice(0, 100), slice(30, 40)])
def test_a_prefetched_page_and_count_match_the_orm(many, data, page):
    queryset = AlertFilterSet(data, alerts_visible()).qs
    expected = list(queryset.values_list("pk", flat=True))
    rows = AlertListRows(queryset)
    rows.prefetch(page)
    assert rows.count() == len(expected)
    # The paginator asks for the page, cut at the count on the last page.
    stop = min(page.stop, len(expected)) if page.start < len(expected) else page.stop
    assert [row["id"] for row in rows[page.start:stop]] == expected[page.start:stop]
    assert [row["id"] for row in rows[page]] == expected[page]


def test_a_prefetched_page_is_one_statement_with_its_count(many, monkeypatch):
    from alerts import selectors

    statements = []
    real = selectors.fetch_rows
    monkeypatch.setattr(selectors, "fetch_rows", lambda sql, params: statements.append(sql) or real(sql, params))
    rows = AlertListRows(AlertFilterSet({"hazard": "flood"}, alerts_visible()).qs)
    rows.prefetch(slice(0, 5))
    assert rows.count() == 11
    assert len(rows[0:5]) == 5
    assert len(statements) == 1
    rows[5:10]  # another page is fetched as before
    assert len(statements) == 2


def test_a_prefetched_page_past_the_end_still_counts(many):
    rows = AlertListRows(AlertFilterSet({"hazard": "flood"}, alerts_visible()).qs)
    rows.prefetch(slice(50, 55))
    assert rows.count() == 11 and rows[50:55] == []
