"""ASGI entry point (uvicorn ``warning_system.asgi:application``)."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "warning_system.settings")
application = get_asgi_application()
