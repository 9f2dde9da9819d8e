"""Filters shared by the API and the pages."""
from __future__ import annotations

from datetime import timezone

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField


class UTCIsoDateTimeField(IsoDateTimeField):
    """ISO 8601 normalised to UTC.

    Python accepts offsets up to ±23:59 but PostgreSQL only ±15:59, so a
    legal-looking ``since=...+20:46`` would otherwise reach the database and
    fail there (a 500). Converting here makes it an ordinary instant, and a
    value that cannot be expressed in UTC is a validation error naming the field.
    """

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None or parsed.tzinfo is None:
            return parsed
        try:
            return parsed.astimezone(timezone.utc)
        except OverflowError as exc:
            raise ValidationError("Enter a date/time that can be expressed in UTC.", code="invalid") from exc


class UTCIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCIsoDateTimeField
