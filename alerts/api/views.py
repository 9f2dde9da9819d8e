"""Alerts API: list (cached, filterable, CSV export), detail with history, acknowledge, resolve.

Business rules live in ``alerts.services``; this module maps HTTP onto them.
"""
from __future__ import annotations

import hashlib
import itertools

import orjson
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.utils import translate_validation
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from management.authentication import KeyPrincipal
from warning_system.api.renderers import EncodedJSONResponse, ORJSONRenderer

from .. import selectors, services
from ..cache import alerts_page_lookup, alerts_page_store
from ..filtersets import AlertFilterSet
from .renderers import CSVRenderer
from .serializers import CSV_COLUMNS, AlertActionSerializer, AlertDetailSerializer, AlertSerializer, ErrorSerializer


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The alert's status does not allow this change."
    default_code = "conflict"


class PrefetchingPaginator(Paginator):
    """Asks rows that can fetch a page with its count (``selectors.AlertListRows.prefetch``) for the page first.

    Django's paginator counts, then slices: two statements. Prefetched, the
    count and the page come from one. Anything that is not a page number
    takes the usual path, as does "last", which DRF resolves by counting first.
    """

    def page(self, number):
        prefetch = getattr(self.object_list, "prefetch", None)
        if prefetch is not None and "count" not in self.__dict__:  # not counted yet (cached_property)
            try:
                start = (int(number) - 1) * self.per_page
            except (TypeError, ValueError):
                start = -1
            if start >= 0:
                prefetch(slice(start, start + self.per_page))
        return super().page(number)


class AlertPagination(PageNumberPagination):
    """The default page size, adjustable per request (dashboards poll small pages, scripts big ones)."""

    page_size_query_param = "page_size"
    max_page_size = 500
    django_paginator_class = PrefetchingPaginator


# DRF's DateTimeField writes UTC as "Z"; the list rows carry datetimes, rendered the same way.
_LIST_JSON_OPTIONS = orjson.OPT_UTC_Z


def _sensor_restriction(request) -> frozenset[str] | None:
    principal = request.auth
    return principal.sensors if isinstance(principal, KeyPrincipal) else None


def _actor(request) -> str:
    principal = request.auth
    return principal.actor if isinstance(principal, KeyPrincipal) else request.user.get_username()


_JSON = "application/json"
_ERRORS = {
    (400, _JSON): OpenApiResponse(OpenApiTypes.OBJECT, description="Invalid input: each offending field maps to its messages."),
    (401, _JSON): OpenApiResponse(ErrorSerializer, description="No or invalid credentials."),
    (403, _JSON): OpenApiResponse(ErrorSerializer, description="The key lacks the scope."),
    (404, _JSON): OpenApiResponse(ErrorSerializer, description="No such alert (or not visible to this key)."),
}
_TRANSITION_RESPONSES = {
    (200, _JSON): AlertDetailSerializer,
    **_ERRORS,
    (409, _JSON): OpenApiResponse(ErrorSerializer, description="The alert's status does not allow this transition."),
}


@extend_schema_view(
    list=extend_schema(
        summary="Alerts, newest first",
        parameters=[OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"], description="csv: stream every matching alert as CSV (not paginated).")],
        responses={
            (200, _JSON): AlertSerializer(many=True),
            (200, CSVRenderer.media_type): OpenApiResponse(OpenApiTypes.STR, description="CSV export (with format=csv)."),
            **{k: v for k, v in _ERRORS.items() if k[0] != 404},
        },
    ),
    retrieve=extend_schema(summary="One alert with its history", responses={(200, _JSON): AlertDetailSerializer, **_ERRORS}),
)
class AlertViewSet(viewsets.ReadOnlyModelViewSet):
    required_scopes = {"GET": "read", "HEAD": "read", "acknowledge": "manage", "resolve": "manage"}
    filterset_class = AlertFilterSet
    pagination_class = AlertPagination
    serializer_class = AlertSerializer
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self):
        sensors = _sensor_restriction(self.request)
        if self.action == "list":
            return selectors.alerts_visible(sensor_ids=sensors)
        return selectors.alerts_with_history(sensor_ids=sensors)

    def get_serializer_class(self):
        return AlertSerializer if self.action == "list" else AlertDetailSerializer

    def get_renderers(self):
        # CSV is offered for the list; for a method the list does not support (action None)
        # keep it too, so such a request gets 405 rather than a 404 for an unknown format.
        if self.action in ("list", None):
            return [ORJSONRenderer(), CSVRenderer()]
        return [ORJSONRenderer()]

    def finalize_response(self, request, response, *args, **kwargs):
        """Errors are JSON even when CSV was asked for: clients parse them to name the bad field."""
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response) and response.status_code >= 400 and isinstance(response.accepted_renderer, CSVRenderer):
            response.accepted_renderer = ORJSONRenderer()
            response.accepted_media_type = ORJSONRenderer.media_type
        return response

    def list(self, request, *args, **kwargs):
        # The page is cached as rendered JSON: a hit is one Redis round trip, no re-encoding.
        # (A comment, not a docstring: drf-spectacular would publish a docstring.)
        if isinstance(request.accepted_renderer, CSVRenderer):
            return self._export(request)
        key = self._list_cache_key(request)
        generation, body = alerts_page_lookup(key)
        if body is not None:
            return EncodedJSONResponse(body)
        filterset = DjangoFilterBackend().get_filterset(request, self.get_queryset(), self)
        if not filterset.is_valid():
            raise translate_validation(filterset.errors)  # as DjangoFilterBackend answers: 400 naming the field
        rows = selectors.alert_list_rows(filterset=filterset, sensor_ids=_sensor_restriction(request))
        page = self.paginate_queryset(rows)
        body = orjson.dumps(self.get_paginated_response(page).data, option=_LIST_JSON_OPTIONS)
        if generation is not None:
            alerts_page_store(key, generation, body)
        return EncodedJSONResponse(body)

    def _list_cache_key(self, request) -> str:
        """What this caller may see + the exact query."""
        sensors = _sensor_restriction(request)
        scope = "*" if sensors is None else ",".join(sorted(sensors))
        digest = hashlib.sha256(f"{scope}|{request.get_full_path()}".encode()).hexdigest()
        return f"alerts:list:json:{digest}"

    def _export(self, request) -> StreamingHttpResponse:
        queryset = self.filter_queryset(self.get_queryset())
        rows = queryset.values_list(*(field for _, field in CSV_COLUMNS)).iterator(chunk_size=2000)
        header = [name for name, _ in CSV_COLUMNS]
        response = StreamingHttpResponse(CSVRenderer().stream(itertools.chain([header], rows)), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="alerts-{timezone.now():%Y%m%dT%H%M%SZ}.csv"'
        return response

    def _transition(self, request, service):
        alert = self.get_object()
        body = AlertActionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            service(alert=alert, actor=_actor(request), note=body.validated_data["note"])
        except services.InvalidTransition as exc:
            raise Conflict(str(exc)) from exc
        return Response(AlertDetailSerializer(self.get_queryset().get(pk=alert.pk)).data)

    @extend_schema(summary="Acknowledge an open alert", request=AlertActionSerializer, responses=_TRANSITION_RESPONSES)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        return self._transition(request, services.alert_acknowledge)

    @extend_schema(summary="Resolve an open or acknowledged alert", request=AlertActionSerializer, responses=_TRANSITION_RESPONSES)
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        return self._transition(request, services.alert_resolve)
