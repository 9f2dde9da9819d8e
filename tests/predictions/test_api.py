"""POST /api/v1/predictions and GET /api/v1/model-info against the committed models."""
from datetime import timedelta

import pytest
from django.utils import timezone

import hashlib
import json

import xgboost as xgb

from predictions.scoring import get_registry, reset_registry
from sensors.models import Reading

pytestmark = pytest.mark.django_db

URL = "/api/v1/predictions"
STORM = {"rainfall": 60.0, "soil_moisture": 0.48, "ground_movement": 6.0, "water_level": 3.5, "rain_24h": 180.0, "rain_72h": 260.0}


def _publish_retagged_models(src, dst):
    """A new model version (different bytes, same trees) published to ``dst``."""
    for name in ("landslide", "flood"):
        booster = xgb.Booster(model_file=str(src / f"{name}.ubj"))
        booster.set_attr(release="retagged-for-test")
        raw = bytes(booster.save_raw("ubj"))
        (dst / f"{name}.ubj").write_bytes(raw)
        meta = json.loads((src / f"{name}.json").read_text())
        meta["version"] = hashlib.sha256(raw).hexdigest()[:12]
        (dst / f"{name}.json").write_text(json.dumps(meta))


@pytest.fixture(autouse=True)
def _fresh_registry():
    reset_registry()
    yield
    reset_registry()


@pytest.fixture
def predictor(key_client):
    return key_client(scopes=("predict",))


