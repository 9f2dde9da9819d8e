"""Django set up inside a benchmark process, for the in-process CPU benchmarks.

``bench_ingest_cpu.py`` and ``bench_api_cpu.py`` drive Django's WSGI handler
directly and time it with ``time.process_time()``: they need the same
settings (no DEBUG query log, any host, warnings silenced) so their figures
are comparable.
"""
from __future__ import annotations


def django_setup(*, test_db: bool) -> None:
    """``django.setup()`` for a CPU benchmark; ``test_db``: use (and keep) the test database of DATABASE_URL."""
    import logging

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment

    logging.disable(logging.WARNING)
    setup_test_environment()
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["*"]
    if test_db:
        connection.creation.create_test_db(verbosity=0, keepdb=True)
