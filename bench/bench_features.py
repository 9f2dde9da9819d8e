"""Feature computation cost per target, in process (predictions.features.compute_features_grouped).

The consumer hands each chunk of sensors' complete history windows to
``compute_features_grouped`` with the batch's new readings as targets. At a
1-minute cadence a 72 h window is ~4,320 rows per sensor while a batch of
20,000 readings over 1,000 sensors brings ~20 targets per sensor, so the
cost per history row matters more than the cost per target.

    .venv/bin/python bench/bench_features.py                      # 1-minute cadence, full windows
    .venv/bin/python bench/bench_features.py --history 300        # sparse history
    .venv/bin/python bench/bench_features.py --glibc-defaults     # without the consumer's allocator setting
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from predictions.features import READING_FIELDS, compute_features_grouped  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=20, help="sensors per call (the consumer's chunk, default 20)")
    parser.add_argument("--history", type=int, default=4320, help="history rows per sensor (default 4,320: 72 h at 1 min)")
    parser.add_argument("--targets", type=int, default=20, help="new readings per sensor (default 20)")
    parser.add_argument("--cadence", type=float, default=60.0, help="seconds between readings")
    parser.add_argument("--missing", type=float, default=0.1, help="fraction of missing values per column")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=30, help="calls per round")
    parser.add_argument("--glibc-defaults", action="store_true",
                        help="leave glibc's allocator as it is instead of the consumer's setting (warning_system.malloc)")
    args = parser.parse_args()
    if not args.glibc_defaults:
        from warning_system.malloc import keep_heap_for_arrays

        keep_heap_for_arrays()

    rng = np.random.default_rng(0)
    rows = args.history + args.targets
    groups = np.repeat(np.arange(args.sensors), rows)
    ts = np.tile(1.7e9 + np.arange(rows) * args.cadence, args.sensors)
    values = {}
    for name in READING_FIELDS:
        column = rng.random(len(ts)) * 10
        column[rng.random(len(ts)) < args.missing] = np.nan
        values[name] = column
    target_groups = np.repeat(np.arange(args.sensors), args.targets)
    target_ts = np.tile(ts[rows - args.targets : rows], args.sensors)
    stages = np.full(len(target_ts), 3.0)

    def call() -> None:
        compute_features_grouped(groups, ts, values, target_groups, target_ts, flood_stage=stages)

    for _ in range(3):
        call()
    per_call = []
    for _ in range(args.rounds):
        start = time.process_time()
        for _ in range(args.calls):
            call()
        per_call.append((time.process_time() - start) / args.calls)
    best, median = min(per_call), statistics.median(per_call)
    targets = args.sensors * args.targets
    print(f"allocator: {'glibc defaults' if args.glibc_defaults else 'the consumer setting (warning_system.malloc)'}")
    print(f"{args.sensors} sensors x ({args.history:,} history + {args.targets} targets) rows per call, "
          f"{args.rounds} rounds of {args.calls} calls (CPU time)")
    print(f"per call: median {median * 1e3:.2f} ms, best {best * 1e3:.2f} ms")
    print(f"per target: median {median / targets * 1e6:.1f} µs; per history row: {median / len(ts) * 1e9:.0f} ns")


if __name__ == "__main__":
    main()
