"""In-process scoring benchmark: predictions.scoring vs the original joblib + XGBClassifier design.

Why: the consumer needs >= 200,000 rows/s of batch scoring and the API a p99 of
<= 1 ms per single-row score. The original design loaded a joblib-pickled
``XGBClassifier`` and called ``predict_proba`` per request; this measures both on
the same committed booster in the same run.

    python bench/bench_scoring.py [--model-dir models] [--single 5000] [--batch 100000]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import joblib  # noqa: E402
import xgboost as xgb  # noqa: E402

from predictions.features import N_FEATURES  # noqa: E402
from predictions.scoring import ModelRegistry  # noqa: E402


def sample_rows(n: int, seed: int = 0) -> np.ndarray:
    """Feature rows with realistic scale and ~10 % missing values."""
    rng = np.random.default_rng(seed)
    X = rng.gamma(1.5, 2.0, size=(n, N_FEATURES)).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan
    return X


def latency(fn, rows: np.ndarray) -> tuple[float, float]:
    for r in rows[:200]:  # warm-up
        fn(r)
    times = np.empty(len(rows))
    for i, r in enumerate(rows):
        t0 = time.perf_counter_ns()
        fn(r)
        times[i] = time.perf_counter_ns() - t0
    return float(np.percentile(times, 50) / 1e3), float(np.percentile(times, 99) / 1e3)


def throughput(fn, X: np.ndarray, repeats: int = 3) -> float:
    fn(X[:1000])
    best = min(_timed(fn, X) for _ in range(repeats))
    return len(X) / best


def _timed(fn, X):
    t0 = time.perf_counter()
    fn(X)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=str(ROOT / "models"))
    parser.add_argument("--single", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100_000)
    args = parser.parse_args()

    registry = ModelRegistry(args.model_dir)
    singles = sample_rows(args.single, seed=1)
    batch = sample_rows(args.batch, seed=2)

    # Original design: the same boosters wrapped in XGBClassifier, pickled with
    # joblib, loaded back, one predict_proba call per model per request.
    with tempfile.TemporaryDirectory() as tmp:
        classifiers = {}
        for name in ("landslide", "flood"):
            clf = xgb.XGBClassifier()
            clf.load_model(os.path.join(args.model_dir, f"{name}.ubj"))
            joblib.dump(clf, os.path.join(tmp, f"{name}.joblib"))
            classifiers[name] = joblib.load(os.path.join(tmp, f"{name}.joblib"))

    def legacy_one(row):
        r = row.reshape(1, -1)
        return {n: float(c.predict_proba(r)[0, 1]) for n, c in classifiers.items()}

    def legacy_batch(X):
        return {n: c.predict_proba(X)[:, 1] for n, c in classifiers.items()}

    # Both designs must agree before their speed is compared.
    np.testing.assert_allclose(legacy_batch(batch[:2000])["landslide"],
                               registry.score(batch[:2000])["landslide"], rtol=1e-5, atol=1e-6)

    results = [
        ("scoring.ModelRegistry (in-place prediction, per-thread proxy)",
         *latency(registry.score_one, singles), throughput(registry.score, batch)),
        ("original: joblib XGBClassifier.predict_proba",
         *latency(legacy_one, singles[: max(500, args.single // 5)]), throughput(legacy_batch, batch)),
    ]
    print(f"# Scoring benchmark — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"xgboost {xgb.__version__}, numpy {np.__version__}, models {registry.versions}")
    print()
    print("| approach | single-row p50 (µs) | single-row p99 (µs) | batch rows/s (both models) |")
    print("|---|---|---|---|")
    for name, p50, p99, rps in results:
        print(f"| {name} | {p50:.0f} | {p99:.0f} | {rps:,.0f} |")
    print()
    print("Targets: single-row p99 <= 1000 µs; batch >= 200,000 rows/s.")


if __name__ == "__main__":
    main()
