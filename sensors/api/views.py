"""Sensors read API: the sensor registry and each sensor's readings and predictions.

Readings and predictions are not page-numbered (that would need a COUNT(*)
over millions of rows): they come newest first, at most ``limit`` per call,
as ``{"sensor_id", "results", "next"}`` where ``next`` is the URL of the
next older page (``until`` set just before the oldest row returned) or null.
``?format=csv`` returns the same rows as CSV.

Device keys restricted to some sensors see only those: the list is filtered
and any other sensor is a 403 — checked before looking the sensor up, so a
restricted key cannot probe which codes exist.
"""
from __future__ import annotations

import csv
import io
from datetime import timedelta

import orjson
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response

from management.authentication import KeyPrincipal
from sensors.filtersets import SensorFilterSet
from sensors.models import Sensor
from sensors.selectors import sensor_exists, sensor_get, sensor_list, sensor_predictions, sensor_readings
from warning_system.api.renderers import ORJSONRenderer

from .serializers import PredictionPageSerializer, ReadingPageSerializer, SensorSerializer, window_query


class RowsCSVRenderer(BaseRenderer):
    """Renders ``{"results": [row, ...]}`` as CSV with a header from the row keys.

    Errors (4xx) stay JSON even when CSV was asked for, so a client always
    gets a readable ``detail``.
    """

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        response = (renderer_context or {}).get("response")
        if response is not None and response.status_code >= 400:
            response["Content-Type"] = "application/json"
            return orjson.dumps(data, default=str)
        rows = data.get("results", []) if isinstance(data, dict) else []
        out = io.StringIO()
        if rows:
            writer = csv.DictWriter(out, fieldnames=list(rows[0].keys()), lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()})
        if response is not None and isinstance(data, dict) and data.get("sensor_id"):
            response["Content-Disposition"] = f'attachment; filename="{data["sensor_id"]}-{renderer_context["view"].action}.csv"'
        return out.getvalue().encode()


WINDOW_PARAMETERS = [
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="Oldest timestamp (inclusive)."),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="Newest timestamp (inclusive)."),
    OpenApiParameter("limit", OpenApiTypes.INT, description="Rows per call, 1–5000 (default 100)."),
    OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"], description="csv: the rows as a CSV file."),
]
SENSOR_ID_PARAMETER = OpenApiParameter("sensor_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="Sensor code.")


@extend_schema_view(
    list=extend_schema(summary="List sensors", description="Sensors visible to the caller; filters: status, kind, site (id), q."),
    retrieve=extend_schema(summary="One sensor", parameters=[SENSOR_ID_PARAMETER], responses={200: SensorSerializer, 403: OpenApiResponse(description="Key restricted to other sensors."), 404: OpenApiResponse(description="Unknown sensor.")}),
)
class SensorViewSet(viewsets.ReadOnlyModelViewSet):
    required_scopes = {"GET": "read"}
    serializer_class = SensorSerializer
    filterset_class = SensorFilterSet
    lookup_field = "sensor_id"
    lookup_value_regex = r"[^/]+"

    def _allowed_sensor_ids(self) -> frozenset[str] | None:
        principal = self.request.auth
        return principal.sensors if isinstance(principal, KeyPrincipal) else None

    def get_queryset(self):
        return sensor_list(allowed_sensor_ids=self._allowed_sensor_ids())

    def _check_restriction(self, sensor_id: str) -> None:
        """403 for a sensor the key may not read, decided before any lookup (no probing which codes exist)."""
        allowed = self._allowed_sensor_ids()
        if allowed is not None and sensor_id not in allowed:
            raise PermissionDenied(f"This API key may not read sensor {sensor_id!r}.")

    def get_object(self) -> Sensor:
        sensor_id = self.kwargs[self.lookup_field]
        self._check_restriction(sensor_id)
        try:
            return sensor_get(sensor_id=sensor_id)
        except Sensor.DoesNotExist:
            raise NotFound(f"Unknown sensor {sensor_id!r}.") from None

    def _window_page(self, request, select) -> Response:
        """One query for the common case: the rows; only an empty page asks whether the sensor exists (404)."""
        sensor_id = self.kwargs[self.lookup_field]
        self._check_restriction(sensor_id)
        params = window_query(request.query_params)
        rows = select(sensor_id=sensor_id, since=params.get("since"), until=params.get("until"), limit=params["limit"])
        if not rows and not sensor_exists(sensor_id=sensor_id):
            raise NotFound(f"Unknown sensor {sensor_id!r}.")
        next_url = None
        if len(rows) == params["limit"]:
            following = request.query_params.copy()
            following["until"] = (rows[-1]["timestamp"] - timedelta(microseconds=1)).isoformat()
            next_url = request.build_absolute_uri(f"{request.path}?{following.urlencode()}")
        return Response({"sensor_id": sensor_id, "results": rows, "next": next_url})

    @extend_schema(
        summary="A sensor's readings, newest first",
        parameters=[SENSOR_ID_PARAMETER, *WINDOW_PARAMETERS],
        responses={200: ReadingPageSerializer, 400: OpenApiResponse(description="Bad since/until/limit (named)."), 403: OpenApiResponse(description="Key restricted to other sensors."), 404: OpenApiResponse(description="Unknown sensor.")},
        filters=False,
    )
    @action(detail=True, methods=["get"], renderer_classes=[ORJSONRenderer, RowsCSVRenderer], pagination_class=None, filterset_class=None)
    def readings(self, request, sensor_id=None):
        return self._window_page(request, sensor_readings)

    @extend_schema(
        summary="A sensor's predictions, newest first",
        parameters=[SENSOR_ID_PARAMETER, *WINDOW_PARAMETERS],
        responses={200: PredictionPageSerializer, 400: OpenApiResponse(description="Bad since/until/limit (named)."), 403: OpenApiResponse(description="Key restricted to other sensors."), 404: OpenApiResponse(description="Unknown sensor.")},
        filters=False,
    )
    @action(detail=True, methods=["get"], renderer_classes=[ORJSONRenderer, RowsCSVRenderer], pagination_class=None, filterset_class=None)
    def predictions(self, request, sensor_id=None):
        return self._window_page(request, sensor_predictions)
