"""Production settings: hardened, and refusing to start when insecure.

Starting with DEBUG on, the public development SECRET_KEY or no
ALLOWED_HOSTS would expose the system; failing loudly at import time is
better than serving an insecure early-warning API.
"""
from django.core.exceptions import ImproperlyConfigured

from . import *  # noqa: F401,F403
from . import core as _core
from .env import env

DEBUG = env.bool("DEBUG", default=False)
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING["handlers"]["console"]["formatter"] = LOG_FORMAT  # noqa: F405

_problems = []
if DEBUG:
    _problems.append("DEBUG must be off")
if SECRET_KEY == _core.INSECURE_DEFAULT_SECRET_KEY or len(SECRET_KEY) < 50 or SECRET_KEY.startswith("django-insecure"):  # noqa: F405
    _problems.append("SECRET_KEY must be set to a unique random value of at least 50 characters")
if not env.list("ALLOWED_HOSTS", default=[]):
    _problems.append("ALLOWED_HOSTS must name the hosts this API serves")
if _problems:
    raise ImproperlyConfigured("Refusing to start with insecure production settings: " + "; ".join(_problems))

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")

# TLS is terminated by the load balancer/reverse proxy in front of gunicorn.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^api/v1/health$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
STORAGES["staticfiles"]["BACKEND"] = "whitenoise.storage.CompressedManifestStaticFilesStorage"  # noqa: F405
