"""glibc allocator settings for the processes that churn through large NumPy arrays (the consumer).

Why: a page fault costs ~3 µs on the benchmark machine (a Firecracker VM),
and glibc gives freed memory back to the system eagerly: a freed block at
the top of the heap above M_TRIM_THRESHOLD is trimmed, blocks above
M_MMAP_THRESHOLD are unmapped on free. The consumer's feature computation
allocates and frees arrays of ~0.1-10 MB per chunk of sensors, so each
allocation faulted its pages in anew: ``np.cumsum(np.ones(86_800))`` took
~960 µs with ~300 faults against ~65 µs with the heap top kept, and the
features of full 72 h windows cost 22 µs per target against 7.5 µs
(bench/bench_features.py). Keeping 64 MB of padding at the top of the heap
and serving blocks up to 32 MB from the heap stops the churn; the consumer
still calls ``release_free_memory`` once per batch, which returns every
free page (a bounded RSS, at one round of faults per batch instead of one
per array).

Arenas: glibc gives each thread that allocates an arena of its own (up to 8
per core), and each keeps its own padding. The consumer's threads (the
``warning_system.db.Overlap`` helper, librdkafka's, XGBoost's) would each
hold tens of megabytes between trims; two arenas, as in the Dockerfile's
MALLOC_ARENA_MAX and gunicorn.conf.py, bound that.

No-ops where the C library is not glibc (musl, macOS). Explicit MALLOC_*
variables in the environment win: this only sets what they leave unset.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

M_TOP_PAD = -2  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENAS = 2
TOP_PAD_BYTES = 64 << 20
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's maximum on 64-bit

_libc = ctypes.CDLL(ctypes.util.find_library("c")) if platform.libc_ver()[0] == "glibc" else None


def keep_heap_for_arrays() -> bool:
    """Stop glibc from returning (and re-faulting) memory between arrays, with two arenas; True when applied."""
    if _libc is None:
        return False
    if "MALLOC_TOP_PAD_" not in os.environ:
        _libc.mallopt(M_TOP_PAD, TOP_PAD_BYTES)
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        _libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    if "MALLOC_ARENA_MAX" not in os.environ:
        _libc.mallopt(M_ARENA_MAX, ARENAS)  # before the threads that would create arenas start
    return True


def release_free_memory() -> None:
    """Return every free page of every arena to the system (``malloc_trim(0)``), a few ms.

    Each consumer batch allocates tens of megabytes of short-lived arrays and
    objects while the sensors' windows (predictions.windows) are re-allocated
    among them, so freed memory ends up in holes the heap cannot give back:
    with 1,000 sensors' windows the RSS grew from 264 to 357 MB over ten
    batches of 20,000 (bench/bench_consumer.py --sensors 1000 --history
    4400000 --cadence-seconds 60 --order time).
    """
    if _libc is not None:
        _libc.malloc_trim(0)
