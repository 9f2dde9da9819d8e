"""A total deadline for receiving a request body (slow-loris defence).

gunicorn's threaded workers wait for a request to *start* without tying up a
thread, but once a request has begun its body is read with blocking socket
calls and no time limit: a client trickling a body a byte at a time holds a
worker thread for as long as it likes, and a handful of such clients starve
every station posting readings. This WSGI middleware reads the (bounded,
<= DATA_UPLOAD_MAX_MEMORY_SIZE) body before the application runs, under a
total deadline enforced by one shared watchdog thread: when the deadline
passes, the watchdog shuts the socket's read side, the pending recv returns,
and the client gets ``408 Request Timeout`` with ``Connection: close``.

Cost on the hot path: a heap push and pop under a lock per request with a
body (a few microseconds); no thread per request. Larger bodies are left to
Django, which answers 413 without reading them. Outside gunicorn (no
``gunicorn.socket`` in the environ: runserver, tests) it does nothing.
"""
from __future__ import annotations

import heapq
import io
import itertools
import logging
import socket
import threading
import time

logger = logging.getLogger(__name__)

_TIMEOUT_BODY = b'{"detail": "The request body was not received in time."}'


class _Watchdog:
    """Shuts the read side of sockets whose deadline passed; one thread per process."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, socket.socket] = {}
        self._expired: set[int] = set()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, seconds: float) -> int:
        token = next(self._ids)
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                # Started lazily so it is created after gunicorn forks the worker.
                self._thread = threading.Thread(target=self._run, name="body-deadline", daemon=True)
                self._thread.start()
            self._live[token] = sock
            heapq.heappush(self._heap, (time.monotonic() + seconds, token))
            if self._heap[0][1] == token:
                self._cond.notify()
        return token

    def release(self, token: int) -> bool:
        """Stop watching; True when the deadline had already fired."""
        with self._cond:
            self._live.pop(token, None)
            if token in self._expired:
                self._expired.discard(token)
                return True
            return False

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                deadline, token = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
                sock = self._live.pop(token, None)
                if sock is None:
                    continue  # released in time
                self._expired.add(token)
            try:
                sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass


_watchdog = _Watchdog()


class RequestBodyDeadline:
    def __init__(self, app, *, seconds: float, max_bytes: int):
        self.app = app
        self.seconds = seconds
        self.max_bytes = max_bytes

    def __call__(self, environ, start_response):
        sock = environ.get("gunicorn.socket")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if sock is None or length <= 0 or length > self.max_bytes:
            return self.app(environ, start_response)
        token = _watchdog.watch(sock, self.seconds)
        try:
            body = environ["wsgi.input"].read(length)
        except Exception:  # the client went away or the watchdog closed the read side
            body = b""
        expired = _watchdog.release(token)
        if len(body) < length:
            logger.warning("http.body_timeout", extra={"expected": length, "received": len(body), "deadline_fired": expired})
            start_response("408 Request Timeout", [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(_TIMEOUT_BODY))),
                ("Connection", "close"),
            ])
            return [_TIMEOUT_BODY]
        environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)
