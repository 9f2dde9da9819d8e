"""The consumer's allocator setting (warning_system.malloc): arrays stop faulting their pages in anew."""
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import resource, sys
import numpy as np
if sys.argv[1] == "tuned":
    from warning_system.malloc import keep_heap_for_arrays
    assert keep_heap_for_arrays()
def churn():  # what a feature chunk does: ~0.7 MB arrays made and freed, two at a time
    for _ in range(200):
        np.cumsum(np.ones(86_800, dtype=np.int64))
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    env = {"PATH": "/usr/bin:/bin"}  # no MALLOC_* variables from the caller
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's (a no-op elsewhere)")
def test_kept_heap_stops_array_churn_from_faulting_pages_in():
    tuned, default = _faults("tuned"), _faults("default")
    assert tuned < 50, tuned  # 200 rounds of 2 x 0.7 MB: the pages stay mapped
    assert default > 10 * max(tuned, 1), (default, tuned)  # glibc's defaults give them back and fault them in again


ARENAS_SCRIPT = r"""
import ctypes, sys, threading
import numpy as np
if sys.argv[1] == "tuned":
    from warning_system.malloc import keep_heap_for_arrays
    assert keep_heap_for_arrays()
held, barrier = [], threading.Barrier(8)
def work():  # what the consumer's helper, librdkafka and XGBoost threads do: allocate while others do
    barrier.wait()
    held.append([np.ones(10_000) for _ in range(50)])
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL(None).malloc_stats()  # one "Arena N:" block per arena, on stderr
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's (a no-op elsewhere)")
def test_threads_of_a_tuned_process_share_two_malloc_arenas():
    def arenas(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", ARENAS_SCRIPT, mode], cwd=ROOT, env={"PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stderr.count("Arena ")

    assert arenas("tuned") <= 2
    assert arenas("default") > 2  # glibc's default: an arena per allocating thread, up to 8 per core
