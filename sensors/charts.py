"""Server-side SVG time-series charts for the analyst pages.

Why SVG built in Python: the pages must work in a control room with no
internet (no CDN chart library), render without JavaScript, and print. A
chart is a few polylines, axis ticks, optional horizontal guide lines
(thresholds, risk cut-offs) and an optional vertical marker (the reading
that triggered an alert). Every piece of text is XML-escaped here, so the
result can be marked safe in a template.

Dense series are reduced to at most two points (the minimum and the
maximum) per horizontal pixel, which keeps peaks visible — a hidden peak is
the one thing a hazard chart must never do.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape

from django.conf import settings

from .selectors import sensor_prediction_series, sensor_reading_series

Point = tuple[datetime, float | None]

PALETTE = ("#c0392b", "#1f6fb2", "#2e8b57", "#8e44ad", "#d35400", "#16a085")

# Candidate x-axis steps, smallest first; the first giving at most MAX_X_TICKS ticks wins.
_X_STEPS = (
    timedelta(minutes=15), timedelta(minutes=30), timedelta(hours=1), timedelta(hours=2),
    timedelta(hours=3), timedelta(hours=6), timedelta(hours=12), timedelta(days=1),
    timedelta(days=2), timedelta(days=7),
)
MAX_X_TICKS = 8
Y_TICKS = 5


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[Point]
    color: str = ""


@dataclass(frozen=True)
class Guide:
    """A horizontal reference line, e.g. a sensor threshold or a risk cut-off."""

    label: str
    value: float
    color: str = "#7f8c8d"


@dataclass(frozen=True)
class Marker:
    """A vertical line at an instant, e.g. the reading that triggered an alert."""

    at: datetime
    label: str = "trigger"
    color: str = "#e67e22"


@dataclass
class _Frame:
    start: datetime
    end: datetime
    y_min: float
    y_max: float
    left: float
    top: float
    width: float
    height: float
    span: float = field(init=False)

    def __post_init__(self) -> None:
        self.span = max((self.end - self.start).total_seconds(), 1.0)

    def x(self, at: datetime) -> float:
        return self.left + (at - self.start).total_seconds() / self.span * self.width

    def y(self, value: float) -> float:
        rng = self.y_max - self.y_min or 1.0
        return self.top + (1.0 - (value - self.y_min) / rng) * self.height


def nice_ticks(lo: float, hi: float, count: int = Y_TICKS) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 x 10^n steps) covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(value, 10))
    return ticks


def time_ticks(start: datetime, end: datetime) -> list[datetime]:
    span = end - start
    step = next((s for s in _X_STEPS if span / s <= MAX_X_TICKS), _X_STEPS[-1])
    epoch = datetime(1970, 1, 1, tzinfo=start.tzinfo)
    offset = (start - epoch) % step
    tick = start if not offset else start - offset + step
    ticks = []
    while tick <= end:
        ticks.append(tick)
        tick += step
    return ticks


def _fmt_time(at: datetime, span: timedelta) -> str:
    return at.strftime("%d %b" if span > timedelta(days=3) else "%d %H:%M")


def _fmt_value(value: float) -> str:
    return f"{value:g}"


def _reduce(points: list[tuple[float, float]], columns: int) -> list[tuple[float, float]]:
    """Keep the min and max of each pixel column (in time order) when there are too many points."""
    if len(points) <= 2 * columns:
        return points
    out: list[tuple[float, float]] = []
    bucket: list[tuple[float, float]] = []
    current = None
    for px, py in points:
        column = int(px)
        if column != current and bucket:
            out.extend(_min_max(bucket))
            bucket = []
        current = column
        bucket.append((px, py))
    if bucket:
        out.extend(_min_max(bucket))
    return out


def _min_max(bucket: list[tuple[float, float]]) -> list[tuple[float, float]]:
    lo = max(bucket, key=lambda p: p[1])  # SVG y grows downwards: the largest y is the minimum value
    hi = min(bucket, key=lambda p: p[1])
    if lo is hi:
        return [lo]
    return [lo, hi] if lo[0] <= hi[0] else [hi, lo]


def _segments(series: Series, frame: _Frame) -> list[list[tuple[float, float]]]:
    """Polyline segments; a missing value (None or NaN) breaks the line instead of bridging a gap."""
    segments: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for at, value in sorted(series.points, key=lambda p: p[0]):
        if at < frame.start or at > frame.end:
            continue
        if value is None or (isinstance(value, float) and math.isnan(value)):
            if current:
                segments.append(current)
                current = []
            continue
        clamped = min(max(value, frame.y_min), frame.y_max)
        current.append((frame.x(at), frame.y(clamped)))
    if current:
        segments.append(current)
    return [_reduce(s, int(frame.width)) for s in segments]


def time_chart(
    *,
    title: str,
    series: Sequence[Series],
    start: datetime,
    end: datetime,
    unit: str = "",
    y_min: float | None = None,
    y_max: float | None = None,
    guides: Sequence[Guide] = (),
    marker: Marker | None = None,
    width: int = 720,
    height: int = 240,
) -> str:
    """One SVG chart of time series over [start, end]. Returns the markup (all text escaped)."""
    if end <= start:
        raise ValueError("end must be after start")
    values = [v for s in series for at, v in s.points if v is not None and not (isinstance(v, float) and math.isnan(v)) and start <= at <= end]
    guide_values = [g.value for g in guides]
    lo = y_min if y_min is not None else min(values + guide_values, default=0.0)
    hi = y_max if y_max is not None else max(values + guide_values, default=1.0)
    if y_min is None and lo > 0 and lo < (hi - lo):
        lo = 0.0  # small positive minima read better from zero
    ticks = nice_ticks(lo, hi)
    lo = min(lo, ticks[0]) if y_min is None else lo
    hi = max(hi, ticks[-1]) if y_max is None else hi
    ticks = [t for t in ticks if lo - 1e-9 <= t <= hi + 1e-9]

    frame = _Frame(start=start, end=end, y_min=lo, y_max=hi, left=52, top=28, width=width - 52 - 12, height=height - 28 - 44)
    span = end - start
    colors = [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    label = f"{title} ({unit})" if unit else title
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMidYMid meet" role="img" aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
        f'<text class="chart-title" x="{frame.left}" y="16" font-size="13" font-weight="600">{escape(label)}</text>',
        f'<rect x="{frame.left}" y="{frame.top}" width="{frame.width:.1f}" height="{frame.height:.1f}" fill="none" stroke="#ccd"/>',
    ]
    out.append('<g class="y-axis" font-size="11" text-anchor="end">')
    for tick in ticks:
        y = frame.y(tick)
        out.append(f'<line x1="{frame.left}" x2="{frame.left + frame.width:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eef"/>')
        out.append(f'<text x="{frame.left - 6}" y="{y + 4:.1f}">{escape(_fmt_value(tick))}</text>')
    out.append("</g>")
    out.append('<g class="x-axis" font-size="11" text-anchor="middle">')
    for tick in time_ticks(start, end):
        x = frame.x(tick)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{frame.top + frame.height:.1f}" y2="{frame.top + frame.height + 5:.1f}" stroke="#889"/>')
        out.append(f'<text x="{x:.1f}" y="{frame.top + frame.height + 18:.1f}">{escape(_fmt_time(tick, span))}</text>')
    out.append("</g>")
    for guide in guides:
        if lo <= guide.value <= hi:
            y = frame.y(guide.value)
            out.append(
                f'<g class="guide"><line x1="{frame.left}" x2="{frame.left + frame.width:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                f'stroke="{escape(guide.color)}" stroke-dasharray="6 4"/>'
                f'<text x="{frame.left + 4}" y="{y - 4:.1f}" font-size="10" fill="{escape(guide.color)}">'
                f"{escape(guide.label)}</text></g>"
            )
    drawn = 0
    for s, color in zip(series, colors):
        for segment in _segments(s, frame):
            drawn += 1
            if len(segment) == 1:
                (x, y), = segment
                out.append(f'<circle class="series" data-series="{escape(s.label)}" cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{escape(color)}"/>')
                continue
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in segment)
            out.append(f'<polyline class="series" data-series="{escape(s.label)}" fill="none" stroke="{escape(color)}" stroke-width="2" points="{pts}"/>')
    if not drawn:
        out.append(
            f'<text class="no-data" x="{frame.left + frame.width / 2:.1f}" y="{frame.top + frame.height / 2:.1f}" '
            f'font-size="13" text-anchor="middle" fill="#778">No data in this window</text>'
        )
    if marker is not None and start <= marker.at <= end:
        x = frame.x(marker.at)
        out.append(
            f'<g class="marker" data-marker="{escape(marker.label)}"><line x1="{x:.1f}" x2="{x:.1f}" y1="{frame.top}" '
            f'y2="{frame.top + frame.height:.1f}" stroke="{escape(marker.color)}" stroke-width="2" stroke-dasharray="3 3"/>'
            f'<text x="{x + 4:.1f}" y="{frame.top + 12}" font-size="11" fill="{escape(marker.color)}">{escape(marker.label)}</text></g>'
        )
    out.append(f'<g class="legend" font-size="11" transform="translate({frame.left},{height - 8})">')
    offset = 0
    for s, color in zip(series, colors):
        out.append(f'<rect x="{offset}" y="-9" width="10" height="10" fill="{escape(color)}"/>')
        out.append(f'<text x="{offset + 14}" y="0">{escape(s.label)}</text>')
        offset += 14 + 7 * len(s.label) + 16
    out.append("</g></svg>")
    return "".join(out)


@dataclass(frozen=True)
class Panel:
    title: str
    svg: str


# (field, title, unit, sensor threshold attribute, threshold label)
MEASUREMENT_PANELS = (
    ("rainfall", "Rainfall", "mm/h", "rainfall_limit_mm_h", "limit"),
    ("soil_moisture", "Soil moisture", "fraction", "soil_moisture_limit", "limit"),
    ("ground_movement", "Ground movement", "mm/h", "ground_movement_limit_mm_h", "limit"),
    ("water_level", "Water level", "m", "flood_stage_m", "flood stage"),
)


def sensor_chart_panels(*, sensor, start: datetime, end: datetime, trigger_at: datetime | None = None) -> list[Panel]:
    """The charts of a sensor page or alert page: risk first, then each measurement the sensor reports.

    The risk chart is always drawn (an empty one says "no data", which is
    itself information); a measurement chart only when the sensor reported
    that measurement in the window. Thresholds and risk cut-offs are guides,
    the alert's trigger a marker.
    """
    marker = Marker(at=trigger_at) if trigger_at is not None else None
    predictions = sensor_prediction_series(sensor=sensor, since=start, until=end)
    panels = [Panel("Risk", time_chart(
        title="Risk (model probability)", start=start, end=end, y_min=0.0, y_max=1.0, marker=marker,
        series=[
            Series("landslide", [(row["minute"], row["landslide"]) for row in predictions], "#c0392b"),
            Series("flood", [(row["minute"], row["flood"]) for row in predictions], "#1f6fb2"),
        ],
        guides=[Guide("medium", settings.RISK_MEDIUM, "#d4a017"), Guide("high", settings.RISK_HIGH, "#c0392b")],
    ))]
    readings = sensor_reading_series(sensor=sensor, since=start, until=end)
    for name, title, unit, threshold_attr, threshold_label in MEASUREMENT_PANELS:
        points = [(row["minute"], row[name]) for row in readings]
        if all(value is None for _, value in points):
            continue
        threshold = getattr(sensor, threshold_attr)
        guides = [Guide(threshold_label, threshold, "#c0392b")] if threshold is not None else []
        panels.append(Panel(title, time_chart(
            title=title, unit=unit, start=start, end=end, marker=marker, guides=guides,
            series=[Series(title.lower(), points, "#2e8b57")], height=180,
        )))
    return panels
