"""warning_system.gunicorn_worker: kept-alive connections are spread evenly over the workers,
and a worker that cannot take connections never stops the others from taking them."""
from __future__ import annotations

import collections
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from warning_system.gunicorn_worker import should_defer

ROOT = Path(__file__).resolve().parents[2]


def test_a_worker_defers_only_to_a_worker_holding_fewer_connections():
    assert should_defer(3, [2, 5]) is True
    assert should_defer(2, [2, 5]) is False  # ties race, as gthread does
    assert should_defer(9, []) is False  # alone: always accept


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server():
    """gunicorn with two balanced workers serving tests/deploy/pid_app.py; yields (port, worker pids)."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests' / 'deploy'}")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-c", "/dev/null", "--workers", "2", "--threads", "4",
         "--worker-class", "warning_system.gunicorn_worker.BalancedThreadWorker", "--bind", f"127.0.0.1:{port}", "pid_app:application"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        workers: set[int] = set()
        while len(workers) < 2:  # both workers booted and serving
            assert time.monotonic() < deadline, "gunicorn did not start two workers"
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            workers = {int(pid) for pid in children.read_text().split()} if children.exists() else set()
            time.sleep(0.2)
        for _ in range(20):  # each worker has claimed its slot once it answers
            try:
                _get(port)
                break
            except OSError:
                time.sleep(0.2)
        yield port, workers
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)


def _get(port: int, conn: http.client.HTTPConnection | None = None) -> tuple[http.client.HTTPConnection, int]:
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/")
    return conn, int(conn.getresponse().read())


def test_kept_alive_connections_are_spread_evenly_over_the_workers(server):
    port, workers = server
    for opening in ("one after another", "all at once"):
        if opening == "all at once":
            conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(12)]
            for conn in conns:
                conn.connect()
            served = [_get(port, conn)[1] for conn in conns]
        else:
            conns, served = zip(*(_get(port) for _ in range(12)))
        counts = collections.Counter(served)
        assert set(counts) == workers and max(counts.values()) - min(counts.values()) <= 1, (opening, counts)
        for conn in conns:
            conn.close()
        time.sleep(0.3)  # the workers see the closes before the next round


def test_a_stopped_worker_does_not_keep_new_connections_waiting(server):
    port, workers = server
    stopped, running = sorted(workers)
    os.kill(stopped, signal.SIGSTOP)  # alive, holding no connection, taking none
    try:
        started = time.monotonic()
        conns, served = zip(*(_get(port) for _ in range(6)))
        took = time.monotonic() - started
        assert set(served) == {running}
        assert took < 2.0, took  # each waited at most a few ms for the stopped worker
        for conn in conns:
            conn.close()
    finally:
        os.kill(stopped, signal.SIGCONT)
