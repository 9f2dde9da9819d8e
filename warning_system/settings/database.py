"""Database: PostgreSQL (psycopg 3 + Django's pool) or, by default, SQLite.

With no ``DATABASE_URL`` the embedded default is a SQLite file so that
``make run`` works on a bare machine. For PostgreSQL, Django's built-in
psycopg pool keeps connections warm (CONN_MAX_AGE must stay 0 with a pool)
and health checks drop dead connections before they are used.
"""
from .env import BASE_DIR, env

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}

_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.postgresql":
    _db["CONN_HEALTH_CHECKS"] = True
    if env.bool("DB_POOL", default=True):
        _db["CONN_MAX_AGE"] = 0
        _db.setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DB_POOL_MIN_SIZE", default=1),
            "max_size": env.int("DB_POOL_MAX_SIZE", default=10),
            "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
        }
    else:
        _db["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    _db.setdefault("OPTIONS", {}).setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=5))
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the eager pipeline write while pages read; the timeout rides out
    # short write locks instead of failing with "database is locked".
    _db.setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
