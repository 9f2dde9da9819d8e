"""The alerts API: filters, pagination, scopes, transitions, cache freshness, device restriction, CSV."""
from __future__ import annotations

import csv
import io

import pytest
from django.core.cache import cache

from alerts.cache import page_writes
from alerts.models import Alert
from sensors.models import Site

from .conftest import T0

pytestmark = pytest.mark.django_db

LIST = "/api/v1/alerts"


@pytest.fixture
def world(sensor, make_sensor, make_alert):
    """Four alerts on three sensors at two sites, triggered one hour apart."""
    other_site = Site.objects.create(name="Riverbend")
    river = make_sensor("RIB-MP-01", site=other_site, kind="river_gauge")
    slope = make_sensor("SLP-02")
    alerts = {
        "flood_open": make_alert(sensor, hazard="flood", level="medium", minute=0),
        "landslide_ack": make_alert(sensor, hazard="landslide", level="high", status="acknowledged", minute=60),
        "river_resolved": make_alert(river, hazard="flood", level="high", status="resolved", minute=120),
        "slope_open": make_alert(slope, hazard="landslide", level="medium", minute=180),
    }
    Alert.objects.filter(pk=alerts["slope_open"].pk).update(source="threshold")
    return {"alerts": alerts, "river": river, "slope": slope, "site": sensor.site, "other_site": other_site}


def ids(response) -> set[int]:
    return {row["id"] for row in response.json()["results"]}


def test_list_without_key_is_401(api_client, world):
    response = api_client.get(LIST)
    assert response.status_code == 401
    assert "detail" in response.json()


def test_list_with_key_lacking_read_scope_is_403(key_client, world):
    assert key_client(scopes=("ingest",)).get(LIST).status_code == 403


def test_list_is_paginated_newest_first(key_client, world):
    client = key_client(scopes=("read",))

    first = client.get(f"{LIST}?page_size=3").json()
    assert set(first) == {"count", "next", "previous", "results"}
    assert first["count"] == 4 and first["previous"] is None and "page=2" in first["next"]
    a = world["alerts"]
    assert [r["id"] for r in first["results"]] == [a["slope_open"].pk, a["river_resolved"].pk, a["landslide_ack"].pk]
    second = client.get(first["next"]).json()
    assert [r["id"] for r in second["results"]] == [a["flood_open"].pk]
    row = first["results"][1]
    assert (row["sensor_id"], row["site"], row["hazard"], row["level"], row["status"]) == ("RIB-MP-01", "Riverbend", "flood", "high", "resolved")


def test_list_pages_past_the_end_are_404_and_last_is_the_last_page(key_client, world):
    client = key_client(scopes=("read",))
    assert client.get(f"{LIST}?page_size=3&page=3").status_code == 404
    last = client.get(f"{LIST}?page_size=3&page=last").json()
    assert last["count"] == 4 and [r["id"] for r in last["results"]] == [world["alerts"]["flood_open"].pk]
    assert client.get(f"{LIST}?page_size=3&page=x").status_code == 404


def test_list_rows_are_exactly_what_the_alert_serializer_gives(key_client, world):
    """The list is fetched as plain rows, not serialized instances: the JSON must not differ by a byte of meaning."""
    from datetime import timedelta

    from django.utils import timezone

    from alerts.api.serializers import AlertSerializer
    from alerts.selectors import alerts_visible

    a = world["alerts"]
    Alert.objects.filter(pk=a["landslide_ack"].pk).update(
        acknowledged_at=timezone.now().replace(microsecond=123456), acknowledged_by="api-key:ops", value=4.0, threshold=3.5,
        note="checked", peak_probability=None,
    )
    Alert.objects.filter(pk=a["river_resolved"].pk).update(resolved_at=a["river_resolved"].triggered_at + timedelta(hours=2))
    expected = AlertSerializer(alerts_visible(), many=True).data

    body = key_client(scopes=("read",)).get(LIST).json()

    assert body["results"] == [dict(row) for row in expected]
    assert [list(row) for row in body["results"]] == [list(AlertSerializer.Meta.fields)] * 4
    ack = next(row for row in body["results"] if row["id"] == a["landslide_ack"].pk)
    assert ack["acknowledged_at"].endswith(".123456Z") and ack["triggered_at"].endswith(":00Z")


