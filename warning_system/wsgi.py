"""WSGI entry point (gunicorn ``warning_system.wsgi:application``)."""
import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from warning_system.body_deadline import RequestBodyDeadline
from warning_system.cpu_slots import CpuSlotGate

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "warning_system.settings")
# The body is read first (under its deadline), then Django runs in one of the worker's CPU slots.
application = RequestBodyDeadline(
    CpuSlotGate(
        get_wsgi_application(),
        slots=settings.WEB_CPU_SLOTS,
        wait_seconds=settings.WEB_CPU_SLOT_WAIT_SECONDS,
        exempt_paths=frozenset({"/api/v1/health"}),
    ),
    seconds=settings.REQUEST_BODY_TIMEOUT_SECONDS,
    max_bytes=settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
)
