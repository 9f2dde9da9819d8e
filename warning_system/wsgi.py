"""WSGI entry point (gunicorn ``warning_system.wsgi:application``)."""
import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from warning_system.body_deadline import RequestBodyDeadline

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "warning_system.settings")
application = RequestBodyDeadline(
    get_wsgi_application(),
    seconds=settings.REQUEST_BODY_TIMEOUT_SECONDS,
    max_bytes=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
)