@pytest.mark.parametrize(
    "query,expected",
    [
        ("status=open", {"flood_open", "slope_open"}),
        ("status=acknowledged", {"landslide_ack"}),
        ("active=true", {"flood_open", "landslide_ack", "slope_open"}),
        ("active=false", {"river_resolved"}),
        ("hazard=flood", {"flood_open", "river_resolved"}),
        ("level=high", {"landslide_ack", "river_resolved"}),
        ("source=threshold", {"slope_open"}),
        ("sensor_id=RG-001", {"flood_open", "landslide_ack"}),
        ("site=Riverbend", {"river_resolved"}),
        ("since=2026-11-26T08:00:00Z", {"river_resolved", "slope_open"}),
        ("until=2026-11-26T07:00:00Z", {"flood_open", "landslide_ack"}),
        ("since=2026-11-26T07:00:00Z&until=2026-11-26T08:00:00Z&hazard=flood", {"river_resolved"}),
    ],
)
def test_list_filters(key_client, world, query, expected):
    response = key_client(scopes=("read",)).get(f"{LIST}?{query}")

    assert response.status_code == 200
    assert ids(response) == {world["alerts"][name].pk for name in expected}


def test_site_filter_accepts_the_site_id(key_client, world):
    response = key_client(scopes=("read",)).get(f"{LIST}?site={world['other_site'].pk}")

    assert ids(response) == {world["alerts"]["river_resolved"].pk}


@pytest.mark.parametrize(
    "query,field",
    [("status=burning", "status"), ("hazard=meteor", "hazard"), ("level=3", "level"), ("since=yesterday", "since"),
     ("until=2026-13-45", "until"), ("active=maybe", "active"), ("site=" + "x" * 200, "site")],
)
def test_invalid_filter_is_400_naming_the_field(key_client, world, query, field):
    response = key_client(scopes=("read",)).get(f"{LIST}?{query}")

    assert response.status_code == 400
    assert field in response.json()


def test_detail_includes_history_and_explanation(key_client, world):
    alert = world["alerts"]["landslide_ack"]
    alert.events.create(kind="acknowledged", level="high", status="acknowledged", actor="maria", note="on it")

    body = key_client(scopes=("read",)).get(f"{LIST}/{alert.pk}").json()

    assert body["id"] == alert.pk and body["status"] == "acknowledged"
    assert "features" in body
    assert [(e["kind"], e["actor"], e["note"]) for e in body["events"]] == [("raised", "", ""), ("acknowledged", "maria", "on it")]


def test_unknown_alert_is_404(key_client, world):
    assert key_client(scopes=("read",)).get(f"{LIST}/999999999").status_code == 404


def test_acknowledge_needs_manage_scope(key_client, world):
    alert = world["alerts"]["flood_open"]

    response = key_client(scopes=("read",)).post(f"{LIST}/{alert.pk}/acknowledge", {"note": "x"}, format="json")

    assert response.status_code == 403
    alert.refresh_from_db()
    assert alert.status == "open"


def test_acknowledge_records_the_key_as_actor(key_client, world):
    alert = world["alerts"]["flood_open"]

    response = key_client(scopes=("manage",)).post(f"{LIST}/{alert.pk}/acknowledge", {"note": "crew sent"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["acknowledged_by"], body["note"]) == ("acknowledged", "api-key:test", "crew sent")
    assert body["events"][-1]["kind"] == "acknowledged"


def test_acknowledge_without_body_is_allowed(key_client, world):
    alert = world["alerts"]["flood_open"]

    response = key_client(scopes=("manage",)).post(f"{LIST}/{alert.pk}/acknowledge")

    assert response.status_code == 200
    assert response.json()["status"] == "acknowledged"


def test_staff_session_resolves_as_its_username(api_client, staff_user, world):
    api_client.force_login(staff_user)
    alert = world["alerts"]["landslide_ack"]

    response = api_client.post(f"{LIST}/{alert.pk}/resolve", {"note": "slope stable"}, format="json")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["resolved_by"]) == ("resolved", "analyst")


@pytest.mark.parametrize(
    "name,action",
    [("landslide_ack", "acknowledge"), ("river_resolved", "acknowledge"), ("river_resolved", "resolve")],
)
def test_invalid_transition_is_409_with_detail(key_client, world, name, action):
    alert = world["alerts"][name]

    response = key_client(scopes=("manage",)).post(f"{LIST}/{alert.pk}/{action}", {}, format="json")

    assert response.status_code == 409
    assert alert.status in response.json()["detail"]


@pytest.mark.parametrize("body", [{"note": "n" * 2001}, {"note": ["not", "text"]}])
def test_invalid_note_is_400_naming_note(key_client, world, body):
    alert = world["alerts"]["flood_open"]

    response = key_client(scopes=("manage",)).post(f"{LIST}/{alert.pk}/acknowledge", body, format="json")

    assert response.status_code == 400
    assert "note" in response.json()


