"""Contract tests for predictions.scoring: validation at load, monotonicity, risk levels."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from predictions.features import FEATURE_NAMES, features_from_measurements
from predictions.scoring import (
    ModelRegistry,
    ModelUnavailable,
    get_registry,
    reset_registry,
    risk_level,
    risk_levels,
)

MODEL_DIR = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def registry():
    return ModelRegistry(MODEL_DIR)


@pytest.fixture
def model_copy(tmp_path):
    for name in ("landslide", "flood"):
        for ext in ("ubj", "json"):
            shutil.copy(MODEL_DIR / f"{name}.{ext}", tmp_path)
    return tmp_path


def _bases(n=60, seed=0):
    """Varied feature rows (some fields missing) to hold fixed while one feature moves."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        rain24 = float(rng.uniform(0, 150))
        payload = {
            "rainfall": float(rng.uniform(0, 40)), "soil_moisture": float(rng.uniform(0.1, 0.5)),
            "ground_movement": float(rng.lognormal(-3, 1.5)), "water_level": float(rng.uniform(0, 6)),
            "rain_3h": float(rng.uniform(0, 60)), "rain_24h": rain24,
            "rain_72h_excl_24h": float(rng.uniform(0, 200)), "soil_moisture_rate": float(rng.normal(0, 0.01)),
            "water_level_rate": float(rng.normal(0, 0.2)), "ground_movement_acceleration": float(rng.normal(0, 0.1)),
            "hours_since_previous": 1.0, "flood_stage": float(rng.uniform(2, 5)),
        }
        for key in list(payload):
            if rng.random() < 0.15:
                payload[key] = None
        rows.append(payload)
    return rows


def test_more_72h_rain_never_lowers_landslide_probability(registry):
    grid = [0, 10, 25, 50, 100, 150, 250, 400, 700, 1000]
    col = FEATURE_NAMES.index("rain_72h")
    for payload in _bases():
        X = np.repeat(features_from_measurements(payload), len(grid), axis=0)
        X[:, col] = grid
        p = registry.score(X)["landslide"]
        assert np.all(np.diff(p) >= 0), p


def test_higher_water_level_never_lowers_flood_probability(registry):
    grid = np.linspace(-2, 12, 15)
    for payload in _bases(seed=1):
        rows = [features_from_measurements({**payload, "water_level": float(w)}) for w in grid]
        p = registry.score(np.vstack(rows))["flood"]
        assert np.all(np.diff(p) >= 0), p


def test_score_one_matches_batch_scoring(registry):
    X = np.vstack([features_from_measurements(p) for p in _bases(n=5, seed=2)])
    batch = registry.score(X)
    for i in range(len(X)):
        one = registry.score_one(X[i])
        assert one["landslide"] == pytest.approx(float(batch["landslide"][i]), abs=1e-6)
        assert one["flood"] == pytest.approx(float(batch["flood"][i]), abs=1e-6)


def test_registry_exposes_versions_and_model_info(registry):
    info = registry.info()
    assert set(registry.versions) == {"landslide", "flood"}
    for name, item in info.items():
        assert item["version"] == registry.versions[name]
        assert item["features"] == list(FEATURE_NAMES)
        assert item["metrics"]["roc_auc"] >= 0.9 and item["xgboost_version"]


def test_missing_model_file_raises_model_unavailable(model_copy):
    (model_copy / "flood.ubj").unlink()
    with pytest.raises(ModelUnavailable, match=r"flood model file missing: .*flood\.ubj"):
        ModelRegistry(model_copy)


def test_corrupt_model_file_raises_model_unavailable(model_copy):
    (model_copy / "landslide.ubj").write_bytes(b"\x00garbage")
    with pytest.raises(ModelUnavailable, match=r"landslide model corrupt: .*landslide\.ubj"):
        ModelRegistry(model_copy)


