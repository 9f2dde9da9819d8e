"""An ingestion request gives its worker's CPU slot (warning_system.cpu_slots) to another request
while the real broker acknowledges its readings, and takes a slot again to answer."""
from __future__ import annotations

import threading
from datetime import UTC, datetime

from sensors.producer import readings_publish
from sensors.records import ReadingIn
from tests.test_cpu_slots import _call, _ok, _wait_for
from warning_system.cpu_slots import CpuSlotGate


def test_an_ingest_request_gives_its_slot_to_another_while_the_broker_acknowledges(readings_topic, settings):
    """With one slot, a second request runs (and finishes) while the first waits for the real broker's ack."""
    events: list[str] = []
    second_queued = threading.Event()
    now = datetime.now(UTC)

    def ingest(environ, start_response):
        events.append("ingest starts")
        second_queued.wait(5)
        readings_publish(readings=[ReadingIn(sensor_id="SLOT-1", timestamp=now, received_at=now, rainfall=1.0)])
        events.append("ingest acknowledged")
        return _ok(environ, start_response)

    def read(environ, start_response):
        events.append("read runs")
        return _ok(environ, start_response)

    gate = CpuSlotGate(lambda e, s: (ingest if e["PATH_INFO"] == "/ingest" else read)(e, s), slots=1, wait_seconds=10)
    first = threading.Thread(target=_call, args=(gate, "/ingest"))
    first.start()
    _wait_for(lambda: events == ["ingest starts"])
    second = threading.Thread(target=_call, args=(gate, "/read"))
    second.start()
    _wait_for(lambda: gate.slots.waiting == 1)  # the read is in line behind the ingest request
    second_queued.set()
    first.join(10)
    second.join(10)
    assert events == ["ingest starts", "read runs", "ingest acknowledged"]
