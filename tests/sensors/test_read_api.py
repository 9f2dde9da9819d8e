"""Sensors read API: filters, readings windows, errors, device-key restriction, CSV."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection

from predictions.models import Prediction
from sensors.models import Reading, Sensor

T0 = datetime(2026, 11, 25, 0, 0, tzinfo=timezone.utc)

pytestmark = pytest.mark.django_db


def _readings(sensor, hours: int) -> list[Reading]:
    return Reading.objects.bulk_create(
        Reading(sensor=sensor, timestamp=T0 + timedelta(hours=h), received_at=T0 + timedelta(hours=h), rainfall=float(h), water_level=1.0)
        for h in range(hours)
    )


def _predictions(sensor, hours: int) -> None:
    Prediction.objects.bulk_create(
        Prediction(
            sensor=sensor, timestamp=T0 + timedelta(hours=h), landslide_probability=h / 100, flood_probability=0.1,
            landslide_risk="low", flood_risk="low", landslide_model_version="ls-1", flood_model_version="fl-1",
        )
        for h in range(hours)
    )


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def test_sensor_list_filters_by_status_kind_and_site(make_sensor, key_client, site):
    from sensors.models import Site

    other_site = Site.objects.create(name="Other valley")
    make_sensor("A-1", kind=Sensor.Kind.RAIN_GAUGE)
    make_sensor("A-2", kind=Sensor.Kind.RIVER_GAUGE, status=Sensor.Status.MAINTENANCE)
    make_sensor("B-1", kind=Sensor.Kind.RAIN_GAUGE, site=other_site)
    client = key_client(scopes=("read",))

    def codes(query: str) -> list[str]:
        response = client.get(f"/api/v1/sensors{query}")
        assert response.status_code == 200, response.content
        return [row["sensor_id"] for row in response.json()["results"]]

    assert codes("") == ["A-1", "A-2", "B-1"]
    assert codes("?status=maintenance") == ["A-2"]
    assert codes("?kind=rain_gauge") == ["A-1", "B-1"]
    assert codes(f"?site={other_site.pk}") == ["B-1"]
    assert codes("?kind=rain_gauge&status=active&site=%d" % site.pk) == ["A-1"]
    body = client.get("/api/v1/sensors").json()
    assert body["count"] == 3 and body["results"][0]["site"]["name"] == site.name


def test_sensor_list_rejects_unknown_status_naming_the_field(key_client, sensor):
    response = key_client(scopes=("read",)).get("/api/v1/sensors?status=exploded")
    assert response.status_code == 400
    assert "status" in response.json()


def test_sensor_detail_is_looked_up_by_code(key_client, sensor):
    response = key_client(scopes=("read",)).get("/api/v1/sensors/RG-001")
    assert response.status_code == 200
    body = response.json()
    assert body["sensor_id"] == "RG-001" and body["flood_stage_m"] == 4.0


def test_unknown_sensor_is_404_json(key_client, db):
    client = key_client(scopes=("read",))
    for path in ("/api/v1/sensors/NOPE", "/api/v1/sensors/NOPE/readings", "/api/v1/sensors/NOPE/predictions"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "NOPE" in response.json()["detail"]


def test_sensor_api_requires_read_scope(key_client, api_client, sensor):
    assert key_client(scopes=("ingest",)).get("/api/v1/sensors").status_code == 403
    assert api_client.get("/api/v1/sensors").status_code in (401, 403)


def test_readings_are_newest_first_within_since_until_and_limit(key_client, sensor):
    _readings(sensor, 48)
    client = key_client(scopes=("read",))

    body = client.get("/api/v1/sensors/RG-001/readings").json()
    stamps = [row["timestamp"] for row in body["results"]]
    assert len(stamps) == 48 and stamps == sorted(stamps, reverse=True)
    assert body["results"][0]["rainfall"] == 47.0
    assert set(body["results"][0]) == {"timestamp", "received_at", "rainfall", "soil_moisture", "ground_movement", "water_level"}

    since, until = T0 + timedelta(hours=10), T0 + timedelta(hours=20)
    body = client.get("/api/v1/sensors/RG-001/readings", {"since": _iso(since), "until": _iso(until)}).json()
    assert [row["rainfall"] for row in body["results"]] == [float(h) for h in range(20, 9, -1)]
    assert body["next"] is None

    body = client.get("/api/v1/sensors/RG-001/readings", {"since": _iso(since), "limit": 5}).json()
    assert [row["rainfall"] for row in body["results"]] == [47.0, 46.0, 45.0, 44.0, 43.0]


def test_readings_next_link_walks_back_without_gaps_or_repeats(key_client, sensor):
    _readings(sensor, 12)
    client = key_client(scopes=("read",))
    seen: list[float] = []
    url = "/api/v1/sensors/RG-001/readings?limit=5"
    while url:
        body = client.get(url).json()
        seen.extend(row["rainfall"] for row in body["results"])
        url = body["next"]
    assert seen == [float(h) for h in range(11, -1, -1)]


def test_readings_reject_bad_window_parameters_naming_the_field(key_client, sensor):
    client = key_client(scopes=("read",))
    cases = {
        "since": {"since": "yesterday"},
        "until": {"until": "2026-13-45"},
        "limit": {"limit": "0"},
    }
    for field, params in cases.items():
        response = client.get("/api/v1/sensors/RG-001/readings", params)
        assert response.status_code == 400, field
        assert field in response.json(), response.json()
    too_many = client.get("/api/v1/sensors/RG-001/readings", {"limit": 5001})
    assert too_many.status_code == 400 and "limit" in too_many.json()
    inverted = client.get("/api/v1/sensors/RG-001/readings", {"since": _iso(T0 + timedelta(hours=2)), "until": _iso(T0)})
    assert inverted.status_code == 400 and "until" in inverted.json()


def test_predictions_are_newest_first_with_the_same_window(key_client, sensor):
    _predictions(sensor, 10)
    body = key_client(scopes=("read",)).get("/api/v1/sensors/RG-001/predictions", {"limit": 3, "until": _iso(T0 + timedelta(hours=5))}).json()
    assert [row["landslide_probability"] for row in body["results"]] == [0.05, 0.04, 0.03]
    assert body["results"][0]["landslide_model_version"] == "ls-1"
    assert body["next"] is not None


def test_restricted_key_sees_only_its_sensors(key_client, make_sensor, sensor):
    make_sensor("OTHER-1")
    _readings(sensor, 2)
    client = key_client(scopes=("read",), sensors=("RG-001",))
    assert [row["sensor_id"] for row in client.get("/api/v1/sensors").json()["results"]] == ["RG-001"]
    assert client.get("/api/v1/sensors/RG-001/readings").status_code == 200
    for path in ("/api/v1/sensors/OTHER-1", "/api/v1/sensors/OTHER-1/readings", "/api/v1/sensors/OTHER-1/predictions"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert "OTHER-1" in response.json()["detail"]


def test_readings_export_as_csv(key_client, sensor):
    _readings(sensor, 3)
    response = key_client(scopes=("read",)).get("/api/v1/sensors/RG-001/readings?format=csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "RG-001" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [float(r["rainfall"]) for r in rows] == [2.0, 1.0, 0.0]
    assert datetime.fromisoformat(rows[0]["timestamp"]) == T0 + timedelta(hours=2)


def test_csv_errors_stay_json(key_client, sensor):
    response = key_client(scopes=("read",)).get("/api/v1/sensors/RG-001/readings?format=csv&limit=abc")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert "limit" in response.json()


def test_readings_rows_are_the_stored_values_with_iso_8601_utc_timestamps(key_client, sensor):
    """The page is exactly what the ORM's .values() rendered before the binary fetch: same keys, values, order and text."""
    import orjson

    from sensors.selectors import READING_FIELDS

    stamps = [T0 + timedelta(minutes=m, microseconds=us) for m, us in ((0, 0), (1, 123), (2, 999999), (3, 500000))]
    Reading.objects.bulk_create([
        Reading(sensor=sensor, timestamp=stamps[0], received_at=stamps[0], rainfall=0.1, soil_moisture=None, water_level=-2.5),
        Reading(sensor=sensor, timestamp=stamps[1], received_at=stamps[2], rainfall=47.0, ground_movement=1e-05),
        Reading(sensor=sensor, timestamp=stamps[2], received_at=stamps[2], soil_moisture=0.30000000000000004),
        Reading(sensor=sensor, timestamp=stamps[3], received_at=stamps[3], water_level=99.99),
    ])
    expected = list(Reading.objects.filter(sensor=sensor).order_by("-timestamp").values(*READING_FIELDS))

    response = key_client(scopes=("read",)).get("/api/v1/sensors/RG-001/readings")

    assert response.status_code == 200
    body = response.json()
    assert body["results"] == orjson.loads(orjson.dumps(expected))
    assert [list(row) for row in body["results"]] == [list(READING_FIELDS)] * 4
    assert [row["timestamp"] for row in body["results"]] == [
        "2026-11-25T00:03:00.500000+00:00", "2026-11-25T00:02:00.999999+00:00",
        "2026-11-25T00:01:00.000123+00:00", "2026-11-25T00:00:00+00:00",
    ]
    assert response.content.count(b'"rainfall":47.0') == 1  # floats keep their JSON spelling (47.0, not 47)


