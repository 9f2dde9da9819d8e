"""A real gunicorn with production settings: security headers, secure cookies, and a slow-loris body.

gunicorn runs with the repository's gunicorn.conf.py (gthread workers) on a
free port, against the test database, with production settings.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.kafka_utils import ROOT, database_url_for_subprocess

pytestmark = pytest.mark.django_db(transaction=True)

WORKER_TIMEOUT = 5  # seconds; the config's 30 s would make the test slow, the mechanism is the same


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def production_server(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "ALLOWED_HOSTS", "SECRET_KEY")}
    env.update(
        DJANGO_SETTINGS_MODULE="warning_system.settings.production", SECRET_KEY="security-test-" + "k" * 60,
        ALLOWED_HOSTS="127.0.0.1,warn.example.org", DATABASE_URL=database_url_for_subprocess(),
        GUNICORN_WORKERS="1", GUNICORN_THREADS="2", STATIC_ROOT=str(tmp_path / "static"),
        REQUEST_BODY_TIMEOUT_SECONDS="3",
    )
    # Production serves hashed static files from a manifest, as the Docker image builds it.
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=180)
    log = open(tmp_path / "gunicorn.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "-b", f"127.0.0.1:{port}", "--timeout", str(WORKER_TIMEOUT),
         "warning_system.wsgi:application"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(_request(url + "/api/v1/health"), timeout=2)
            break
        except urllib.error.HTTPError:
            break  # any HTTP answer means it is up
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()[-3000:]
            time.sleep(0.3)
    yield url, port
    process.terminate()
    process.wait(30)


def _request(url: str, **headers) -> urllib.request.Request:
    return urllib.request.Request(url, headers={"X-Forwarded-Proto": "https", "Host": "127.0.0.1", **headers})


def _get(url: str):
    try:
        return urllib.request.urlopen(_request(url), timeout=10)
    except urllib.error.HTTPError as exc:
        return exc


def test_production_responses_carry_the_security_headers_and_secure_cookies(production_server):
    url, _ = production_server
    for path in ("/api/v1/health", "/accounts/login/", "/api/v1/sensors"):
        headers = _get(url + path).headers
        assert headers["Strict-Transport-Security"].startswith("max-age=31536000"), path
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["X-Frame-Options"] == "DENY", path
        assert headers["Referrer-Policy"] == "same-origin", path
    login = _get(url + "/accounts/login/")
    assert login.status == 200
    cookie = "; ".join(login.headers.get_all("Set-Cookie") or [])
    assert "csrftoken=" in cookie and "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


@pytest.mark.parametrize("path", ["/api/v1/sensor-data", "/api/v1/predictions"])
def test_fast_path_endpoints_answer_with_the_same_security_headers(production_server, path):
    """The two API-key endpoints skip most middleware (warning_system.middleware); their headers must not."""
    url, _ = production_server
    request = _request(url + path, **{"Authorization": "Api-Key not-a-key", "Content-Type": "application/json"})
    request.data, request.method = b"{}", "POST"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    headers = refused.value.headers
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"


def test_plain_http_is_redirected_to_https(production_server):
    url, _ = production_server
    request = urllib.request.Request(url + "/accounts/login/", headers={"Host": "127.0.0.1"})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.build_opener(NoRedirect).open(request, timeout=10)
    assert answer.value.code == 301 and answer.value.headers["Location"].startswith("https://")


def test_slow_loris_body_is_cut_off_and_other_clients_are_still_served(production_server):
    url, port = production_server
    slow = []
    for _ in range(3):  # more slow clients than the worker has threads
        sock = socket.create_connection(("127.0.0.1", port), timeout=WORKER_TIMEOUT * 6)
        sock.sendall(b"POST /api/v1/sensor-data HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Proto: https\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n[")
        slow.append(sock)
    started = time.monotonic()
    closed = [False] * len(slow)
    served_meanwhile = 0
    while not all(closed) and time.monotonic() - started < WORKER_TIMEOUT * 6:
        for i, sock in enumerate(slow):
            if closed[i]:
                continue
            try:
                sock.sendall(b" ")  # one byte per round: far below any useful rate
            except OSError:
                closed[i] = True
        if _get(url + "/api/v1/health").status < 500:
            served_meanwhile += 1
        time.sleep(1)
    elapsed = time.monotonic() - started
    for sock in slow:
        sock.close()
    print(f"\n[slow-loris] closed={closed} after {elapsed:.1f} s, other requests served meanwhile: {served_meanwhile}")
    assert served_meanwhile > 0, "the slow clients starved everyone else"
    assert all(closed), f"the server kept trickling connections open for {elapsed:.0f} s"
