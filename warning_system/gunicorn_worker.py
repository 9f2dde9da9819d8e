"""gunicorn's gthread worker, with new connections spread evenly over the workers.

Why: every gunicorn worker waits on the same listening socket and the first
one to wake takes the connection. Clients that keep their connections open
(gateways, dashboards, load balancers, a benchmark's ten connections) then
stay wherever the race put them: benchmark 6 measured 7 connections on one
worker and 3 on the other, that worker at ~90 % of a core (its GIL) and the
other at ~50 %, and the slow worker's connections made the latency tail.

Each worker publishes how many connections it holds in a small array shared
by all workers (created in the master before it forks). A worker holding more
than the least loaded accepting worker leaves a waiting connection to that
worker (which was woken for it too) for up to ``MAX_DEFER_SECONDS``, then
takes it anyway, so a stuck or dying worker can never stop new connections
from being served. Everything else is gthread's own behaviour.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import time

from gunicorn.workers.gthread import ThreadWorker

MAX_WORKERS = 64
# How long a busier worker leaves a waiting connection to a less busy one.
MAX_DEFER_SECONDS = 0.005
# Between two looks at a connection it is leaving to another worker: the listener
# stays readable meanwhile, so without a pause the event loop would spin on it.
DEFER_PAUSE_SECONDS = 0.0002
NOT_ACCEPTING = 1 << 40  # published while a worker does not accept (full, or stopping)

# (pid, connections) per slot, shared by the workers forked from the master that imported this.
_slots = multiprocessing.RawArray(ctypes.c_longlong, 2 * MAX_WORKERS)
_claim = multiprocessing.Lock()


def should_defer(mine: int, others: list[int]) -> bool:
    """Whether a worker holding ``mine`` connections should leave a new one to a worker holding fewer."""
    return bool(others) and mine > min(others)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class BalancedThreadWorker(ThreadWorker):
    """``gthread`` plus the connection balancing described in the module docstring."""

    slot: int | None = None
    _deferring_since: float | None = None
    _last_deferral = 0.0

    def init_process(self):
        self._claim_slot()
        super().init_process()

    def _claim_slot(self) -> None:
        pid = os.getpid()
        with _claim:
            for slot in range(MAX_WORKERS):
                owner = _slots[2 * slot]
                if owner == 0 or owner == pid or not _alive(owner):
                    _slots[2 * slot], _slots[2 * slot + 1] = pid, 0
                    self.slot = slot
                    return
        self.log.warning("gunicorn_worker.no_slot")  # more workers than slots: this one accepts unbalanced

    def _publish(self) -> None:
        if self.slot is not None:
            _slots[2 * self.slot + 1] = self.nr_conns if self._accepting else NOT_ACCEPTING

    def _others(self) -> list[int]:
        """Connections held by the other live workers that accept."""
        counts = []
        for slot in range(MAX_WORKERS):
            pid = _slots[2 * slot]
            if pid and slot != self.slot:
                count = _slots[2 * slot + 1]
                if count != NOT_ACCEPTING and _alive(pid):
                    counts.append(count)
        return counts

    def notify(self):
        super().notify()
        self._publish()

    def set_accept_enabled(self, enabled):
        super().set_accept_enabled(enabled)
        self._publish()

    def accept(self, listener):
        if self.slot is not None and should_defer(self.nr_conns, self._others()):
            now = time.monotonic()
            if self._deferring_since is None or now - self._last_deferral > 5 * DEFER_PAUSE_SECONDS:
                self._deferring_since = now  # a new connection to leave (the last was taken by another worker)
            self._last_deferral = now
            if now - self._deferring_since < MAX_DEFER_SECONDS:
                time.sleep(DEFER_PAUSE_SECONDS)
                return
        self._deferring_since = None
        super().accept(listener)
        self._publish()


def release(pid: int) -> None:
    """Free the slot of a worker that exited (the master calls this from gunicorn's ``child_exit`` hook)."""
    with _claim:
        for slot in range(MAX_WORKERS):
            if _slots[2 * slot] == pid:
                _slots[2 * slot], _slots[2 * slot + 1] = 0, 0
