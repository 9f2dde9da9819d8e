"""Cache, sessions and rate-limit storage: Redis via django-redis, else local memory.

Redis failures must never take ingestion down (an early-warning system keeps
accepting readings when its cache is gone), so the default cache ignores
Redis exceptions with short socket timeouts: a cache miss is the degraded
mode. The health check still reports Redis as failing ("degraded").

Sessions are read from Redis and written through to PostgreSQL
(``cached_db``). Redis runs without persistence and with a memory cap and
LRU eviction (docker-compose.yml), so a session kept only there would be
lost on a Redis restart, or evicted under a burst of cached alert pages,
and a duty officer would be signed out in the middle of a storm; a Redis
outage would also make signing in impossible. With the database behind it,
a missing or evicted session is read from PostgreSQL, at the cost of one
write per session change.
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
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
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