def test_unparseable_model_with_matching_hash_raises_model_unavailable(model_copy):
    import hashlib

    raw = b"{not a model"
    (model_copy / "landslide.ubj").write_bytes(raw)
    meta = json.loads((model_copy / "landslide.json").read_text())
    meta["version"] = hashlib.sha256(raw).hexdigest()[:12]
    (model_copy / "landslide.json").write_text(json.dumps(meta))
    with pytest.raises(ModelUnavailable, match="landslide model corrupt"):
        ModelRegistry(model_copy)


def test_feature_mismatch_raises_model_unavailable(model_copy):
    meta = json.loads((model_copy / "flood.json").read_text())
    meta["features"] = meta["features"][:-1]
    (model_copy / "flood.json").write_text(json.dumps(meta))
    with pytest.raises(ModelUnavailable, match="flood model features do not match"):
        ModelRegistry(model_copy)


def test_get_registry_reraises_model_unavailable_until_reset(tmp_path, settings):
    settings.MODEL_DIR = tmp_path
    reset_registry()
    try:
        for _ in range(2):
            with pytest.raises(ModelUnavailable, match="landslide model file missing"):
                get_registry()
        settings.MODEL_DIR = MODEL_DIR
        reset_registry()
        assert get_registry() is get_registry()
    finally:
        reset_registry()


@pytest.mark.parametrize("threads, expected", [(1, "1"), (2, "2")])
def test_batch_scoring_uses_the_configured_threads_and_requests_one(settings, threads, expected):
    """SCORING_BATCH_THREADS reaches the consumer's booster; API requests always score on one thread."""
    settings.SCORING_BATCH_THREADS = threads
    reset_registry()
    try:
        model = get_registry()._models["flood"]
        nthread = lambda booster: json.loads(booster.save_config())["learner"]["generic_param"]["nthread"]  # noqa: E731
        assert nthread(model.batch_booster) == expected
        assert nthread(model.single_booster) == "1"
    finally:
        reset_registry()


@pytest.mark.parametrize("p, level", [(0.0, "low"), (0.4, "low"), (0.41, "medium"),
                                      (0.7, "medium"), (0.71, "high"), (1.0, "high")])
def test_risk_level_cut_offs(p, level):
    assert risk_level(p) == level
    assert risk_levels(np.array([p]))[0] == level


def test_risk_level_uses_given_cut_offs():
    assert risk_level(0.3, medium=0.2, high=0.5) == "medium"
    assert list(risk_levels(np.array([0.1, 0.3, 0.6]), medium=0.2, high=0.5)) == ["low", "medium", "high"]


def test_single_row_fast_path_equals_booster_inplace_predict(registry):
    """score_one reuses a proxy per thread; it must give exactly what inplace_predict gives."""
    import threading

    from predictions.features import N_FEATURES

    rng = np.random.default_rng(3)
    rows = rng.uniform(0, 1, size=(50, N_FEATURES)).astype(np.float32)
    rows[::3, 5] = np.nan
    results: dict[int, list] = {}

    def score(worker: int) -> None:
        results[worker] = [registry.score_one(row) for row in rows]

    threads = [threading.Thread(target=score, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, model in registry._models.items():
        expected = model.single_booster.inplace_predict(rows, missing=np.nan)
        for worker in results.values():
            assert [r[name] for r in worker] == [float(v) for v in expected]


def test_request_scoring_of_several_rows_equals_booster_inplace_predict(registry):
    """score_few (API arrays: the single-threaded booster, per-thread proxy) gives exactly what inplace_predict gives."""
    from predictions.features import N_FEATURES

    rng = np.random.default_rng(4)
    rows = rng.uniform(0, 1, size=(100, N_FEATURES)).astype(np.float32)
    rows[::4, 2] = np.nan
    scores = registry.score_few(rows)
    for name, model in registry._models.items():
        assert scores[name] == [float(v) for v in model.single_booster.inplace_predict(rows, missing=np.nan)]
    assert registry.score_few(rows[:1]) == {name: [p] for name, p in registry.score_one(rows[0]).items()}
