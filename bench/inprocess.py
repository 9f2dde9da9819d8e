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


def wsgi_call(app, start_response, *, method: str, path: str, key: str, query: str = "", body: bytes = b"") -> bytes:
    """One request through a WSGI app, as gunicorn would pass it (JSON body, API key); returns the body."""
    import io
    import sys

    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": query,
        "SERVER_NAME": "bench", "SERVER_PORT": "80", "REMOTE_ADDR": "10.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Api-Key {key}", "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    response = app(environ, start_response)
    content = b"".join(response)
    response.close()
    return content
