"""WSGI entry point (gunicorn ``warning_system.wsgi:application``)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "warning_system.settings")
application = get_wsgi_application()
