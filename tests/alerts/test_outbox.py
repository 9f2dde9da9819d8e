"""The alert-event outbox: published once, versioned, claimed with SKIP LOCKED, never lost when the broker is down."""
from __future__ import annotations

import threading

import orjson
import pytest
from confluent_kafka import Producer
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from alerts import outbox
from alerts.models import AlertEvent
from tests.kafka_utils import create_test_topics, read_topic, wait_for
from warning_system.kafka import producer_config

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def events(sensor, make_alert):
    """An acknowledged flood alert: "raised" and "acknowledged" are published kinds, "retriggered" is not."""
    alert = make_alert(sensor, hazard="flood", level="high", status="acknowledged", probability=0.82)
    alert.events.create(kind="acknowledged", level="high", status="acknowledged", probability=0.82, actor="ops@example.org", note="crew sent")
    alert.events.create(kind="retriggered", level="high", status="acknowledged", probability=0.9)
    return alert, list(alert.events.order_by("id"))


def test_pending_events_are_published_once_with_a_versioned_payload(kafka_topics, events):
    alert, (raised, acknowledged, retriggered) = events
    create_test_topics()
    producer = Producer(producer_config())

    assert outbox.publish_pending(producer=producer) == 2
    assert outbox.publish_pending(producer=producer) == 0

    messages = read_topic(kafka_topics.KAFKA_ALERTS_TOPIC, expected=3, timeout=3)
    assert len(messages) == 2
    assert {m.key() for m in messages} == {b"RG-001"}
    payloads = [orjson.loads(m.value()) for m in messages]
    assert [p["event_id"] for p in payloads] == [raised.id, acknowledged.id]
    ack = payloads[1]
    assert ack == {
        "v": 1, "event_id": acknowledged.id, "event": "acknowledged", "alert_id": alert.id, "sensor_id": "RG-001",
        "site": alert.sensor.site.name, "hazard": "flood", "level": "high", "status": "acknowledged", "probability": 0.82,
        "triggered_at": alert.triggered_at.isoformat(), "last_triggered_at": alert.last_triggered_at.isoformat(),
        "at": acknowledged.at.isoformat(), "actor": "ops@example.org", "note": "crew sent", "source": "model",
        "message": alert.message,
    }
    published = dict(AlertEvent.objects.values_list("id", "published_at"))
    assert published[raised.id] is not None and published[acknowledged.id] is not None
    assert published[retriggered.id] is None  # not a published kind


def test_rows_claimed_by_another_publisher_are_skipped_not_sent_twice(kafka_topics, events):
    create_test_topics()
    claimed, release = threading.Event(), threading.Event()

    def other_publisher():
        with transaction.atomic():
            list(AlertEvent.objects.select_for_update().filter(published_at__isnull=True))
            claimed.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=other_publisher)
    holder.start()
    try:
        assert claimed.wait(10)
        producer = Producer(producer_config())
        assert outbox.publish_pending(producer=producer) == 0
    finally:
        release.set()
        holder.join(10)
    assert outbox.publish_pending(producer=producer) == 2
    assert len(read_topic(kafka_topics.KAFKA_ALERTS_TOPIC, expected=3, timeout=3)) == 2


def test_events_stay_unpublished_while_the_broker_is_down(kafka_topics, private_broker, events):
    kafka_topics.KAFKA_PRODUCE_TIMEOUT_SECONDS = 1
    create_test_topics()
    private_broker.stop()

    with pytest.raises(outbox.OutboxPublishError):
        outbox.publish_pending(producer=Producer(producer_config()))
    assert outbox.publish_pending_now() == 0  # never raises into the API
    assert AlertEvent.objects.filter(published_at__isnull=True).count() == 3

    private_broker.start()
    create_test_topics()  # the in-memory broker restarted empty
    kafka_topics.KAFKA_PRODUCE_TIMEOUT_SECONDS = 5
    sent = []
    # The producer reconnects on its own schedule; the events must go out once it has.
    wait_for(lambda: sent.append(outbox.publish_pending_now()) or sum(sent) == 2, timeout=30, interval=0.5,
             message="pending events published after the broker came back")
    assert AlertEvent.objects.filter(published_at__isnull=True).count() == 1


def test_publish_pending_now_sends_pending_events(kafka_topics, events):
    create_test_topics()
    assert outbox.publish_pending_now() == 2
    assert len(read_topic(kafka_topics.KAFKA_ALERTS_TOPIC, expected=2)) == 2


def test_publish_pending_now_does_nothing_in_eager_mode(settings, events):
    settings.PIPELINE_EAGER = True
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    assert outbox.publish_pending_now() == 0
    assert AlertEvent.objects.filter(published_at__isnull=True).count() == 3


def test_the_pending_index_holds_exactly_the_kinds_the_outbox_publishes():
    """Events of other kinds (re-triggers) are never published: in the index they would pile up forever."""
    [index] = [i for i in AlertEvent._meta.indexes if i.name == "alertevent_pending_idx"]
    conditions = dict(index.condition.children)
    assert conditions == {"published_at__isnull": True, "kind__in": [str(k) for k in AlertEvent.PUBLISHED_KINDS]}


def test_pending_events_are_claimed_with_the_pending_index_in_id_order(kafka_topics, events):
    """The claim can be an ordered, LIMITed scan of the partial index, with no sort of every pending event.

    A test table is too small for the planner to prefer an index, so sequential and
    bitmap scans are switched off: what remains shows whether the index serves the query.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(
            "EXPLAIN SELECT id FROM alerts_alertevent WHERE published_at IS NULL "
            "AND kind IN ('raised', 'escalated', 'acknowledged', 'resolved') ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED"
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "alertevent_pending_idx" in plan and "Sort" not in plan, plan


def test_the_claim_never_runs_as_a_bitmap_scan_and_leaves_the_setting_as_it_was(kafka_topics, events):
    """Bitmap scans are off for the claim only: they re-read every already-published event's heap page.

    After a storm, with statistics gathered while many events were pending, the
    planner chose a bitmap scan of the pending index: 174 ms per sweep with 1.2 M
    events published since the last VACUUM, against 10 ms for the ordered index
    scan, which marks those entries dead once (docs/benchmarks.md, 2026-12-07).
    A small test table does not make the planner choose it, so this checks that
    the claim ran with bitmap scans off (the plan test above shows what it then
    uses) and that the session's own setting is back afterwards.
    """
    create_test_topics()
    producer = Producer(producer_config())
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_bitmapscan = on")
        with CaptureQueriesContext(connection) as queries:
            assert outbox.publish_pending(producer=producer) == 2
        cursor.execute("SHOW enable_bitmapscan")
        assert cursor.fetchone()[0] == "on"
    statements = [q["sql"] for q in queries.captured_queries]
    [claim] = [i for i, sql in enumerate(statements) if "FOR UPDATE SKIP LOCKED" in sql]
    assert "set_config('enable_bitmapscan', 'off', true)" in statements[claim - 1]
    assert statements[claim + 1].startswith("SELECT set_config('enable_bitmapscan', 'on', true)"), statements[claim + 1]
