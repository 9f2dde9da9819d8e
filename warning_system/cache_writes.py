"""Cache writes made behind the request, in batches, from one thread per process.

Why: a request that computed something worth caching used to pay a Redis
round trip to store it before answering. Under load each round trip is a wait
for Redis to be scheduled, and a GIL hand-off in a threaded worker. The value
is only an optimisation for later requests, so the request hands it to a
writer thread and answers at once; the writer sends everything pending in one
pipelined ``set_many``.

The writer pauses ``BATCH_SECONDS`` after being woken before it writes.
Without the pause it took the GIL while each request waited on its Redis
read and wrote that request's one value (1.1 values per write over 3,000
sequential prediction misses), which doubled the CPU of a prediction miss in
process (docs/benchmarks.md, "Cache writes behind the request"). A value
reaches other workers that much later; until then they compute it themselves.

Only for values that are correct whenever they land: a prediction is keyed
by the model versions and features, and an alert page carries the
generation it was built in (``alerts.cache``), so a late write is at worst
ignored. The thread starts on first use in each process (gunicorn's master
serves no request, so none is started before the fork) and is a daemon: a
write still pending at exit is lost, which costs a cache only a
recomputation.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from django.core.cache import cache

logger = logging.getLogger(__name__)

BATCH_SECONDS = 0.01


class CacheWriteBehind:
    """``put`` values now; a background thread ``set_many``s them with ``timeout()`` seconds to live."""

    def __init__(self, *, name: str, timeout: Callable[[], float]) -> None:
        self.name = name
        self._timeout = timeout
        self._pending: dict[str, object] = {}
        self._lock = threading.Lock()
        self._sending = threading.Lock()
        self._wakeup = threading.Event()
        self._writer_pid: int | None = None

    def put(self, values: dict[str, object]) -> None:
        with self._lock:
            self._pending.update(values)
            if self._writer_pid != os.getpid():  # first use in this process (threads do not survive a fork)
                self._writer_pid = os.getpid()
                threading.Thread(target=self._run, name=self.name, daemon=True).start()
        self._wakeup.set()

    def flush(self) -> None:
        """Send what is pending; returns once everything put before the call is in Redis (or failed)."""
        with self._sending:
            with self._lock:
                batch, self._pending = self._pending, {}
            if batch:
                cache.set_many(batch, timeout=self._timeout())

    def _run(self) -> None:
        while True:
            self._wakeup.wait()
            time.sleep(BATCH_SECONDS)  # let values accumulate (see the module docstring)
            self._wakeup.clear()
            try:
                self.flush()
            except Exception:  # the cache ignores Redis errors; anything else must not kill the writer
                logger.exception("cache.write_behind_failed", extra={"writer": self.name})
