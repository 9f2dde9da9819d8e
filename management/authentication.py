"""API-key authentication with a short-lived, process-local verification cache.

Hashing and looking up a key costs a database query and a hash on every
request; devices post every few seconds, so verified keys are remembered in
process memory for ``API_KEY_CACHE_SECONDS`` (default 5 s). That is also the
bound on how long a revoked or expired key keeps working in a running process.
A process-local cache (not Redis) keeps authentication working when Redis is
down and costs no network round trip on the ingest hot path.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from .models import APIKey
from .ratelimit import auth_failure_check

logger = logging.getLogger(__name__)

KEYWORD = "Api-Key"


@dataclass(frozen=True, slots=True)
class KeyPrincipal:
    """What a request authenticated with an API key may do."""

    id: str
    name: str
    scopes: frozenset[str]
    sensors: frozenset[str] | None  # None: every sensor
    expires_at: float | None

    is_authenticated = True
    is_staff = False
    is_active = True

    @property
    def actor(self) -> str:
        return f"api-key:{self.name}"

    @property
    def username(self) -> str:
        return self.actor

    def may_use_sensor(self, sensor_id: str) -> bool:
        return self.sensors is None or sensor_id in self.sensors


class _KeyCache:
    """Tiny TTL map from sha256(key) to principal; the hot path is a dict lookup."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, KeyPrincipal]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> KeyPrincipal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        cached_until, principal = entry
        now = time.monotonic()
        if now >= cached_until:
            self._entries.pop(digest, None)
            return None
        return principal

    def put(self, digest: str, principal: KeyPrincipal, ttl: float) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[digest] = (time.monotonic() + ttl, principal)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


key_cache = _KeyCache()


def extract_key(request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        keyword, _, key = header.partition(" ")
        if keyword == KEYWORD and key.strip():
            return key.strip()
    key = request.META.get("HTTP_X_API_KEY", "")
    return key.strip() or None


def load_principal(key: str) -> KeyPrincipal | None:
    """Verify a plain key against the database (the slow path)."""
    try:
        api_key = APIKey.objects.get_from_key(key)
    except APIKey.DoesNotExist:
        return None
    if api_key.revoked or api_key.has_expired:
        return None
    sensor_ids = frozenset(api_key.sensors.values_list("sensor_id", flat=True))
    return KeyPrincipal(
        id=str(api_key.pk),
        name=api_key.name,
        scopes=frozenset(api_key.scopes or ()),
        sensors=sensor_ids or None,
        expires_at=api_key.expiry_date.timestamp() if api_key.expiry_date else None,
    )


def authenticate_key(key: str, *, before_verify: Callable[[], None] | None = None) -> KeyPrincipal | None:
    """The key's principal, or None. ``before_verify`` runs only when the database must be asked."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    principal = key_cache.get(digest)
    if principal is None:
        if before_verify is not None:
            before_verify()
        principal = load_principal(key)
        if principal is None:
            return None
        key_cache.put(digest, principal, settings.API_KEY_CACHE_SECONDS)
    if principal.expires_at is not None and principal.expires_at <= time.time():
        return None
    return principal


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Api-Key <key>`` or ``X-API-Key: <key>``.

    Failed attempts are counted per client IP (``AUTH_FAILURE_RATE_LIMIT``);
    over the limit the answer is 429 and unknown keys are no longer looked up.
    """

    def authenticate(self, request):
        key = extract_key(request)
        if key is None:
            return None
        principal = authenticate_key(key, before_verify=lambda: auth_failure_check(request=request, increment=False))
        if principal is None:
            auth_failure_check(request=request, increment=True)
            logger.info("auth.key_rejected", extra={"remote_addr": request.META.get("REMOTE_ADDR")})
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired API key.")
        return principal, principal

    def authenticate_header(self, request) -> str:
        return KEYWORD


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents the key header in the OpenAPI schema (drf-spectacular finds it by class path)."""

    target_class = "management.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization", "description": "`Api-Key <key>` (or the header `X-API-Key: <key>`)."}
