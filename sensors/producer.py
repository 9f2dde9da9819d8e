"""The process-wide Kafka producer behind the ingestion API.

A reading is only "accepted" (202) once the broker has acknowledged it with
``acks=all``; anything less could lose a reading a device believes was
delivered. The producer is idempotent (``enable.idempotence``) so librdkafka's
own retries never write a message twice.

Throughput: one producer per process is shared by every request thread and
is never ``flush()``-ed per request (that would wait for *all* in-flight
messages of all threads). Instead each request owns a small
:class:`_DeliveryTracker`; the delivery callbacks — run by one background
poll thread — count down that request's messages and wake it when the last
one is acknowledged. librdkafka batches messages from all requests
(``linger.ms`` 10 ms), so thousands of single-reading requests per second
share a few network round trips.

A request that is not fully acknowledged within ``KAFKA_PRODUCE_TIMEOUT_SECONDS``
raises :class:`BrokerUnavailable` (the API answers 503 with Retry-After).
Messages of such a request may still be delivered later; the device retries
and the consumer stores a (sensor, timestamp) only once, so the outcome is
at-least-once delivery with idempotent storage — never a lost reading.

The producer is created lazily (after a gunicorn fork, never before), and
recreated when the bootstrap servers change (tests switch brokers) or after
a fatal librdkafka error (e.g. the broker lost the idempotent producer's
state), so one bad event never wedges a worker until restart.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Producer
from django.conf import settings

from warning_system import cpu_slots, kafka

from .messages import encode_reading
from .records import ReadingIn

logger = logging.getLogger(__name__)

POLL_INTERVAL_SECONDS = 0.05


class BrokerUnavailable(RuntimeError):
    """The broker did not acknowledge every reading in time; nothing was accepted."""


class _DeliveryTracker:
    """Counts one request's outstanding delivery reports; released when all are in or one failed.

    The waiter blocks on a plain lock that the last delivery report releases:
    cheaper than a ``threading.Event`` (a Condition and a waiter lock per wait)
    on a path taken once per request, thousands of times a second.
    """

    __slots__ = ("pending", "error", "_done", "_lock")

    def __init__(self, count: int) -> None:
        self.pending = count
        self.error: KafkaError | None = None
        self._done = threading.Lock()
        self._done.acquire()
        self._lock = threading.Lock()

    def on_delivery(self, err: KafkaError | None, msg) -> None:
        with self._lock:
            if self.pending <= 0 or (self.error is not None):
                return  # already released (a failure came first)
            if err is not None:
                self.error = err
            self.pending -= 1
            finished = self.pending <= 0 or self.error is not None
        if finished:
            self._done.release()

    def wait(self, timeout: float) -> bool:
        """True once every message is acknowledged or one failed; False after ``timeout`` seconds."""
        return self._done.acquire(timeout=max(0.0, timeout))


class ReadingProducer:
    """One librdkafka producer plus the thread that serves its delivery callbacks."""

    def __init__(self, bootstrap_servers: str, message_timeout_seconds: float) -> None:
        self.config_key = (bootstrap_servers, message_timeout_seconds)
        self.pid = os.getpid()
        self.fatal: KafkaError | None = None
        self._closed = threading.Event()
        config = {
            **kafka.base_config(),
            "bootstrap.servers": bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            # Each ingest request waits for its own acknowledgement, so throughput is set by
            # how many produce requests the broker can answer: a 10 ms linger packs the
            # readings of concurrent requests into fewer, larger batches (356 -> 445 req/s
            # at 100 connections against Tansu here; docs/benchmarks.md), for +8 ms latency.
            "linger.ms": 10,
            "compression.type": "lz4",
            # Give up on a message about when the request gives up on it, so a
            # long outage does not pile up readings the devices will resend.
            "message.timeout.ms": max(1000, int(message_timeout_seconds * 1000)),
            "socket.connection.setup.timeout.ms": 3000,
            "error_cb": self._on_error,
        }
        self._producer = Producer(config)
        self._poller = threading.Thread(target=self._poll_loop, name="reading-producer-poll", daemon=True)
        self._poller.start()
        logger.info("producer.created", extra={"bootstrap_servers": bootstrap_servers})

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self.fatal = err
            logger.error("producer.fatal_error", extra={"error": str(err)})
        else:
            logger.warning("producer.error", extra={"error": str(err)})

    def _poll_loop(self) -> None:
        producer = self._producer
        while not self._closed.is_set():
            try:
                producer.poll(POLL_INTERVAL_SECONDS)
            except KafkaException as exc:
                # librdkafka raises fatal errors from poll(); this producer is finished
                # (pending requests time out into 503) and the next request gets a new one.
                error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                if error is None or error.fatal():
                    self.fatal = error or KafkaError(KafkaError._FATAL)
                    logger.error("producer.fatal_error", extra={"error": str(exc)})
                    return
                logger.warning("producer.poll_error", extra={"error": str(exc)})

    def produce(self, *, topic: str, readings: Sequence[ReadingIn], timeout: float) -> None:
        """Send readings keyed by sensor code; return only when the broker acknowledged all of them."""
        tracker = _DeliveryTracker(len(readings))
        callback = tracker.on_delivery
        produce = self._producer.produce
        deadline = time.monotonic() + timeout
        for reading in readings:
            key, value = encode_reading(reading)
            while True:
                try:
                    produce(topic, value, key, on_delivery=callback)
                    break
                except BufferError:
                    # Local queue full: the broker is slow or gone. Wait for room, bounded.
                    if time.monotonic() >= deadline:
                        raise BrokerUnavailable("producer queue full") from None
                    with cpu_slots.released():  # waiting for the broker, not computing
                        time.sleep(0.005)
                except Exception as exc:  # KafkaException: e.g. fatal state
                    raise BrokerUnavailable(f"produce failed: {exc}") from exc
        # The worker's CPU slot goes to another request while the broker acknowledges.
        with cpu_slots.released():
            acknowledged = tracker.wait(deadline - time.monotonic())
        if not acknowledged:
            raise BrokerUnavailable(f"{tracker.pending} of {len(readings)} readings not acknowledged within {timeout:g} s")
        if tracker.error is not None:
            raise BrokerUnavailable(f"delivery failed: {tracker.error}")

    def warm(self, *, timeout: float) -> None:
        """Connect to the broker now (a metadata request for the readings topic) rather than on the first request.

        Raises KafkaException when the broker does not answer within ``timeout``.
        """
        self._producer.list_topics(topic=settings.KAFKA_READINGS_TOPIC, timeout=timeout)

    def close(self, timeout: float = 1.0) -> None:
        self._closed.set()
        self._poller.join(timeout)
        remaining = self._producer.flush(timeout)
        if remaining:
            logger.warning("producer.closed_with_pending", extra={"pending": remaining})


_lock = threading.Lock()
_current: ReadingProducer | None = None


def get_producer() -> ReadingProducer:
    """The process's producer, (re)created when absent, forked, reconfigured or fatally broken."""
    global _current
    config_key = (settings.KAFKA_BOOTSTRAP_SERVERS, settings.KAFKA_PRODUCE_TIMEOUT_SECONDS)
    current = _current
    if current is not None and current.config_key == config_key and current.fatal is None and current.pid == os.getpid():
        return current
    with _lock:
        current = _current
        if current is not None and current.config_key == config_key and current.fatal is None and current.pid == os.getpid():
            return current
        if current is not None and current.pid == os.getpid():
            current.close(timeout=0.5)
        _current = ReadingProducer(*config_key)
        return _current


def readings_publish(*, readings: Sequence[ReadingIn]) -> None:
    """Publish validated readings to the readings topic; raises BrokerUnavailable unless all are acknowledged."""
    get_producer().produce(
        topic=settings.KAFKA_READINGS_TOPIC,
        readings=readings,
        timeout=settings.KAFKA_PRODUCE_TIMEOUT_SECONDS,
    )


def producer_close(timeout: float = 1.0) -> None:
    """Close the process's producer (worker shutdown, or a test leaving a private broker)."""
    global _current
    with _lock:
        current, _current = _current, None
    if current is not None and current.pid == os.getpid():
        current.close(timeout=timeout)
