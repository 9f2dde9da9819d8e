"""The server-side SVG chart builder: valid SVG, series, gaps, guides, the trigger marker, escaping."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest

from sensors.charts import Guide, Marker, Series, nice_ticks, sensor_chart_panels, time_chart, time_ticks

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2026, 11, 23, 0, 0, tzinfo=timezone.utc)
END = START + timedelta(hours=72)


def _hourly(values):
    return [(START + timedelta(hours=i), v) for i, v in enumerate(values)]


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def test_chart_is_valid_svg_with_one_polyline_per_series_and_the_trigger_marker():
    svg = time_chart(
        title="Risk", start=START, end=END, y_min=0, y_max=1,
        series=[Series("landslide", _hourly([i / 100 for i in range(73)])), Series("flood", _hourly([0.1] * 73))],
        marker=Marker(at=START + timedelta(hours=60)),
    )
    root = _parse(svg)
    lines = root.findall(f".//{SVG}polyline")
    assert [p.get("data-series") for p in lines] == ["landslide", "flood"]
    assert len(lines[0].get("points").split()) == 73
    marker = root.find(f".//{SVG}g[@data-marker='trigger']")
    assert marker is not None
    x = float(marker.find(f"{SVG}line").get("x1"))
    left, right = 52, 720 - 12
    assert x == pytest.approx(left + (right - left) * 60 / 72, abs=0.2)


def test_higher_values_are_drawn_higher():
    root = _parse(time_chart(title="t", start=START, end=END, series=[Series("s", _hourly([0.0, 10.0]))]))
    (p0, p1) = [tuple(map(float, pt.split(","))) for pt in root.find(f".//{SVG}polyline").get("points").split()]
    assert p1[1] < p0[1]  # SVG y grows downwards


def test_marker_outside_the_window_is_not_drawn():
    svg = time_chart(title="t", start=START, end=END, series=[Series("s", _hourly([1, 2, 3]))], marker=Marker(at=START - timedelta(hours=1)))
    assert _parse(svg).find(f".//{SVG}g[@data-marker]") is None


def test_missing_values_break_the_line_instead_of_bridging_the_gap():
    svg = time_chart(title="t", start=START, end=END, series=[Series("s", _hourly([1, 2, None, float("nan"), 5, 6, 7]))])
    lines = _parse(svg).findall(f".//{SVG}polyline")
    assert [len(p.get("points").split()) for p in lines] == [2, 3]


def test_empty_chart_says_no_data():
    root = _parse(time_chart(title="t", start=START, end=END, series=[Series("s", [])]))
    assert root.find(f".//{SVG}polyline") is None
    assert root.find(f".//{SVG}text[@class='no-data']").text == "No data in this window"


def test_guides_are_drawn_and_widen_the_axis_to_include_them():
    svg = time_chart(title="Water level", unit="m", start=START, end=END, series=[Series("w", _hourly([1.0, 1.5, 2.0]))], guides=[Guide("flood stage", 4.0)])
    root = _parse(svg)
    guide = root.find(f".//{SVG}g[@class='guide']")
    assert guide is not None and guide.find(f"{SVG}text").text == "flood stage"
    assert "4" in [t.text for t in root.findall(f".//{SVG}g[@class='y-axis']/{SVG}text")]


def test_text_is_escaped():
    svg = time_chart(title='<script>alert("x")</script>', start=START, end=END, series=[Series("a&b <c>", _hourly([1, 2]))])
    root = _parse(svg)
    assert "<script>" not in svg
    assert root.find(f"{SVG}title").text == '<script>alert("x")</script>'


def test_dense_series_are_reduced_but_keep_their_peak():
    values = [1.0] * 5000
    values[2500] = 99.0
    points = [(START + timedelta(seconds=50 * i), v) for i, v in enumerate(values)]
    root = _parse(time_chart(title="t", start=START, end=END, series=[Series("s", points)]))
    coords = [tuple(map(float, pt.split(","))) for pt in root.find(f".//{SVG}polyline").get("points").split()]
    assert len(coords) < 2 * 720
    plot_top, plot_height = 28, 240 - 28 - 44
    assert min(y for _, y in coords) == pytest.approx(plot_top + (1 - 99 / 100) * plot_height, abs=0.1)  # 99 on a 0-100 axis


def test_axis_ticks_are_round():
    assert nice_ticks(0, 1) == [0, 0.25, 0.5, 0.75, 1.0]
    assert nice_ticks(0, 37) == [0, 10, 20, 30, 40]
    ticks = time_ticks(START + timedelta(minutes=7), END)
    assert all(t.minute == 0 and t.hour % 12 == 0 for t in ticks) and len(ticks) <= 8


def test_end_must_follow_start():
    with pytest.raises(ValueError):
        time_chart(title="t", start=END, end=START, series=[])


@pytest.mark.django_db
def test_sensor_panels_draw_risk_and_each_reported_measurement_with_thresholds(sensor):
    from predictions.models import Prediction
    from sensors.models import Reading

    Reading.objects.bulk_create(Reading(sensor=sensor, timestamp=START + timedelta(hours=h), received_at=START, rainfall=float(h), water_level=2.0) for h in range(10))
    Prediction.objects.create(sensor=sensor, timestamp=START + timedelta(hours=3), landslide_probability=0.5, flood_probability=0.2,
                              landslide_risk="medium", flood_risk="low", landslide_model_version="a", flood_model_version="b")
    panels = sensor_chart_panels(sensor=sensor, start=START, end=END, trigger_at=START + timedelta(hours=5))
    assert [p.title for p in panels] == ["Risk", "Rainfall", "Water level"]
    for panel in panels:
        root = _parse(panel.svg)
        assert root.find(f".//{SVG}g[@data-marker='trigger']") is not None
    water = _parse(panels[2].svg)
    assert water.find(f".//{SVG}g[@class='guide']/{SVG}text").text == "flood stage"
