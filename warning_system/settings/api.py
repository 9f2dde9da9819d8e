"""REST API: DRF, OpenAPI, API keys and rate limits."""
from .env import env

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "management.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["management.permissions.HasScope"],
    "DEFAULT_RENDERER_CLASSES": ["warning_system.api.renderers.ORJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["warning_system.api.parsers.ORJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "warning_system.api.negotiation.FastContentNegotiation",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env.int("API_PAGE_SIZE", default=50),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "warning_system.api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "warning_system API",
    "DESCRIPTION": "Landslide and flood early-warning network: readings, predictions, alerts.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "warning_system.api.schema.add_common_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "SensorStatusEnum": "sensors.models.Sensor.Status",
        "AlertStatusEnum": "alerts.models.Alert.Status",
    },
}

# Requests of one web worker that run Django at once; the others wait in order
# (warning_system/cpu_slots.py). 0 turns the gate off. A request that waits longer
# than WEB_CPU_SLOT_WAIT_SECONDS for its turn is answered 503 with Retry-After.
WEB_CPU_SLOTS = env.int("WEB_CPU_SLOTS", default=2)
WEB_CPU_SLOT_WAIT_SECONDS = env.float("WEB_CPU_SLOT_WAIT_SECONDS", default=10.0)

API_KEY_CUSTOM_HEADER = "HTTP_X_API_KEY"
# Verified keys are cached this many seconds: revocation takes effect within it.
API_KEY_CACHE_SECONDS = env.int("API_KEY_CACHE_SECONDS", default=5)

RATELIMIT_USE_CACHE = "default"
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
RATELIMIT_FAIL_OPEN = True
# After a Redis error the ingest limiter is skipped this long (fail open without a timeout per request).
RATELIMIT_BREAKER_SECONDS = env.float("RATELIMIT_BREAKER_SECONDS", default=5.0)
INGEST_RATE_LIMIT = env.str("INGEST_RATE_LIMIT", default="1200/m")
AUTH_FAILURE_RATE_LIMIT = env.str("AUTH_FAILURE_RATE_LIMIT", default="60/m")
LOGIN_RATE_LIMIT = env.str("LOGIN_RATE_LIMIT", default="10/m")

INGEST_MAX_BATCH = env.int("INGEST_MAX_BATCH", default=1000)
INGEST_MAX_FUTURE_SECONDS = env.int("INGEST_MAX_FUTURE_SECONDS", default=300)
# Sensor code -> status is cached in process this long: a registered, retired or
# reactivated sensor is seen by the ingestion API within it.
INGEST_SENSOR_CACHE_SECONDS = env.int("INGEST_SENSOR_CACHE_SECONDS", default=5)
