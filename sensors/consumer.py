"""The `sensor.data` consumer: Kafka -> ``process_readings`` -> PostgreSQL, at least once.

Shape (as in Sentry's arroyo or PostHog's ingestion): ``process_batch`` turns a
list of Kafka messages into a ``BatchOutcome`` — poison messages set aside
for the dead-letter queue, everything else stored, scored and alerted on in
ONE idempotent transaction — and ``ReadingsConsumer`` is the loop around it.

Delivery guarantee: offsets are committed synchronously and only after the
batch's transaction committed and its dead letters were acknowledged by the
broker. A crash anywhere before that re-delivers the batch, and the
idempotent store (unique (sensor, timestamp), ``ON CONFLICT DO NOTHING``)
turns the re-delivery into a no-op. At-least-once delivery plus idempotent
writes: each acknowledged reading is stored exactly once.

Failure handling:

- poison (undecodable, invalid, unknown sensor, or a row PostgreSQL itself
  rejects as data: found by halving the batch): to ``KAFKA_DLQ_TOPIC`` with
  the original key/value/headers plus headers naming the error and the
  source topic/partition/offset, then committed — never a crash loop;
- anything else (PostgreSQL down or restarting, connection terminated,
  broker unavailable, a failing pipeline stage): nothing is committed and
  nothing dead-lettered; the same batch is retried with exponential backoff
  (capped at ``KAFKA_RETRY_MAX_BACKOFF_SECONDS``) while the assignment is
  paused and the consumer keeps polling, so it stays in the group;
- rebalance (cooperative-sticky): uncommitted messages of revoked partitions
  are dropped; the new owner gets them again from the last commit.
"""
from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from django.conf import settings
from django.db import DataError, IntegrityError, connection

from alerts.outbox import publish_pending
from alerts.services import alerts_raise_stale
from predictions.windows import SensorWindows
from warning_system.kafka import consumer_config, producer_config
from warning_system.malloc import keep_heap_for_arrays, release_free_memory

from .messages import InvalidMessage, decode_reading
from .pipeline import PipelineResult, UnknownSensors, process_readings
from .records import ReadingIn

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message: Message
    error: str  # stable class: "invalid_message" | "unknown_sensor" | "rejected_by_database"
    reason: str


@dataclass
class BatchOutcome:
    messages: int
    result: PipelineResult = field(default_factory=lambda: PipelineResult(received=0))
    dead_letters: list[DeadLetter] = field(default_factory=list)


def process_batch(messages: Sequence[Message], *, windows: SensorWindows | None = None) -> BatchOutcome:
    """Decode, validate and process one batch; poison messages come back as dead letters.

    Raises on transient failures (database, a pipeline stage): the caller
    retries the whole batch, which is safe because the pipeline is idempotent
    (and clears ``windows``, which may hold the rolled-back readings).
    """
    outcome = BatchOutcome(messages=len(messages))
    readings: list[ReadingIn] = []
    sources: list[Message] = []
    for message in messages:
        try:
            reading = decode_reading(message.value())
        except InvalidMessage as exc:
            outcome.dead_letters.append(DeadLetter(message, "invalid_message", str(exc)))
            continue
        readings.append(reading)
        sources.append(message)
    _process(readings, sources, outcome, windows)
    return outcome


# SQLSTATEs that say the data itself is unacceptable: retrying the same rows
# can never succeed. Class 22 (data exception), not-null and check violations.
_REJECTED_CLASSES = ("22",)
_REJECTED_STATES = ("23502", "23514")


def _rejected_by_database(exc: BaseException) -> bool:
    state = getattr(exc.__cause__, "sqlstate", None) or ""
    return state[:2] in _REJECTED_CLASSES or state in _REJECTED_STATES


