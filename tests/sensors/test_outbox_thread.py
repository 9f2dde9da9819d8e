"""The consumer's outbox thread: sweeps on request, on its interval, on at once while a backlog is left, and once more on close.

The drain here is a small fake (a pure callable); the real sweep against the
broker and PostgreSQL is covered by tests/alerts/test_outbox.py and the
consumer's end-to-end tests.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from sensors.consumer import OutboxThread


class FakeDrain:
    def __init__(self, results=()):
        self.calls: list[str] = []
        self.results = list(results)  # what successive drains report (events left?); then False
        self.called = threading.Event()

    def __call__(self) -> bool:
        self.calls.append(threading.current_thread().name)
        self.called.set()
        return self.results.pop(0) if self.results else False


def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@contextmanager
def running(drain, *, interval: float):
    outbox = OutboxThread(drain, interval=interval)
    outbox.start()
    try:
        yield outbox
    finally:
        outbox.close(timeout=5)


def test_a_request_sweeps_on_the_outbox_thread_not_the_callers():
    drain = FakeDrain()
    with running(drain, interval=60) as outbox:
        outbox.request()
        assert drain.called.wait(5)
        assert drain.calls == ["outbox"]


def test_without_requests_it_sweeps_every_interval():
    drain = FakeDrain()
    with running(drain, interval=0.05):
        _wait_for(lambda: len(drain.calls) >= 3)


def test_a_drain_that_left_events_is_followed_by_another_at_once():
    drain = FakeDrain(results=[True, True, False])
    with running(drain, interval=60) as outbox:
        outbox.request()
        _wait_for(lambda: len(drain.calls) == 3)
        time.sleep(0.1)
        assert len(drain.calls) == 3  # the third left nothing: it waits for the next request


def test_close_sweeps_once_more_and_stops_the_thread():
    drain = FakeDrain()
    outbox = OutboxThread(drain, interval=60)
    outbox.start()
    outbox.close(timeout=5)
    assert drain.calls == ["outbox"]
    assert not outbox._thread.is_alive()
