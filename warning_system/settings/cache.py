"""Cache, sessions and rate-limit storage: Redis via django-redis, else local memory.

Redis failures must never take ingestion down (an early-warning system keeps
accepting readings when its cache is gone), so the default cache ignores
Redis exceptions with short socket timeouts: a cache miss is the degraded
mode. The health check still reports Redis as failing ("degraded").
"""
from .env import env

REDIS_URL = env.str("REDIS_URL", default="")
CACHE_KEY_PREFIX = env.str("CACHE_KEY_PREFIX", default="ws")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": env.float("REDIS_CONNECT_TIMEOUT", default=0.25),
                "SOCKET_TIMEOUT": env.float("REDIS_SOCKET_TIMEOUT", default=0.25),
                "IGNORE_EXCEPTIONS": True,
            },
        },
    }
    SESSION_ENGINE = "django.contrib.sessions.backends.cache"
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "warning-system",
            "KEY_PREFIX": CACHE_KEY_PREFIX,
        },
    }
    SESSION_ENGINE = "django.contrib.sessions.backends.db"

DJANGO_REDIS_IGNORE_EXCEPTIONS = True
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
