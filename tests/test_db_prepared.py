"""warning_system.db.fetch_rows: its statements are prepared once per connection and reused; the ORM's never are."""
import pytest
from django.db import connection

from sensors.models import Site
from warning_system.db import binary_cursor, fetch_rows

pytestmark = pytest.mark.django_db


def _prepared() -> dict[str, int]:
    """Statement text -> executions (generic + custom plans) of this session's prepared statements."""
    with binary_cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        return dict(cursor.fetchall())


def test_fetch_rows_prepares_its_statement_once_and_reuses_it():
    sql = "SELECT %s::int + 41 AS answer"
    for i in range(7):
        assert fetch_rows(sql, [i]) == [(i + 41,)]
    prepared = {text: runs for text, runs in _prepared().items() if "+ 41 AS answer" in text}
    assert list(prepared.values()) == [7], prepared  # one statement, executed seven times


def test_orm_statements_stay_unprepared_and_the_connection_setting_is_restored():
    fetch_rows("SELECT 1", [])
    for _ in range(10):  # more than psycopg's default threshold of 5
        list(Site.objects.filter(name="x"))
    assert connection.connection.prepare_threshold is None  # Django's setting, put back after fetch_rows
    assert not [text for text in _prepared() if "sensors_site" in text]