def test_list_is_cached_and_an_acknowledge_invalidates_it(key_client, world, settings, django_capture_on_commit_callbacks):
    settings.PIPELINE_EAGER = True  # the outbox publisher is not under test here
    reader = key_client(scopes=("read",))
    alert = world["alerts"]["flood_open"]
    assert {r["id"]: r["status"] for r in reader.get(LIST).json()["results"]}[alert.pk] == "open"
    page_writes.flush()  # the page is stored behind the request

    # A write that bypasses the services is not seen: proof that the list is served from the cache.
    Alert.objects.filter(pk=alert.pk).update(message="changed behind the cache's back")
    assert "changed behind" not in str(reader.get(LIST).json())
    assert cache.keys("alerts:list:*")

    with django_capture_on_commit_callbacks(execute=True):
        assert key_client(scopes=("manage",)).post(f"{LIST}/{alert.pk}/acknowledge").status_code == 200

    rows = {r["id"]: r for r in reader.get(LIST).json()["results"]}
    assert rows[alert.pk]["status"] == "acknowledged"


def test_a_page_stored_behind_the_request_after_a_change_is_never_served(key_client, world, settings, django_capture_on_commit_callbacks):
    settings.PIPELINE_EAGER = True
    reader = key_client(scopes=("read",))
    alert = world["alerts"]["flood_open"]
    reader.get(LIST)  # built now; its store is still pending in the writer
    with django_capture_on_commit_callbacks(execute=True):
        assert key_client(scopes=("manage",)).post(f"{LIST}/{alert.pk}/acknowledge").status_code == 200
    page_writes.flush()  # the pre-change page lands after the change committed
    assert cache.keys("alerts:list:*")
    rows = {r["id"]: r for r in reader.get(LIST).json()["results"]}
    assert rows[alert.pk]["status"] == "acknowledged"


def test_pipeline_changes_invalidate_the_cached_list(key_client, sensor, scored, django_capture_on_commit_callbacks):
    from alerts.services import alerts_evaluate_scored

    reader = key_client(scopes=("read",))
    assert reader.get(LIST).json()["count"] == 0

    with django_capture_on_commit_callbacks(execute=True):
        alerts_evaluate_scored(scored=[scored(sensor, 0, flood=0.9)])

    assert reader.get(LIST).json()["count"] == 1


def test_device_key_sees_only_its_sensors_alerts(key_client, world):
    device = key_client(scopes=("read", "manage"), sensors=["RIB-MP-01"])
    everyone = key_client(scopes=("read",))
    everyone.get(LIST)  # warm the cache with the unrestricted list

    assert ids(device.get(LIST)) == {world["alerts"]["river_resolved"].pk}
    foreign = world["alerts"]["flood_open"]
    assert device.get(f"{LIST}/{foreign.pk}").status_code == 404
    assert device.post(f"{LIST}/{foreign.pk}/acknowledge").status_code == 404
    csv_rows = list(csv.DictReader(io.StringIO(b"".join(device.get(f"{LIST}?format=csv").streaming_content).decode())))
    assert [row["sensor_id"] for row in csv_rows] == ["RIB-MP-01"]


def test_csv_export_streams_every_matching_alert_unpaginated(key_client, world):
    Alert.objects.filter(pk=world["alerts"]["flood_open"].pk).update(note="=HYPERLINK(\"http://evil\")")

    response = key_client(scopes=("read",)).get(f"{LIST}?format=csv&active=true&page_size=1")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [int(r["id"]) for r in rows] == [world["alerts"][n].pk for n in ("slope_open", "landslide_ack", "flood_open")]
    flood = rows[-1]
    assert (flood["sensor_id"], flood["hazard"], flood["level"], flood["status"]) == ("RG-001", "flood", "medium", "open")
    assert flood["triggered_at"] == T0.isoformat()
    assert flood["note"].startswith("'=")


def test_csv_export_with_bad_filter_answers_json_400(key_client, world):
    response = key_client(scopes=("read",)).get(f"{LIST}?format=csv&since=soon")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert "since" in response.json()


def test_openapi_schema_documents_alert_endpoints_and_409():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    assert {"/api/v1/alerts", "/api/v1/alerts/{id}", "/api/v1/alerts/{id}/acknowledge", "/api/v1/alerts/{id}/resolve"} <= set(paths)
    for action in ("acknowledge", "resolve"):
        responses = paths[f"/api/v1/alerts/{{id}}/{action}"]["post"]["responses"]
        assert {"200", "400", "401", "403", "404", "409"} <= set(responses)
    list_op = paths["/api/v1/alerts"]["get"]
    assert {p["name"] for p in list_op["parameters"]} >= {"status", "hazard", "level", "sensor_id", "site", "since", "until", "page", "format"}
    assert "text/csv" in list_op["responses"]["200"]["content"]
