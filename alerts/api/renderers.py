"""CSV for alert exports: streamed row by row, so an export of any size uses constant memory."""
from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import datetime

from rest_framework.renderers import BaseRenderer

# Spreadsheet programs execute cells starting with these as formulas; notes are user text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class _Line:
    """A write-only "file" that hands back what csv.writer wrote for one row."""

    def write(self, value: str) -> str:
        return value


def _cell(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def stream(self, rows: Iterable[Iterable]) -> Iterator[bytes]:
        """Encode rows (the first one being the header) one line at a time."""
        writer = csv.writer(_Line())
        for row in rows:
            yield writer.writerow([_cell(v) for v in row]).encode()

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return b"".join(self.stream(data or ()))
