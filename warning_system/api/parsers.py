"""orjson parser.

orjson rejects NaN and Infinity (which are not JSON), so a device that sends
them gets a 400 instead of a silently stored non-number.
"""
import orjson
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser


class ORJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        body = stream.read() if stream is not None else b""
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"Invalid JSON: {exc}") from exc
