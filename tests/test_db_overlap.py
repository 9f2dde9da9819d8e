"""warning_system.db.Overlap: statements sent by a helper thread run in the caller's transaction, in order,
and a failed one is reported as itself (the consumer dead-letters data PostgreSQL refuses by its error)."""
from concurrent.futures import wait

import pytest
from django.db import DataError, connection, transaction

from sensors.models import Site
from warning_system.db import Overlap, binary_cursor

pytestmark = pytest.mark.django_db(transaction=True)


def _count_sites() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM sensors_site")
        return cursor.fetchone()[0]


def test_overlapped_statements_run_in_order_in_the_callers_transaction_and_roll_back_with_it():
    insert = "INSERT INTO sensors_site (name, region, description) VALUES (%s, 'R', '')"
    with pytest.raises(RuntimeError), transaction.atomic():
        with Overlap() as overlap:
            first = overlap.submit(binary_cursor(), insert, ["A"])
            second = overlap.submit(binary_cursor(), "SELECT count(*) FROM sensors_site WHERE name = 'A'", [], fetch=True)
            assert Overlap.result(first) == 1  # the row count
            assert Overlap.result(second) == [(1,)]  # ran after the first, saw its row
        assert _count_sites() == 1  # this thread's connection sees the helper's row: one transaction
        raise RuntimeError("roll back")
    assert _count_sites() == 0


def test_a_failed_overlapped_statement_is_raised_as_itself_not_as_the_aborted_transaction_after_it():
    with pytest.raises(DataError) as raised, transaction.atomic():
        with Overlap() as overlap:
            failing = overlap.submit(binary_cursor(), "SELECT 1 / (%s - 1)", [1])  # division by zero: SQLSTATE 22012
            wait([failing])
            Site.objects.count()  # waits for the connection, then fails: "current transaction is aborted"
    assert raised.value.__cause__.sqlstate == "22012"


def test_leaving_an_overlap_waits_for_statements_nobody_asked_the_result_of():
    with transaction.atomic():
        with Overlap() as overlap:
            overlap.submit(binary_cursor(), "SELECT pg_sleep(0.2)", [])
            overlap.submit(binary_cursor(), "INSERT INTO sensors_site (name, region, description) VALUES ('B', 'R', '')", [])
    assert _count_sites() == 1  # committed after both ran

    with pytest.raises(DataError), transaction.atomic():
        with Overlap() as overlap:
            overlap.submit(binary_cursor(), "SELECT 1 / 0", [])
    assert _count_sites() == 1