def _process(readings: list[ReadingIn], sources: list[Message], outcome: BatchOutcome, windows: SensorWindows | None) -> None:
    """Run the pipeline on the readings, setting poison aside (unknown sensors, rows the database rejects)."""
    while True:
        try:
            result = process_readings(readings=readings, windows=windows)
        except UnknownSensors as exc:
            # Set the strangers aside and process the rest; looping covers a
            # sensor deleted between the two attempts.
            unknown = set(exc.sensor_ids)
            kept_readings, kept_sources = [], []
            for reading, message in zip(readings, sources):
                if reading.sensor_id in unknown:
                    outcome.dead_letters.append(DeadLetter(message, "unknown_sensor", f"unknown sensor {reading.sensor_id!r}"))
                else:
                    kept_readings.append(reading)
                    kept_sources.append(message)
            readings, sources = kept_readings, kept_sources
            continue
        except (DataError, IntegrityError) as exc:
            if not _rejected_by_database(exc):
                raise  # e.g. a unique violation from a concurrent writer: transient, retry the batch
            # A row the validation let through but the database refuses (a
            # constraint an operator added, a value out of a type's range):
            # retrying the batch would block the partition for ever. Halve it
            # until the culprit stands alone and dead-letter it; the other
            # halves commit in their own transactions (idempotent, like any
            # re-delivery). The rolled-back readings may be in the windows.
            if windows is not None:
                windows.clear()
            if len(readings) == 1:
                logger.warning("consumer.rejected_by_database", extra={"sensor_id": readings[0].sensor_id, "error": str(exc)[:300]})
                outcome.dead_letters.append(DeadLetter(sources[0], "rejected_by_database", str(exc).strip()))
                return
            middle = len(readings) // 2
            _process(readings[:middle], sources[:middle], outcome, windows)
            _process(readings[middle:], sources[middle:], outcome, windows)
            return
        merged = outcome.result
        merged.received += result.received
        # Most batches have one result: keep its sequence as it is (the overlapped
        # pipeline's StoredColumns would build every StoredReading to be copied).
        merged.stored = [*merged.stored, *result.stored] if merged.stored else result.stored
        merged.predictions += result.predictions
        merged.alert_changes += result.alert_changes
        return


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """The original headers plus where the message came from and why it was rejected."""
    message = letter.message
    return [
        *(message.headers() or []),
        ("dlq.error", letter.error.encode()),
        ("dlq.reason", letter.reason[:1000].encode()),
        ("dlq.source_topic", message.topic().encode()),
        ("dlq.source_partition", str(message.partition()).encode()),
        ("dlq.source_offset", str(message.offset()).encode()),
    ]




# Alert events sent per outbox sweep, and how long one drain may go on after a batch.
OUTBOX_SWEEP_EVENTS = 1000
OUTBOX_DRAIN_SECONDS = 2.0


class TransientFailure(RuntimeError):
    """Something outside the batch failed (broker did not acknowledge); retry the batch."""


class OutboxThread:
    """Publishes pending alert events in a thread of its own, on request and every KAFKA_OUTBOX_SWEEP_SECONDS.

    Why: a sweep waits for the broker to acknowledge every event (acks=all)
    and then marks them published. Run after each batch in the consumer's
    own thread, that wait held the next batch back: in the benchmark's
    storm (~1,600 events per batch of 20,000 readings) the outbox stage
    took 6.3 µs of wall time per reading, of which 3.5 were waiting
    (bench/bench_consumer.py --values wrk --stages). Here the wait overlaps
    the next batch. Sweeps are transactions of their own on this thread's
    own database connection, and claim events with SKIP LOCKED, so they
    cannot send an event twice or hold up the batch's writes. Events stay
    at-least-once: an event is marked published only after the broker
    acknowledged it, and anything unsent stays in the outbox for the next
    sweep, or the next start.
    """

    def __init__(self, drain, *, interval: float):
        self._drain = drain  # sends until the outbox is empty (or a bound); True if it stopped with events left
        self._interval = interval
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request(self) -> None:
        """Sweep now (a batch wrote alert events)."""
        self._wake.set()

    def close(self, timeout: float) -> None:
        """One last sweep, then stop (waits at most ``timeout`` seconds)."""
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait(self._interval)
                self._wake.clear()
                closing = self._closing
                if self._drain() and not closing:
                    self._wake.set()  # a backlog left: go on at once
                if closing:
                    return
        finally:
            connection.close()  # this thread's own connection


def _partition_key(message: Message) -> tuple[str, int]:
    return message.topic(), message.partition()


