"""API errors are always JSON with a ``detail`` (and ``errors`` where items are named)."""
import logging

from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class InvalidItems(APIException):
    """400 naming each bad item and field: ``{"detail": ..., "errors": [{"index", "field", "message"}]}``.

    A gateway posting a batch of 1000 readings needs to know exactly which
    one to fix, so errors are a list of (index, field, message), never a
    nested serializer-shaped dict.
    """

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"

    def __init__(self, errors: list[dict], detail: str | None = None):
        self.errors = errors
        if detail is None:
            detail = f"{len(errors)} invalid field(s); nothing was accepted."
        super().__init__(detail)


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body exceeds the size limit."
    default_code = "payload_too_large"


class ServiceUnavailable(APIException):
    """503 with ``Retry-After``: a dependency is down and nothing was accepted; retry later."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "service_unavailable"

    def __init__(self, detail: str, retry_after: int):
        self.retry_after = retry_after
        super().__init__(detail)


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": "Request body exceeds the 1 MiB limit."}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    # Imported here: rest_framework.views reads the API settings at import, and those name
    # warning_system.api.parsers, which imports this module (a cycle at start-up).
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, InvalidItems):
        response.data = {"detail": str(exc.detail), "errors": exc.errors}
    elif isinstance(exc, ServiceUnavailable):
        response["Retry-After"] = str(exc.retry_after)
    if isinstance(response.data, list):
        response.data = {"detail": response.data}
    return response
