"""Session, auth and messages middleware that step aside on the ingestion endpoint.

Devices authenticate with API keys and never use sessions, users or flash
messages, yet these three middlewares cost tens of microseconds on every
request. On ``/api/v1/sensor-data`` — thousands of requests per second —
they are skipped; every other path gets them unchanged. They subclass the
originals so the admin's system checks still recognise them.
"""
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware

BYPASS_PATHS = frozenset({"/api/v1/sensor-data"})


class _BypassOnIngest:
    def __call__(self, request):
        if request.path_info in BYPASS_PATHS:
            return self.get_response(request)
        return super().__call__(request)


class IngestAwareSessionMiddleware(_BypassOnIngest, SessionMiddleware):
    pass


class IngestAwareAuthenticationMiddleware(_BypassOnIngest, AuthenticationMiddleware):
    pass


class IngestAwareMessageMiddleware(_BypassOnIngest, MessageMiddleware):
    pass