def test_predictions_rows_are_the_stored_values(key_client, sensor):
    import orjson

    from sensors.selectors import PREDICTION_FIELDS

    _predictions(sensor, 3)
    expected = list(Prediction.objects.filter(sensor=sensor).order_by("-timestamp").values(*PREDICTION_FIELDS))
    body = key_client(scopes=("read",)).get("/api/v1/sensors/RG-001/predictions").json()
    assert body == {"sensor_id": "RG-001", "results": orjson.loads(orjson.dumps(expected)), "next": None}


def test_known_sensor_without_readings_is_an_empty_page_not_a_404(key_client, sensor):
    body = key_client(scopes=("read",)).get("/api/v1/sensors/RG-001/readings").json()
    assert body == {"sensor_id": "RG-001", "results": [], "next": None}


@pytest.mark.parametrize("since,until", [(False, False), (True, False), (False, True), (True, True)])
def test_window_queries_are_served_by_the_sensor_timestamp_index_without_sorting(sensor, since, until):
    """The 10-million-row contract: every window statement walks (sensor, timestamp DESC) and needs no Sort node."""
    from sensors.selectors import WINDOW_SQL

    _readings(sensor, 5)
    params = [sensor.sensor_id, *([T0] if since else []), *([T0 + timedelta(hours=3)] if until else []), 100]
    with connection.cursor() as cursor:
        # A tiny test table tempts the planner into a bitmap scan + sort; on a large table the
        # ordered index scan wins. Turn the small-table shortcuts off to check the index can serve it.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute("EXPLAIN " + WINDOW_SQL[Reading][since, until], params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "reading_sensor_timestamp_uniq" in plan, plan
    assert "Sort" not in plan, plan


@pytest.mark.parametrize("query", [
    "", "limit=500", "limit=1", "limit=5000", "limit=0500", "limit=0", "limit=5001", "limit=-3", "limit=+7", "limit=7.0",
    "limit= 7", "limit=٣", "limit=abc", "limit=" + "9" * 5000, "limit=5&limit=6", "limit=", "since=2026-01-01T00:00:00Z",
    "limit=10&until=2026-01-01T00:00:00Z", "format=csv&limit=3", "until=2026-01-01T00:00:00Z&since=2026-02-01T00:00:00Z",
])
def test_window_query_gives_what_the_serializer_gives(query):
    """The fast path for plain limits decides exactly as WindowQuerySerializer does, errors included."""
    from django.http import QueryDict
    from rest_framework.exceptions import ValidationError

    from sensors.api.serializers import WindowQuerySerializer, window_query

    params = QueryDict(query)
    reference = WindowQuerySerializer(data=params)
    if reference.is_valid():
        assert window_query(params) == reference.validated_data
    else:
        with pytest.raises(ValidationError) as raised:
            window_query(params)
        assert raised.value.detail == reference.errors
