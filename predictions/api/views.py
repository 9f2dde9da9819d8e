"""POST /api/v1/predictions and GET /api/v1/model-info.

The views stay thin: validation is a small exact function (the same rules as
ingestion), scoring and caching live in ``predictions.serving``.
"""
from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from predictions import serving
from predictions.scoring import ModelUnavailable, get_registry
from warning_system.api.views import LeanJSONAPIView

from . import schema


def _unavailable(exc: ModelUnavailable) -> Response:
    return Response(
        {"detail": f"Models unavailable: {exc}"},
        status=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "30"},
    )


class PredictionsView(LeanJSONAPIView):
    """Score one request or an array of up to 100: by sensor (its latest window) or explicit measurements."""

    required_scopes = {"POST": "predict"}

    @extend_schema(
        request=schema.PredictionRequest,
        responses={
            200: schema.PredictionResult,
            400: OpenApiResponse(schema.ItemErrors, description="Invalid item; errors name index and field."),
            401: schema.Detail, 403: schema.Detail,
            503: OpenApiResponse(schema.Detail, description="Models unavailable."),
        },
        description="Body: one object or an array (1–100). Each object is either {\"sensor_id\"} or explicit "
        "measurements with optional antecedent features by name. The response mirrors the request shape.",
    )
    def post(self, request):
        items, single, errors = serving.parse_request(request.data)
        if errors:
            return Response({"detail": "Invalid prediction request.", "errors": errors}, status=status.HTTP_400_BAD_REQUEST)
        try:
            results, errors, forbidden = serving.predict_items(items=items, principal=request.auth)
        except ModelUnavailable as exc:
            return _unavailable(exc)
        if forbidden:
            return Response({"detail": f"This API key may not use sensor {forbidden!r}."}, status=status.HTTP_403_FORBIDDEN)
        if errors:
            return Response({"detail": "Invalid prediction request.", "errors": errors}, status=status.HTTP_400_BAD_REQUEST)
        return Response(results[0] if single else results)


class ModelInfoView(APIView):
    """Version, provenance and held-out quality of each model, with the risk cut-offs in force."""

    required_scopes = {"GET": "read"}

    @extend_schema(responses={200: schema.ModelInfo, 401: schema.Detail, 403: schema.Detail, 503: schema.Detail})
    def get(self, request):
        try:
            info = get_registry().info()
        except ModelUnavailable as exc:
            return _unavailable(exc)
        cutoffs = {"medium": settings.RISK_MEDIUM, "high": settings.RISK_HIGH}
        return Response({name: {**model, "risk_cutoffs": cutoffs} for name, model in info.items()})
