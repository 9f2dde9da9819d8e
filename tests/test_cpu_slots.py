"""warning_system.cpu_slots: a worker runs at most WEB_CPU_SLOTS requests at once, first come first served,
and an overloaded worker says so. That an ingestion request gives its slot back while the broker
acknowledges is tested with the real broker in tests/sensors/test_producer_slots.py."""
from __future__ import annotations

import threading
import time

import orjson

from warning_system import cpu_slots
from warning_system.cpu_slots import CpuSlotGate, FifoSlots


def _wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def _call(app, path: str = "/api/v1/alerts") -> tuple[str, dict, bytes]:
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, start_response))
    return seen["status"], seen["headers"], body


def _ok(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def test_slots_are_granted_to_waiters_in_arrival_order():
    slots = FifoSlots(1)
    assert slots.acquire()
    order: list[int] = []
    threads = []
    for n in range(5):
        def wait_in_line(n=n):
            slots.acquire()
            order.append(n)
            slots.release()
        thread = threading.Thread(target=wait_in_line)
        thread.start()
        threads.append(thread)
        _wait_for(lambda: slots.waiting == n + 1)  # queued before the next one arrives
    slots.release()
    for thread in threads:
        thread.join(5)
    assert order == [0, 1, 2, 3, 4]
    assert slots.acquire(timeout=0)  # every slot came back


def test_a_waiter_that_times_out_leaves_the_line_without_a_slot():
    slots = FifoSlots(1)
    assert slots.acquire()
    assert slots.acquire(timeout=0.05) is False
    assert slots.waiting == 0
    slots.release()
    assert slots.acquire(timeout=0)  # the freed slot was not handed to the waiter that left
    assert slots.acquire(timeout=0) is False


def test_gate_runs_at_most_its_slots_at_once():
    running = 0
    most = 0
    lock = threading.Lock()

    def busy(environ, start_response):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return _ok(environ, start_response)

    gate = CpuSlotGate(busy, slots=2, wait_seconds=10)
    results = []
    threads = [threading.Thread(target=lambda: results.append(_call(gate)[0])) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == ["200 OK"] * 8
    assert most == 2


def test_a_request_that_waits_too_long_for_a_slot_gets_a_503_with_retry_after():
    entered, leave = threading.Event(), threading.Event()

    def slow(environ, start_response):
        entered.set()
        leave.wait(5)
        return _ok(environ, start_response)

    gate = CpuSlotGate(slow, slots=1, wait_seconds=0.05)
    holder = threading.Thread(target=_call, args=(gate,))
    holder.start()
    assert entered.wait(5)
    status, headers, body = _call(gate)
    leave.set()
    holder.join(5)
    assert status.startswith("503")
    assert headers["Retry-After"] == "1"
    assert headers["Content-Type"] == "application/json"
    assert "busy" in orjson.loads(body)["detail"]
    assert _call(gate)[0] == "200 OK"  # the slot came back after the slow request


def test_the_health_check_never_waits_for_a_slot():
    entered, leave = threading.Event(), threading.Event()

    def app(environ, start_response):
        if environ["PATH_INFO"] != "/api/v1/health":
            entered.set()
            leave.wait(5)
        return _ok(environ, start_response)

    gate = CpuSlotGate(app, slots=1, wait_seconds=0.05, exempt_paths=frozenset({"/api/v1/health"}))
    holder = threading.Thread(target=_call, args=(gate,))
    holder.start()
    assert entered.wait(5)
    try:
        assert _call(gate, "/api/v1/health")[0] == "200 OK"
    finally:
        leave.set()
        holder.join(5)


def test_released_outside_a_slot_changes_nothing():
    with cpu_slots.released():
        pass
    gate = CpuSlotGate(_ok, slots=1, wait_seconds=0)
    assert _call(gate)[0] == "200 OK"


def test_the_production_application_runs_django_behind_the_gate(settings):
    from warning_system.wsgi import application

    gate = application.app
    assert isinstance(gate, CpuSlotGate)
    assert gate.slots.size == settings.WEB_CPU_SLOTS
    assert "/api/v1/health" in gate.exempt_paths

