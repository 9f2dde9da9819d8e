"""python manage.py create_api_key --name NAME --scopes ingest,read [--sensors S1,S2] [--expires DAYS]"""
from django.core.management.base import BaseCommand, CommandError

from management.services import InvalidKeyRequest, api_key_create


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Command(BaseCommand):
    help = "Create an API key and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--scopes", required=True, type=_csv, help="Comma-separated: ingest,read,predict,manage")
        parser.add_argument("--sensors", type=_csv, default=[], help="Restrict to these sensor codes")
        parser.add_argument("--expires", type=int, default=None, metavar="DAYS")

    def handle(self, *args, name, scopes, sensors, expires, **options):
        try:
            api_key, plain = api_key_create(name=name, scopes=scopes, sensor_ids=sensors, expires_in_days=expires)
        except InvalidKeyRequest as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"Created API key {api_key.name!r} (prefix {api_key.prefix}, scopes {','.join(api_key.scopes)}). It is shown only once:")
        self.stdout.write(plain)
