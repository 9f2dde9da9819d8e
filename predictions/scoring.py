"""Fast, validated model serving for the consumer and the API.

Why: scoring sits on the hot path of the Kafka consumer (batches) and of every
``/predictions`` request (single rows). Models are therefore loaded once per
process, validated up front (so a broken deploy fails loudly at load time rather
than returning nonsense) and scored with ``Booster.inplace_predict`` on numpy
arrays, which skips DMatrix construction and the scikit-learn wrapper.

Only XGBoost's native UBJSON format is read, and only from the configured model
directory: parsing it executes no code, unlike pickle/joblib.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
import xgboost as xgb

from predictions.features import FEATURE_NAMES, N_FEATURES

logger = logging.getLogger(__name__)

MODEL_NAMES = ("landslide", "flood")
RETRY_SECONDS = 5.0


class ModelUnavailable(Exception):
    """A model could not be loaded or validated; the message says which and why."""


class _RowScorer:
    """``Booster.inplace_predict`` for a few rows, without its per-call set-up.

    Each ``inplace_predict`` call makes XGBoost build a fresh proxy DMatrix
    whose context re-reads the cgroup CPU quota from /sys (about ten
    syscalls per call). Here each thread keeps one proxy and calls the same C
    entry point ``inplace_predict`` uses (``XGBoosterPredictFromDense``) with
    it. Measured on this 2-core machine: 620 µs -> 260 µs per model per row
    (docs/benchmarks.md, "scoring"); the outputs are identical, which
    tests/predictions/test_scoring.py checks against ``inplace_predict``.

    The booster is the single-threaded one: an API request scores at most
    100 rows, and with two OpenMP threads per call on a busy 2-core host the
    threads' spin-waiting cost more CPU than the trees (100 rows: 2.1 ms of
    CPU with nthread=2, 0.6 ms with nthread=1, both models).
    """

    def __init__(self, booster: xgb.Booster):
        from xgboost.core import make_jcargs

        self.booster = booster
        self._local = threading.local()
        self._args = make_jcargs(
            type=0, training=False, iteration_begin=0, iteration_end=0,
            missing=float("nan"), strict_shape=False, cache_id=0,
        )

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """Probabilities of a C-contiguous float32 ``(n, F)`` array, as a float32 array of n."""
        import ctypes

        from xgboost._data_utils import array_interface
        from xgboost.core import _LIB, _check_call, _ProxyDMatrix, c_bst_ulong

        proxy = getattr(self._local, "proxy", None)
        if proxy is None:
            proxy = self._local.proxy = _ProxyDMatrix()
        shape = ctypes.POINTER(c_bst_ulong)()
        dims = c_bst_ulong()
        preds = ctypes.POINTER(ctypes.c_float)()
        _check_call(_LIB.XGBoosterPredictFromDense(
            self.booster.handle, array_interface(rows), self._args, proxy.handle,
            ctypes.byref(shape), ctypes.byref(dims), ctypes.byref(preds),
        ))
        # The buffer belongs to the booster's thread-local store: copy before the next call.
        return np.ctypeslib.as_array(preds, shape=(rows.shape[0],)).copy()


class _Model:
    __slots__ = ("name", "metadata", "batch_booster", "single_booster", "score_rows")

    def __init__(self, name: str, metadata: dict, raw: bytes, batch_threads: int):
        self.name = name
        self.metadata = metadata
        # Two boosters from the same bytes: one pinned to a single thread for
        # API requests (thread start-up dominates a small prediction and request
        # threads must not oversubscribe the CPU), one using several threads for
        # the consumer's batch throughput. Changing nthread per call is not thread-safe.
        self.single_booster = xgb.Booster(params={"nthread": 1}, model_file=bytearray(raw))
        self.batch_booster = xgb.Booster(params={"nthread": batch_threads}, model_file=bytearray(raw))
        self.score_rows = _RowScorer(self.single_booster)


def _load_model(directory: Path, name: str, batch_threads: int) -> _Model:
    model_path = directory / f"{name}.ubj"
    meta_path = directory / f"{name}.json"
    root = directory.resolve()
    for path in (model_path, meta_path):
        # Only files that really live in the configured directory: a symlink could
        # smuggle in a file from anywhere on the host.
        if path.is_symlink() or (path.exists() and path.resolve().parent != root):
            raise ModelUnavailable(f"{name} model refused: {path} is a link or lies outside {root}")
    if not model_path.is_file():
        raise ModelUnavailable(f"{name} model file missing: {model_path}")
    if not meta_path.is_file():
        raise ModelUnavailable(f"{name} model metadata missing: {meta_path}")
    try:
        metadata = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"{name} model metadata corrupt: {meta_path}: {exc}") from exc
    if not isinstance(metadata, dict):
        raise ModelUnavailable(f"{name} model metadata corrupt: {meta_path}: not a JSON object")
    if metadata.get("features") != list(FEATURE_NAMES):
        raise ModelUnavailable(
            f"{name} model features do not match predictions.features.FEATURE_NAMES: {meta_path}")
    raw = model_path.read_bytes()
    version = hashlib.sha256(raw).hexdigest()[:12]
    if metadata.get("version") != version:
        raise ModelUnavailable(
            f"{name} model corrupt: {model_path} has content hash {version}, "
            f"metadata says {metadata.get('version')!r}")
    try:
        model = _Model(name, metadata, raw, batch_threads)
    except xgb.core.XGBoostError as exc:
        raise ModelUnavailable(f"{name} model corrupt: {model_path}: {exc}") from exc
    if model.single_booster.num_features() != N_FEATURES:
        raise ModelUnavailable(
            f"{name} model expects {model.single_booster.num_features()} features, "
            f"FEATURE_NAMES has {N_FEATURES}: {model_path}")
    return model


class ModelRegistry:
    """The landslide and flood models of one directory, validated at construction."""

    def __init__(self, directory: str | os.PathLike, batch_threads: int | None = None):
        self.directory = Path(directory)
        threads = batch_threads or min(4, os.cpu_count() or 1)
        self._models = {name: _load_model(self.directory, name, threads) for name in MODEL_NAMES}
        logger.info("scoring.models_loaded", extra={"directory": str(self.directory), **self.versions})

    @property
    def versions(self) -> dict[str, str]:
        return {name: m.metadata["version"] for name, m in self._models.items()}

    def info(self) -> dict[str, dict]:
        """What /model-info shows: identity, provenance and held-out quality of each model."""
        out = {}
        for name, m in self._models.items():
            md = m.metadata
            metrics = md.get("metrics", {})
            out[name] = {
                "version": md["version"],
                "trained_at": md.get("trained_at"),
                "horizon_hours": md.get("horizon_hours"),
                "features": md["features"],
                "training_size": md.get("training_size"),
                "metrics": {k: metrics.get(k) for k in ("roc_auc", "pr_auc", "brier", "rows", "positives")},
                "baseline": metrics.get("baseline"),
                "xgboost_version": md.get("libraries", {}).get("xgboost"),
            }
        return out

    def score(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Probabilities for a batch ``(n, F)``; returns float32 arrays keyed by model name."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != N_FEATURES:
            raise ValueError(f"expected an (n, {N_FEATURES}) feature array, got {X.shape}")
        if X.shape[0] == 0:
            return {name: np.zeros(0, dtype=np.float32) for name in self._models}
        return {name: m.batch_booster.inplace_predict(X, missing=np.nan)
                for name, m in self._models.items()}

    def score_one(self, x: np.ndarray) -> dict[str, float]:
        """Probabilities for one feature row (``(F,)`` or ``(1, F)``), as Python floats."""
        row = np.ascontiguousarray(x, dtype=np.float32).reshape(1, -1)
        if row.shape[1] != N_FEATURES:
            raise ValueError(f"expected {N_FEATURES} features, got {row.shape[1]}")
        return {name: float(m.score_rows(row)[0]) for name, m in self._models.items()}

    def score_few(self, X: np.ndarray) -> dict[str, list[float]]:
        """Probabilities for an API request's rows ``(n, F)`` (n up to a few hundred), single-threaded, as floats."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != N_FEATURES or X.shape[0] == 0:
            raise ValueError(f"expected an (n, {N_FEATURES}) feature array with n > 0, got {X.shape}")
        return {name: m.score_rows(X).tolist() for name, m in self._models.items()}


