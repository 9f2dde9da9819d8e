"""API key lifecycle: create (the plain key is returned once), revoke."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from sensors.models import Sensor

from .authentication import key_cache
from .models import ALL_SCOPES, APIKey

logger = logging.getLogger(__name__)


class InvalidKeyRequest(ValueError):
    """Bad arguments for a key (unknown scope or sensor)."""


@transaction.atomic
def api_key_create(*, name: str, scopes: Iterable[str], sensor_ids: Iterable[str] = (), expires_in_days: int | None = None) -> tuple[APIKey, str]:
    """Create a hashed key; returns the model and the plain key, which is never stored."""
    scopes = sorted(set(scopes))
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown or not scopes:
        raise InvalidKeyRequest(f"scopes must be a non-empty subset of {', '.join(ALL_SCOPES)}; got {', '.join(unknown) or 'none'}")
    sensor_ids = sorted(set(sensor_ids))
    sensors = list(Sensor.objects.filter(sensor_id__in=sensor_ids))
    missing = sorted(set(sensor_ids) - {s.sensor_id for s in sensors})
    if missing:
        raise InvalidKeyRequest(f"unknown sensors: {', '.join(missing)}")
    expiry = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
    api_key, plain = APIKey.objects.create_key(name=name, scopes=scopes, expiry_date=expiry)
    if sensors:
        api_key.sensors.set(sensors)
    logger.info("api_key.created", extra={"key_prefix": api_key.prefix, "key_name": name, "scopes": scopes})
    return api_key, plain


@transaction.atomic
def api_key_revoke(*, keys: Iterable[APIKey]) -> int:
    """Revoke keys. Other processes stop accepting them within API_KEY_CACHE_SECONDS."""
    ids = [k.pk for k in keys]
    changed = APIKey.objects.filter(pk__in=ids, revoked=False).update(revoked=True)
    key_cache.clear()
    logger.info("api_key.revoked", extra={"count": changed})
    return changed
