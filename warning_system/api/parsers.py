"""orjson parser with a hard body-size limit.

orjson rejects NaN and Infinity (which are not JSON), so a device that sends
them gets a 400 instead of a silently stored non-number.

DRF reads the body from the request stream, which bypasses Django's
``DATA_UPLOAD_MAX_MEMORY_SIZE`` check (that only guards ``request.body``),
so the limit is enforced here: by the declared Content-Length, and by
reading at most one byte past the limit when the length is not declared.
"""
import orjson
from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from .exceptions import PayloadTooLarge


class ORJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if stream is None:
            body = b""
        else:
            request = (parser_context or {}).get("request")
            declared = request.META.get("CONTENT_LENGTH") if request is not None else None
            if limit is not None and declared and declared.isdigit() and int(declared) > limit:
                raise PayloadTooLarge(f"Request body exceeds the {limit}-byte limit.")
            body = stream.read() if limit is None else stream.read(limit + 1)
            if limit is not None and len(body) > limit:
                raise PayloadTooLarge(f"Request body exceeds the {limit}-byte limit.")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"Invalid JSON: {exc}") from exc