_lock = threading.Lock()
_registry: ModelRegistry | None = None
_last_error: ModelUnavailable | None = None
_last_attempt = 0.0


def get_registry() -> ModelRegistry:
    """The process-wide registry, loaded lazily from ``settings.MODEL_DIR``.

    A failed load is remembered and re-raised without touching the disk for
    ``RETRY_SECONDS``, so a missing model does not turn every request into file I/O,
    yet a fixed deployment is picked up without a restart.
    """
    global _registry, _last_error, _last_attempt
    registry = _registry
    if registry is not None:
        return registry
    with _lock:
        if _registry is not None:
            return _registry
        now = time.monotonic()
        if _last_error is not None and now - _last_attempt < RETRY_SECONDS:
            raise _last_error
        _last_attempt = now
        from django.conf import settings

        try:
            _registry = ModelRegistry(settings.MODEL_DIR, batch_threads=settings.SCORING_BATCH_THREADS or None)
        except ModelUnavailable as exc:
            _last_error = exc
            logger.error("scoring.models_unavailable", extra={"error": str(exc)})
            raise
        _last_error = None
        return _registry


def reset_registry() -> None:
    """Forget the process-wide registry (tests, or after publishing new models)."""
    global _registry, _last_error, _last_attempt
    with _lock:
        _registry, _last_error, _last_attempt = None, None, 0.0


def risk_level(p: float, medium: float = 0.4, high: float = 0.7) -> str:
    """"high" when p > high, "medium" when p > medium, else "low"."""
    if p > high:
        return "high"
    if p > medium:
        return "medium"
    return "low"


def risk_levels(p: np.ndarray, medium: float = 0.4, high: float = 0.7) -> np.ndarray:
    """Vectorised :func:`risk_level` for a batch of probabilities (object array of str)."""
    p = np.asarray(p)
    return np.where(p > high, "high", np.where(p > medium, "medium", "low")).astype(object)
