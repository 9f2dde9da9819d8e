"""python manage.py load_history --csv FILE | --generate N [--sensors M] [--prefix P] [--interval-seconds S] [--end ISO]

Bulk import of historical readings (see ``sensors.bulk``): a CSV file with the
header ``sensor_id,timestamp,rainfall,soil_moisture,ground_movement,water_level``,
or N synthetic readings streamed straight into COPY (benchmarks, demos).
Idempotent: loading the same rows again adds nothing.
"""
import sys
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from sensors.bulk import BulkLoadError, history_end_default, readings_bulk_load, readings_load_csv, synthetic_rows
from sensors.models import Sensor
from sensors.validation import parse_timestamp


class Command(BaseCommand):
    help = "Bulk-load historical readings from a CSV file (all or nothing, idempotent), or generate synthetic history."

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--csv", metavar="FILE", help="CSV with header sensor_id,timestamp,rainfall,soil_moisture,ground_movement,water_level ('-' for stdin)")
        source.add_argument("--generate", type=int, metavar="N", help="Generate N synthetic readings instead of reading a file")
        parser.add_argument("--skip-unknown", action="store_true", help="CSV: skip rows of unregistered sensors (default: reject the file)")
        parser.add_argument("--sensors", type=int, default=None, metavar="M", help="--generate: spread over the first M active sensors by code (default: all)")
        parser.add_argument("--prefix", default="", help="--generate: only sensors whose code starts with this")
        parser.add_argument("--interval-seconds", type=int, default=900, help="--generate: seconds between a sensor's readings (default 900)")
        parser.add_argument("--end", default=None, help="--generate: time of the newest reading, ISO 8601 with offset (default: a minute ago)")
        parser.add_argument("--seed", type=int, default=0, help="--generate: random seed (default 0)")

    def handle(self, *args, csv, generate, skip_unknown, sensors, prefix, interval_seconds, end, seed, **options):
        try:
            if csv is not None:
                result = self._load_csv(csv, skip_unknown)
            else:
                result = self._generate(generate, sensors, prefix, interval_seconds, end, seed)
        except BulkLoadError as exc:
            raise CommandError(str(exc)) from exc
        message = (
            f"Loaded {result.inserted:,} new readings from {result.rows:,} rows "
            f"({result.duplicates:,} already stored) in {result.seconds:.1f} s: {result.rows_per_second:,.0f} rows/s."
        )
        if result.skipped_unknown:
            codes = ", ".join(sorted(result.skipped_unknown))
            message += f" Skipped {sum(result.skipped_unknown.values()):,} rows of unknown sensors: {codes}."
        self.stdout.write(self.style.SUCCESS(message))

    def _load_csv(self, path, skip_unknown):
        if path == "-":
            return readings_load_csv(file=sys.stdin, skip_unknown=skip_unknown)
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                return readings_load_csv(file=fh, skip_unknown=skip_unknown)
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise CommandError(f"{path} is not UTF-8 text: {exc.reason}") from exc

    def _generate(self, count, sensors, prefix, interval_seconds, end, seed):
        if count < 1:
            raise CommandError("--generate must be at least 1")
        if interval_seconds < 1:
            raise CommandError("--interval-seconds must be at least 1")
        if sensors is not None and sensors < 1:
            raise CommandError("--sensors must be at least 1")
        if end is None:
            end_at = history_end_default()
        else:
            end_at = parse_timestamp(end)
            if isinstance(end_at, str):
                raise CommandError(f"--end {end_at}")
        codes = list(
            Sensor.objects.filter(status=Sensor.Status.ACTIVE, sensor_id__startswith=prefix)
            .order_by("sensor_id").values_list("sensor_id", flat=True)
        )
        if sensors is not None:
            if len(codes) < sensors:
                raise CommandError(f"--sensors {sensors}: only {len(codes)} active sensors match prefix {prefix!r}")
            codes = codes[:sensors]
        if not codes:
            raise CommandError(f"no active sensors match prefix {prefix!r}; register sensors first")
        rows = synthetic_rows(count=count, sensor_ids=codes, end=end_at, interval=timedelta(seconds=interval_seconds), seed=seed)
        return readings_bulk_load(rows=rows, atomic=False)
