"""Load demo sites and sensors, and (re)create an admin user and a demo API key, printing both."""
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from management.models import ALL_SCOPES, APIKey
from management.services import api_key_create, api_key_revoke
from sensors.demo import demo_load


class Command(BaseCommand):
    help = "Demo data for `make run`: sites, sensors, an admin user and an API key (printed once)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--key-file", default="", help="Also write the demo key to this file (for the simulator).")

    @transaction.atomic
    def handle(self, *args, username, key_file, **options):
        sensors = demo_load()
        password = secrets.token_urlsafe(12)
        User = get_user_model()
        user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@localhost"})
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        api_key_revoke(keys=APIKey.objects.filter(name="demo", revoked=False))
        _, plain = api_key_create(name="demo", scopes=ALL_SCOPES)
        if key_file:
            with open(key_file, "w") as fh:
                fh.write(plain)
        self.stdout.write(self.style.SUCCESS(f"Demo data: {len(sensors)} sensors."))
        self.stdout.write(f"Admin login:   http://127.0.0.1:8000/admin/  user {username!r}  password {password!r}")
        self.stdout.write(f"Demo API key:  {plain}   (scopes {', '.join(ALL_SCOPES)}; shown once)")
        self.stdout.write("Health:        http://127.0.0.1:8000/api/v1/health")