def test_explicit_measurements_are_scored_with_both_models(predictor):
    response = predictor.post(URL, STORM, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    versions = get_registry().versions
    assert body["model_version"] == versions
    for hazard in ("landslide", "flood"):
        assert 0.0 <= body[hazard]["probability"] <= 1.0
        assert body[hazard]["risk"] in ("low", "medium", "high")
    assert body["cached"] is False


def test_risk_levels_follow_the_configured_cutoffs(predictor, settings):
    p = predictor.post(URL, STORM, format="json").json()["landslide"]["probability"]
    settings.RISK_MEDIUM, settings.RISK_HIGH = p - 0.02, p - 0.01
    assert predictor.post(URL, STORM, format="json").json()["landslide"]["risk"] == "high"
    settings.RISK_MEDIUM, settings.RISK_HIGH = 1.0, 1.0  # p > 1 never holds
    assert predictor.post(URL, STORM, format="json").json()["landslide"]["risk"] == "low"


def test_repeated_request_is_served_from_the_cache(predictor):
    first = predictor.post(URL, STORM, format="json").json()
    second = predictor.post(URL, STORM, format="json").json()
    assert first["cached"] is False and second["cached"] is True
    assert first["landslide"] == second["landslide"] and first["flood"] == second["flood"]


def test_a_result_cached_by_another_worker_is_served_from_redis(predictor):
    from predictions.serving import memo, shared_writes

    first = predictor.post(URL, STORM, format="json").json()
    shared_writes.flush()  # the write happens behind the request
    memo.clear()  # as if the next request reached a worker that never saw this body
    second = predictor.post(URL, STORM, format="json").json()
    assert first["cached"] is False and second["cached"] is True
    assert (second["landslide"], second["flood"]) == (first["landslide"], first["flood"])


def test_array_items_are_scored_and_cached_like_single_requests(predictor):
    singles = [predictor.post(URL, body, format="json").json() for body in (STORM, {"water_level": 1.0})]
    batch = predictor.post(URL, [STORM, {"rainfall": 3.0}, {"water_level": 1.0}, {"rainfall": 3.0}], format="json").json()
    assert [item["cached"] for item in batch] == [True, False, True, False]
    assert (batch[0]["landslide"], batch[0]["flood"]) == (singles[0]["landslide"], singles[0]["flood"])
    assert (batch[2]["landslide"], batch[2]["flood"]) == (singles[1]["landslide"], singles[1]["flood"])
    assert batch[1]["flood"] == batch[3]["flood"]
    alone = predictor.post(URL, {"rainfall": 3.0}, format="json").json()
    assert alone["cached"] is True and alone["flood"] == batch[1]["flood"]


def test_prediction_memo_forgets_entries_after_their_ttl_and_beyond_its_size():
    from predictions.serving import _Memo

    memo = _Memo()
    memo.put_many({"expired": (0.1, 0.2)}, ttl=0)
    memo.put_many({"kept": (0.3, 0.4)}, ttl=300)
    assert memo.get("expired") is None and memo.get("kept") == (0.3, 0.4)
    memo.put_many({f"k{i}": (0.0, 0.0) for i in range(_Memo.MAX_ENTRIES)}, ttl=300)
    assert memo.get("kept") is None and memo.get(f"k{_Memo.MAX_ENTRIES - 1}") == (0.0, 0.0)


def test_a_new_model_version_never_serves_old_cached_results(predictor, settings, tmp_path):
    from predictions.serving import memo, shared_writes

    old_versions = predictor.post(URL, STORM, format="json").json()["model_version"]
    shared_writes.flush()
    memo.clear()  # the old result is in Redis, which a new version must not reach either
    assert predictor.post(URL, STORM, format="json").json()["cached"] is True
    _publish_retagged_models(settings.MODEL_DIR, tmp_path)
    settings.MODEL_DIR = tmp_path
    reset_registry()
    body = predictor.post(URL, STORM, format="json").json()
    assert body["cached"] is False
    assert body["model_version"] == get_registry().versions
    assert body["model_version"]["landslide"] != old_versions["landslide"]


def test_array_of_requests_gets_an_array_of_results(predictor):
    response = predictor.post(URL, [STORM, {"water_level": 1.0}, {"rainfall": 0.0}], format="json")
    assert response.status_code == 200
    assert len(response.json()) == 3


def test_sensor_request_scores_the_latest_stored_window(predictor, sensor):
    now = timezone.now().replace(microsecond=0)
    Reading.objects.bulk_create([
        Reading(sensor=sensor, timestamp=now - timedelta(hours=h), received_at=now, rainfall=10.0 + h, water_level=2.0)
        for h in range(5)
    ])
    body = predictor.post(URL, {"sensor_id": sensor.sensor_id}, format="json").json()
    assert body["sensor_id"] == sensor.sensor_id
    assert body["timestamp"] == now.isoformat()
    assert 0 <= body["flood"]["probability"] <= 1


def test_sensor_request_features_equal_the_feature_code_on_the_orm_window(sensor):
    """The binary fetch of the window changes nothing: same features, bit for bit, gaps (NaN) included."""
    import numpy as np

    from predictions.features import compute_features
    from predictions.selectors import WINDOW, sensor_latest_features
    from sensors.records import MEASUREMENTS

    now = timezone.now().replace(microsecond=654321)
    Reading.objects.bulk_create([
        Reading(sensor=sensor, timestamp=now - timedelta(minutes=37 * m, microseconds=m), received_at=now,
                rainfall=None if m % 4 else 0.3 * m, soil_moisture=0.2 + m / 1000, water_level=None if m % 7 == 3 else 2.0 + m / 100)
        for m in range(150)  # more than 72 h: the window must cut
    ])
    rows = list(Reading.objects.filter(sensor=sensor, timestamp__gt=now - WINDOW).order_by("timestamp").values_list("timestamp", *MEASUREMENTS))
    expected = compute_features(
        np.array([r[0].timestamp() for r in rows]),
        {name: np.array([np.nan if r[1 + i] is None else r[1 + i] for r in rows], dtype=np.float64) for i, name in enumerate(MEASUREMENTS)},
        np.array([now.timestamp()]), flood_stage=sensor.flood_stage_m,
    )

    X, when = sensor_latest_features(sensor=sensor)

    assert when == now
    np.testing.assert_array_equal(X, expected)


@pytest.mark.parametrize(
    "payload,field",
    [
        ({"rainfall": "12"}, "rainfall"),
        ({"rainfall": True}, "rainfall"),
        ({"soil_moisture": 1.5}, "soil_moisture"),
        ({"water_level": -51}, "water_level"),
        ({"bogus": 1}, "bogus"),
        ({"sensor_id": "RG-001", "rainfall": 3}, "rainfall"),
        ({"sensor_id": ""}, "sensor_id"),
        ({}, None),
        ({"rainfall": None}, None),
    ],
)
def test_invalid_prediction_request_gets_400_naming_the_field(predictor, sensor, payload, field):
    response = predictor.post(URL, payload, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors[0]["index"] == 0 and errors[0]["field"] == field


def test_nan_in_prediction_request_is_rejected(predictor):
    response = predictor.post(URL, data=b'{"rainfall": NaN}', content_type="application/json")
    assert response.status_code == 400


def test_unknown_sensor_and_sensor_without_readings_get_400(predictor, sensor):
    response = predictor.post(URL, [{"rainfall": 1}, {"sensor_id": "NOPE"}], format="json")
    assert response.status_code == 400 and response.json()["errors"][0] == {"index": 1, "field": "sensor_id", "message": "unknown sensor 'NOPE'"}
    response = predictor.post(URL, {"sensor_id": sensor.sensor_id}, format="json")
    assert response.status_code == 400 and "no readings" in response.json()["errors"][0]["message"]


def test_more_than_100_items_is_rejected(predictor):
    response = predictor.post(URL, [{"rainfall": 1.0}] * 101, format="json")
    assert response.status_code == 400


def test_predictions_need_the_predict_scope(key_client, api_client):
    assert key_client(scopes=("read",)).post(URL, STORM, format="json").status_code == 403
    assert api_client.post(URL, STORM, format="json").status_code == 401


def test_restricted_key_may_not_score_other_sensors(key_client, make_sensor, sensor):
    other = make_sensor("OTHER-1")
    client = key_client(scopes=("predict",), sensors=(sensor.sensor_id,))
    assert client.post(URL, {"sensor_id": other.sensor_id}, format="json").status_code == 403


def test_corrupt_model_gives_503_and_a_failing_health_check(predictor, settings, tmp_path, key_client):
    for name in ("landslide", "flood"):
        src = settings.MODEL_DIR / f"{name}.json"
        (tmp_path / f"{name}.json").write_text(src.read_text())
        (tmp_path / f"{name}.ubj").write_bytes(b"\x00not a model")
    settings.MODEL_DIR = tmp_path
    reset_registry()
    response = predictor.post(URL, STORM, format="json")
    assert response.status_code == 503
    assert "corrupt" in response.json()["detail"] or "model" in response.json()["detail"]
    assert key_client(scopes=("read",)).get("/api/v1/model-info").status_code == 503
    from django.test import Client

    health = Client().get("/api/v1/health")
    assert health.status_code == 503
    assert health.json()["checks"]["models"] == "error"
    assert "landslide" in health.json()["errors"]["models"] or "flood" in health.json()["errors"]["models"]


def test_model_info_lists_each_model_with_metrics_and_cutoffs(key_client, settings):
    response = key_client(scopes=("read",)).get("/api/v1/model-info")
    assert response.status_code == 200
    body = response.json()
    versions = get_registry().versions
    for name in ("landslide", "flood"):
        info = body[name]
        assert info["version"] == versions[name]
        assert info["metrics"]["roc_auc"] >= 0.9
        assert info["risk_cutoffs"] == {"medium": settings.RISK_MEDIUM, "high": settings.RISK_HIGH}
        assert info["xgboost_version"] and info["features"] and info["trained_at"]
