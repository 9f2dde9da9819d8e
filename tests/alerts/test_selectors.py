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


@pytest.fixture
def varied(sensor, make_sensor, make_alert):
    """Alerts on sensors of two sites, with every status, both hazards, several levels and sources."""
    from sensors.models import Site

    north = Site.objects.create(name="North 7", region="Test", latitude=1.0, longitude=2.0)
    other = make_sensor("SEL-2", site=north)
    levels, active = ("medium", "high", "high"), {}
    for i in range(18):
        owner, hazard = (sensor if i % 3 else other), ("flood" if i % 2 else "landslide")
        # At most one open or acknowledged alert per sensor and hazard (a database constraint).
        status = "resolved" if (owner.pk, hazard) in active or i % 4 == 0 else ("open", "acknowledged")[i % 2]
        if status != "resolved":
            active[owner.pk, hazard] = status
        make_alert(owner, hazard=hazard, level=levels[i % 3], status=status, minute=(i // 2) * 10)
    Alert.objects.filter(pk__in=list(Alert.objects.order_by("id").values_list("pk", flat=True)[::4])).update(source="threshold")
    return {"sensor": sensor, "other": other, "north": north}


COMPOSED_CASES = [
    {}, {"status": "open"}, {"status": "acknowledged"}, {"active": "true"}, {"active": "false"},
    {"hazard": "flood"}, {"level": "high"}, {"source": "threshold"}, {"sensor_id": "SEL-2"}, {"sensor_id": "NOBODY"},
    {"site": "North 7"}, {"site": "SITE-ID"}, {"site": "123456789012345678901"},
    {"since": "2026-11-26T06:30:00Z"}, {"until": "2026-11-26T08:40:00+02:00"},
    {"sensor_id": "RG-001", "hazard": "flood", "until": "2030-01-01T00:00:00Z", "active": "true"},
    {"site": "North 7", "level": "medium", "source": "model", "since": "2026-11-26T06:20:00Z", "status": "resolved"},
]


@pytest.mark.parametrize("data", COMPOSED_CASES)
@pytest.mark.parametrize("restriction", [None, ["SEL-2"], ["SEL-2", "RG-001"], []])
def test_the_composed_statement_selects_what_the_filterset_selects(varied, data, restriction):
    from alerts.selectors import alert_list_rows

    data = {k: str(varied["north"].pk) if v == "SITE-ID" else v for k, v in data.items()}
    filterset = AlertFilterSet(data, alerts_visible(sensor_ids=restriction))
    assert filterset.is_valid(), filterset.errors
    expected = list(filterset.qs.values_list("pk", flat=True))
    rows = alert_list_rows(filterset=filterset, sensor_ids=restriction)
    rows.prefetch(slice(0, 5))
    assert rows.count() == len(expected)
    assert [row["id"] for row in rows[0:5]] == expected[0:5]
    assert [row["id"] for row in rows[5:100]] == expected[5:100]


def test_every_alert_filter_is_composed_and_exercised():
    from alerts.selectors import _COMPOSED_FILTERS

    assert set(AlertFilterSet.base_filters) == _COMPOSED_FILTERS
    assert {name for case in COMPOSED_CASES for name in case} == _COMPOSED_FILTERS