class ReadingsConsumer:
    """The consume -> process -> dead-letter -> commit loop. ``stop()`` may be called from a signal handler."""

    def __init__(
        self,
        *,
        topic: str | None = None,
        group: str | None = None,
        batch_size: int | None = None,
        batch_seconds: float | None = None,
    ):
        self.topic = topic or settings.KAFKA_READINGS_TOPIC
        self.group = group or settings.KAFKA_CONSUMER_GROUP
        self.batch_size = batch_size or settings.KAFKA_BATCH_SIZE
        self.batch_seconds = batch_seconds if batch_seconds is not None else settings.KAFKA_BATCH_SECONDS
        self.max_backoff = settings.KAFKA_RETRY_MAX_BACKOFF_SECONDS
        self._stopping = False
        # Consumed but not yet committed messages that are not part of the
        # batch in hand (returned by a poll while retrying); next batch starts with them.
        self._carry: list[Message] = []
        self._batch: list[Message] = []
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None  # dead letters
        # Alert events, on the outbox thread. A producer of its own: delivery callbacks run on
        # whichever thread polls the producer, so sharing one would let a dead-letter flush on
        # this thread run the outbox's callbacks after its own flush had already returned.
        self._events_producer: Producer | None = None
        self._stats = {"messages": 0, "stored": 0, "duplicates": 0, "dead_letters": 0, "batches": 0, "max_batch": 0, "retries": 0}
        self._stats_since = time.monotonic()
        self._outbox: OutboxThread | None = None
        # Recent readings of the sensors of our partitions, so scoring need not re-read them
        # (172 -> 80 µs CPU per reading with 1,000 sensors' 72 h at a 1-minute cadence: predictions.services).
        self._windows = SensorWindows(max_bytes=int(settings.WINDOW_CACHE_MB * 2**20), ttl_seconds=settings.WINDOW_CACHE_SECONDS)

    # -- lifecycle ---------------------------------------------------------
    def stop(self) -> None:
        """Finish the batch in hand, commit it, leave the group."""
        self._stopping = True

    def run(self) -> None:
        # Everything imported so far (Django, NumPy, XGBoost: ~180,000 objects) lives as
        # long as the process: out of the collector's way. Full collections walked them
        # all, 5 µs per reading (10 % of the consumer's CPU, bench/bench_consumer.py --stages).
        gc.freeze()
        keep_heap_for_arrays()
        self._consumer = Consumer(consumer_config(group=self.group))
        self._producer = Producer(producer_config())
        self._events_producer = Producer(producer_config())
        self._consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke)
        logger.info("consumer.started", extra={"topic": self.topic, "group": self.group, "batch_size": self.batch_size, "batch_seconds": self.batch_seconds})
        next_stats = time.monotonic() + settings.KAFKA_CONSUMER_STATS_SECONDS
        next_stale = time.monotonic() + settings.KAFKA_STALE_CHECK_SECONDS
        self._outbox = OutboxThread(self._publish_outbox, interval=settings.KAFKA_OUTBOX_SWEEP_SECONDS)
        self._outbox.start()
        self._outbox.request()  # a sweep at start-up: events left by a previous run or the API
        try:
            while not self._stopping:
                batch = self._collect()
                if batch:
                    self._handle(batch)
                now = time.monotonic()
                if now >= next_stats:
                    self._log_stats()
                    next_stats = now + settings.KAFKA_CONSUMER_STATS_SECONDS
                if now >= next_stale and not self._stopping:
                    self._periodic_checks()
                    next_stale = now + settings.KAFKA_STALE_CHECK_SECONDS
        finally:
            self._log_stats()
            self._consumer.close()
            self._outbox.close(timeout=OUTBOX_DRAIN_SECONDS + settings.KAFKA_PRODUCE_TIMEOUT_SECONDS)
            self._producer.flush(settings.KAFKA_PRODUCE_TIMEOUT_SECONDS)
            connection.close()
            logger.info("consumer.stopped", extra={"topic": self.topic, "group": self.group})

    # -- rebalancing -------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Another consumer may have written the sensors of these partitions: their windows are not complete.
        self._windows.clear()
        logger.info("consumer.partitions_assigned", extra={"partitions": [p.partition for p in partitions]})

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Forget uncommitted messages of partitions we no longer own; their new owner re-reads them.

        Windows go too: the new owner writes those sensors from now on, and a
        window must not outlive a time we were not their only writer.
        """
        self._windows.clear()
        revoked = {(p.topic, p.partition) for p in partitions}
        before = len(self._batch) + len(self._carry)
        self._batch[:] = [m for m in self._batch if _partition_key(m) not in revoked]
        self._carry[:] = [m for m in self._carry if _partition_key(m) not in revoked]
        logger.info(
            "consumer.partitions_revoked",
            extra={"partitions": sorted(p for _, p in revoked), "dropped": before - len(self._batch) - len(self._carry)},
        )

    # -- the loop ------------------------------------------------------------
    def _collect(self) -> list[Message]:
        """Up to ``batch_size`` messages, waiting at most ``batch_seconds``."""
        batch, self._carry = self._carry, []
        self._batch = batch  # so a revocation during consume() filters it
        deadline = time.monotonic() + self.batch_seconds
        while len(batch) < self.batch_size and not self._stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for message in self._consumer.consume(num_messages=self.batch_size - len(batch), timeout=remaining):
                if message.error():
                    self._log_consume_error(message.error())
                else:
                    batch.append(message)
        return batch

    def _handle(self, batch: list[Message]) -> None:
        """Process, dead-letter and commit one batch, retrying transient failures until it succeeds or we stop."""
        self._batch = batch
        backoff = 0.5
        paused: list[TopicPartition] = []
        failed = False
        try:
            while True:
                try:
                    outcome = process_batch(self._batch, windows=self._windows)
                    self._send_dead_letters(outcome.dead_letters)
                    break
                except Exception as exc:
                    failed = True
                    # The rolled-back readings may be in the windows (and after a failed
                    # COMMIT nobody knows what is stored): the database decides again.
                    self._windows.clear()
                    self._stats["retries"] += 1
                    logger.warning(
                        "consumer.batch_failed",
                        extra={"messages": len(self._batch), "error": f"{type(exc).__name__}: {str(exc)[:300]}", "retry_in": backoff},
                        exc_info=not _is_expected_outage(exc),
                    )
                    # Broken connections must not be reused by the retry.
                    connection.close()
                    if not paused:
                        paused = self._consumer.assignment()
                        self._consumer.pause(paused)
                    self._wait(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
                    if self._stopping:
                        logger.info("consumer.batch_abandoned", extra={"messages": len(self._batch)})
                        return
                    if not self._batch:  # every partition of the batch was revoked meanwhile
                        return
        finally:
            if paused:
                self._consumer.resume(paused)
        self._commit(self._batch)
        self._record(outcome)
        release_free_memory()
        # After a batch that wrote alert events, or that was retried (a failed
        # attempt may have committed its events before the dead-letter send
        # failed). Other batches skip the query; API-made events that could
        # not be sent at once wait for the periodic sweep (run()).
        if outcome.result.alert_changes or failed:
            self._outbox.request()

    def _wait(self, seconds: float) -> None:
        """Sleep by polling (paused), so the group sees us alive and rebalances are served."""
        deadline = time.monotonic() + seconds
        while not self._stopping and (remaining := deadline - time.monotonic()) > 0:
            message = self._consumer.poll(min(remaining, 0.5))
            if message is not None and not message.error():
                # From a partition assigned during the pause: keep it for the next batch.
                self._carry.append(message)

    def _send_dead_letters(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        failures: list[str] = []

        def on_delivery(err, msg):
            if err is not None:
                failures.append(str(err))

        for letter in letters:
            m = letter.message
            self._producer.produce(
                settings.KAFKA_DLQ_TOPIC, key=m.key(), value=m.value(), headers=dead_letter_headers(letter), on_delivery=on_delivery
            )
            logger.warning(
                "consumer.dead_lettered",
                extra={"error": letter.error, "reason": letter.reason, "topic": m.topic(), "partition": m.partition(), "offset": m.offset()},
            )
        if self._producer.flush(settings.KAFKA_PRODUCE_TIMEOUT_SECONDS) or failures:
            raise TransientFailure(f"dead-letter queue did not acknowledge: {'; '.join(failures[:3]) or 'timed out'}")

    def _commit(self, batch: list[Message]) -> None:
        offsets: dict[tuple[str, int], int] = {}
        for message in batch:
            key = _partition_key(message)
            offsets[key] = max(offsets.get(key, -1), message.offset() + 1)
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
        except KafkaException as exc:
            # The rows are committed; at worst the batch is re-delivered and the idempotent store ignores it.
            logger.warning("consumer.commit_failed", extra={"error": str(exc), "messages": len(batch)})
            return
        logger.debug("consumer.batch_committed", extra={"messages": len(batch), "partitions": len(offsets)})

    def _record(self, outcome: BatchOutcome) -> None:
        stats = self._stats
        stats["messages"] += outcome.messages
        stats["stored"] += len(outcome.result.stored)
        stats["duplicates"] += outcome.result.duplicates
        stats["dead_letters"] += len(outcome.dead_letters)
        stats["batches"] += 1
        stats["max_batch"] = max(stats["max_batch"], outcome.messages)

    def _publish_outbox(self) -> bool:
        """Send pending alert events: sweep after sweep while sweeps come back full, for up to OUTBOX_DRAIN_SECONDS.

        Runs on the ``OutboxThread``. One sweep (1,000 events) per batch fell
        behind in a storm: a batch of 20,000 readings can raise ~1,600 events,
        and the benchmark's storm left 570,000 events waiting, so a new alert
        reached the `alerts` topic many minutes late (docs/benchmarks.md,
        01:48). The time bound lets a stop (or the thread's close) through.
        Returns True when it stopped with a full sweep, i.e. events are left.
        """
        deadline = time.monotonic() + OUTBOX_DRAIN_SECONDS
        try:
            while publish_pending(producer=self._events_producer, limit=OUTBOX_SWEEP_EVENTS) == OUTBOX_SWEEP_EVENTS:
                if time.monotonic() >= deadline or self._stopping:
                    return True
        except Exception as exc:
            # Unpublished events stay in the outbox; the next sweep sends them.
            logger.warning("consumer.outbox_failed", extra={"error": f"{type(exc).__name__}: {str(exc)[:300]}"})
            connection.close()
        return False

    def _periodic_checks(self) -> None:
        try:
            raised = alerts_raise_stale()
            logger.info("consumer.stale_checked", extra={"alert_changes": raised})
        except Exception as exc:
            logger.warning("consumer.stale_check_failed", extra={"error": f"{type(exc).__name__}: {str(exc)[:300]}"})
            connection.close()
            return
        self._outbox.request()

    # -- observability -------------------------------------------------------
    def _log_stats(self) -> None:
        now = time.monotonic()
        elapsed = max(now - self._stats_since, 1e-9)
        stats = self._stats
        logger.info(
            "consumer.stats",
            extra={
                **stats,
                "per_second": round(stats["messages"] / elapsed, 1),
                "avg_batch": round(stats["messages"] / stats["batches"], 1) if stats["batches"] else 0,
                "lag": self._lag(),
                "windows": len(self._windows),
                "window_rows": self._windows.rows,
                "window_bytes": self._windows.nbytes,
                "seconds": round(elapsed, 1),
            },
        )
        self._stats = dict.fromkeys(stats, 0)
        self._stats_since = now

    def _lag(self) -> int | None:
        """Messages behind the high watermark over our partitions (cached watermarks: no broker round trip)."""
        try:
            total = 0
            for tp in self._consumer.position(self._consumer.assignment()):
                low, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if high >= 0:
                    total += high - (tp.offset if tp.offset >= 0 else low)
            return total
        except KafkaException:
            return None

    def _log_consume_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.fatal():
            raise KafkaException(error)
        logger.warning("consumer.kafka_error", extra={"error": error.str(), "code": error.name()})


def _is_expected_outage(exc: Exception) -> bool:
    """Database or broker unavailability: logged without a traceback (it is not a bug)."""
    from django.db import InterfaceError, OperationalError

    return isinstance(exc, (OperationalError, InterfaceError, TransientFailure, KafkaException))
