"""At most a few requests of a worker run Python at once; the rest wait their turn in order.

Why: a gunicorn worker has many threads (``GUNICORN_THREADS``, 32) so that
ingestion requests can wait for the broker's acknowledgement (~5-10 ms each)
side by side. But the threads share one GIL, and requests that are busy on
the CPU (reads of 500 readings, alert lists, predictions) gain nothing from
running together: they interleave at every database or Redis round trip and
every 5 ms switch interval, evict each other's caches and wake each other
through futexes. Measured with benchmark 6 (10 connections on 2 workers):
the web CPU of a readings page was 1.9 ms with 5 requests per worker running
at once and 1.1-1.2 ms with one, and the throughput 716 against 1,239-1,304
pages/s (docs/benchmarks.md, "CPU slots"). Fewer threads alone would do the
same for reads but starve ingestion, whose requests mostly wait.

So each worker hands out ``WEB_CPU_SLOTS`` slots (2: one request on the CPU
while the other waits on PostgreSQL or Redis). A request takes a slot before
Django runs (after ``RequestBodyDeadline`` has read its body, so a slow
client never holds one) and gives it back when Django returns its response
(a streamed CSV export is written out without one). Waiting requests get
slots strictly first come, first served, which also keeps the latency tail
short. Code that blocks for long on something other than this process's CPU
gives its slot back meanwhile (``released()``): the ingestion request while
the broker acknowledges its readings. A request that waits longer than
``WEB_CPU_SLOT_WAIT_SECONDS`` for a slot is answered 503 with
``Retry-After`` (the worker is overloaded; devices retry, and a retried
reading is stored once). The health check never waits for a slot: it must
answer while the worker is busy, and its checks are bounded by their own
timeouts.

Cost: an uncontended slot is a lock acquire and release (~1 µs); a contended
one is a hand-off through a per-waiter lock. Outside a slot (tests, the
consumer, management commands) ``released()`` does nothing.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

_BUSY_BODY = b'{"detail": "The server is busy; retry after the delay in Retry-After."}'


class FifoSlots:
    """A counting semaphore that grants waiting threads in arrival order.

    ``threading.Semaphore`` lets a newly arriving thread take a freed slot
    before a thread that has waited longer; under load that puts a few
    unlucky requests far out in the tail. Here ``release`` hands the slot
    directly to the oldest waiter, so ``free > 0`` only while nobody waits.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("FifoSlots needs at least one slot")
        self.size = size
        self._lock = threading.Lock()
        self._free = size
        self._waiters: deque[threading.Lock] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def acquire(self, timeout: float | None = None) -> bool:
        """Take a slot, waiting in line up to ``timeout`` seconds (None: no limit); False if none came."""
        with self._lock:
            if self._free:
                self._free -= 1
                return True
            waiter = threading.Lock()
            waiter.acquire()
            self._waiters.append(waiter)
        if waiter.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            return True
        with self._lock:
            try:
                self._waiters.remove(waiter)
            except ValueError:
                return True  # handed a slot between the timeout and this lock: it is ours
            return False

    def release(self) -> None:
        with self._lock:
            if self._waiters:
                self._waiters.popleft().release()  # the slot passes on; the count stays
            else:
                self._free += 1


_held = threading.local()


@contextmanager
def released() -> Iterator[None]:
    """Give this thread's slot back while it blocks on something other than the CPU, then queue for one again."""
    slots: FifoSlots | None = getattr(_held, "slots", None)
    if slots is None:
        yield
        return
    _held.slots = None
    slots.release()
    try:
        yield
    finally:
        slots.acquire()
        _held.slots = slots


class CpuSlotGate:
    """WSGI middleware: run the application only while holding one of the worker's slots (see the module)."""

    def __init__(self, app, *, slots: int, wait_seconds: float, exempt_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.slots = FifoSlots(slots) if slots > 0 else None
        self.wait_seconds = wait_seconds
        self.exempt_paths = exempt_paths

    def __call__(self, environ, start_response):
        slots = self.slots
        if slots is None or environ.get("PATH_INFO") in self.exempt_paths:
            return self.app(environ, start_response)
        if not slots.acquire(self.wait_seconds):
            logger.warning("http.cpu_slot_timeout", extra={"path": environ.get("PATH_INFO"), "waiting": slots.waiting, "wait_seconds": self.wait_seconds})
            start_response("503 Service Unavailable", [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(_BUSY_BODY))),
                ("Retry-After", "1"),
            ])
            return [_BUSY_BODY]
        _held.slots = slots
        try:
            return self.app(environ, start_response)
        finally:
            _held.slots = None
            slots.release()
