"""POST /api/v1/sensor-data: the ingestion hot path.

Field stations and gateways post one reading or a batch of up to
``INGEST_MAX_BATCH``. The answer is 202 only once every reading is durable:
acknowledged by the broker (``acks=all``) or, in eager mode, committed to
the database. A batch is all or nothing: one bad item rejects the whole
batch with every problem named by index and field, and nothing is sent.

This view is on the path of thousands of requests per second, so it uses no
DRF Serializer (``sensors.validation.validate_item`` does the same checks in
microseconds), a process-local API-key cache, a process-local sensor-status
cache (``sensors.sensor_cache``) and one shared producer. The serializers
below exist only to document the schema and are never run.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError, PermissionDenied
from rest_framework.response import Response

from management.authentication import ApiKeyAuthentication
from management.permissions import HasScope
from management.ratelimit import ingest_check
from warning_system.api.exceptions import InvalidItems, ServiceUnavailable
from warning_system.api.parsers import ORJSONParser
from warning_system.api.renderers import ORJSONRenderer
from warning_system.api.views import LeanJSONAPIView

from ..models import Sensor
from ..pipeline import UnknownSensors, process_readings
from ..producer import BrokerUnavailable, readings_publish
from ..records import ReadingIn
from ..sensor_cache import UNKNOWN, sensor_statuses
from ..validation import validate_item

logger = logging.getLogger(__name__)

_RETIRED = Sensor.Status.RETIRED.value


_ERROR = inline_serializer("IngestFieldError", {
    "index": serializers.IntegerField(allow_null=True),
    "field": serializers.CharField(allow_null=True),
    "message": serializers.CharField(),
})
_DETAIL = inline_serializer("ErrorDetail", {"detail": serializers.CharField()})
_READING = inline_serializer("ReadingInput", {
    "sensor_id": serializers.CharField(max_length=64, help_text="A registered, not retired sensor code."),
    "timestamp": serializers.DateTimeField(required=False, help_text="ISO 8601 with a UTC offset; default: server receive time; at most 5 min in the future."),
    "rainfall": serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=500, help_text="mm in the last hour."),
    "soil_moisture": serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1, help_text="Volumetric fraction."),
    "ground_movement": serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1000, help_text="mm/h."),
    "water_level": serializers.FloatField(required=False, allow_null=True, min_value=-50, max_value=100, help_text="m above gauge datum."),
})


def _field_errors(index: int | None, field: str | None, message: str) -> list[dict]:
    return [{"index": index, "field": field, "message": message}]


class SensorDataView(LeanJSONAPIView):
    """Accept readings from field stations (API key with scope ``ingest``).

    ``LeanJSONAPIView`` builds parsers, renderers and the authenticator once
    and skips negotiation, versioning and throttles (~15 µs of CPU per request;
    bench/bench_ingest_cpu.py, docs/benchmarks.md "2b").
    """

    authentication_classes = (ApiKeyAuthentication,)
    permission_classes = (HasScope,)
    parser_classes = (ORJSONParser,)
    renderer_classes = (ORJSONRenderer,)
    required_scopes = {"POST": "ingest"}

    @extend_schema(
        operation_id="sensor_data_create",
        summary="Submit one reading or a batch",
        description=(
            "Body: one reading object or a JSON array of 1..1000 readings (all or nothing). "
            "At least one measurement must be present. 202 means every reading is durable "
            "(acknowledged by the broker, or committed in eager mode)."
        ),
        request=PolymorphicProxySerializer(
            component_name="SensorDataRequest",
            serializers=[_READING, serializers.ListSerializer(child=_READING, min_length=1, max_length=1000)],
            resource_type_field_name=None,
            many=False,
        ),
        responses={
            202: inline_serializer("SensorDataAccepted", {"accepted": serializers.IntegerField()}),
            400: OpenApiResponse(inline_serializer("IngestErrors", {"detail": serializers.CharField(), "errors": _ERROR.__class__(many=True)}), description="Invalid items, each named by index and field."),
            401: OpenApiResponse(_DETAIL, description="Missing, unknown, revoked or expired API key."),
            403: OpenApiResponse(_DETAIL, description="Key lacks scope ingest, or may not post for this sensor."),
            413: OpenApiResponse(_DETAIL, description="Body larger than 1 MiB."),
            415: OpenApiResponse(_DETAIL, description="Content type is not application/json."),
            429: OpenApiResponse(_DETAIL, description="Rate limit exceeded; see Retry-After."),
            503: OpenApiResponse(_DETAIL, description="Broker unavailable; nothing accepted; see Retry-After."),
        },
        tags=["ingestion"],
    )
    def post(self, request):
        ingest_check(request=request)
        try:
            data = request.data
        except ParseError as exc:
            raise InvalidItems(_field_errors(None, None, str(exc.detail)), detail="Body is not valid JSON.") from exc
        readings = self._validate(data)
        self._check_sensors(request.auth, readings)
        if settings.PIPELINE_EAGER:
            try:
                process_readings(readings=readings)
            except UnknownSensors as exc:  # deleted between the cache check and the insert
                raise InvalidItems([
                    {"index": i, "field": "sensor_id", "message": "is not a registered sensor"}
                    for i, r in enumerate(readings) if r.sensor_id in exc.sensor_ids
                ]) from exc
        else:
            try:
                readings_publish(readings=readings)
            except BrokerUnavailable as exc:
                logger.warning("ingest.broker_unavailable", extra={"readings": len(readings), "error": str(exc)})
                raise ServiceUnavailable(
                    "The message broker did not acknowledge the readings; nothing was accepted. Retry later.",
                    retry_after=settings.KAFKA_RETRY_AFTER_SECONDS,
                ) from exc
        if logger.isEnabledFor(logging.DEBUG):  # the extra dict alone costs more than a disabled debug call
            logger.debug("ingest.accepted", extra={"readings": len(readings), "key": request.auth.name})
        return Response({"accepted": len(readings)}, status=status.HTTP_202_ACCEPTED)

    def _validate(self, data) -> list[ReadingIn]:
        if isinstance(data, list):
            if not data:
                raise InvalidItems(_field_errors(None, None, "the array is empty; send 1 to %d readings" % settings.INGEST_MAX_BATCH))
            if len(data) > settings.INGEST_MAX_BATCH:
                raise InvalidItems(_field_errors(None, None, f"at most {settings.INGEST_MAX_BATCH} readings per request; got {len(data)}"))
            items = data
        elif isinstance(data, dict):
            items = (data,)
        else:
            raise InvalidItems(_field_errors(None, None, "the body must be a reading object or an array of readings"))
        received_at = datetime.now(UTC)
        max_future = timedelta(seconds=settings.INGEST_MAX_FUTURE_SECONDS)
        readings: list[ReadingIn] = []
        errors: list[dict] = []
        for index, item in enumerate(items):
            result = validate_item(item, index, received_at=received_at, max_future=max_future)
            if isinstance(result, list):
                errors.extend(e.as_dict() for e in result)
            else:
                readings.append(result)
        if errors:
            raise InvalidItems(errors)
        return readings

    def _check_sensors(self, principal, readings: list[ReadingIn]) -> None:
        """Key restriction first (403, without revealing whether a sensor exists), then existence and status (400)."""
        if principal.sensors is not None:
            foreign = sorted({r.sensor_id for r in readings if r.sensor_id not in principal.sensors})
            if foreign:
                raise PermissionDenied(f"This API key may not post readings for sensor(s): {', '.join(foreign)}.")
        statuses = sensor_statuses(r.sensor_id for r in readings)
        errors = []
        for index, reading in enumerate(readings):
            state = statuses[reading.sensor_id]
            if state == UNKNOWN:
                errors.append({"index": index, "field": "sensor_id", "message": f"{reading.sensor_id!r} is not a registered sensor"})
            elif state == _RETIRED:
                errors.append({"index": index, "field": "sensor_id", "message": f"{reading.sensor_id!r} is retired"})
        if errors:
            raise InvalidItems(errors)
