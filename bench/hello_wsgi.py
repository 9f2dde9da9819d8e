"""A hello-world WSGI app: the server floor of benchmark 5 (``bench/run.py``).

``make bench`` serves it with the same gunicorn configuration as the API
(``gunicorn.conf.py``: worker class, workers, threads, hooks) and sends it
benchmark 5's closed loop. It reads the body and answers a fixed JSON object,
so its latency and throughput are what gunicorn and the machine give before
Django, the models or Redis do any work: no application served this way can
do better. Django is set up because the configuration's hooks (URLconf
preload, worker warm-up) expect it.
"""
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "warning_system.settings")
django.setup()

BODY = b'{"ok":true}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    environ["wsgi.input"].read()
    start_response("200 OK", HEADERS)
    return [BODY]
