"""Replay a storm (or calm, flood, landslide) scenario through the ingestion API; see sensors.simulator."""
import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from predictions.ml.synth import SCENARIOS
from sensors.simulator import SimulatorError, simulate, simulated_batches, simulation_sensors

API_KEY_ENV = "WARNING_SYSTEM_API_KEY"


class Command(BaseCommand):
    help = (
        "Post realistic readings for the first N active sensors through POST /api/v1/sensor-data, "
        "one batch per site gateway per simulated hour, timestamps ending now."
    )

    def add_arguments(self, parser):
        parser.add_argument("--scenario", choices=SCENARIOS, default="storm")
        parser.add_argument("--sensors", type=int, default=10, help="How many active sensors (first N by code). Default 10.")
        parser.add_argument("--hours", type=int, default=24, help="Simulated hours, ending now. Default 24.")
        parser.add_argument("--rate", type=float, default=5.0, help="Batches (POST requests) per second; 0 = no limit. Default 5.")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="Base URL of the API. Default http://127.0.0.1:8000.")
        parser.add_argument("--api-key", default="", help=f"Key with the ingest scope (else --api-key-file, else ${API_KEY_ENV}).")
        parser.add_argument("--api-key-file", default="", help="File holding the key (e.g. from seed_demo --key-file).")
        parser.add_argument("--seed", type=int, default=0, help="Scenario seed; the same seed replays the same readings.")
        parser.add_argument("--timeout", type=float, default=30.0, help="Seconds to wait for each response.")

    def _api_key(self, options) -> str:
        if options["api_key"]:
            return options["api_key"].strip()
        if options["api_key_file"]:
            try:
                return Path(options["api_key_file"]).read_text().strip()
            except OSError as exc:
                raise CommandError(f"cannot read --api-key-file: {exc}") from exc
        key = os.environ.get(API_KEY_ENV, "").strip()
        if not key:
            raise CommandError(f"no API key: pass --api-key or --api-key-file, or set {API_KEY_ENV}")
        return key

    def handle(self, *args, **options):
        if options["sensors"] < 1 or options["hours"] < 1:
            raise CommandError("--sensors and --hours must be at least 1")
        if options["rate"] < 0:
            raise CommandError("--rate must not be negative")
        api_key = self._api_key(options)
        sensors = simulation_sensors(count=options["sensors"])
        if not sensors:
            raise CommandError("no active sensors registered (run `manage.py seed_demo` first)")
        if len(sensors) < options["sensors"]:
            self.stderr.write(f"Only {len(sensors)} active sensors are registered; simulating those.")
        batches = simulated_batches(sensors=sensors, scenario=options["scenario"], hours=options["hours"], seed=options["seed"])
        self.stdout.write(
            f"Scenario {options['scenario']}: {len(sensors)} sensors, {options['hours']} h, "
            f"{len(batches)} batches to {options['url']} at {options['rate'] or 'unlimited'} batches/s"
        )
        try:
            summary = simulate(batches=batches, base_url=options["url"], api_key=api_key, rate=options["rate"],
                               timeout=options["timeout"], progress=self.stdout.write)
        except SimulatorError as exc:
            self.stderr.write(f"Stopped: {exc}")
            self.stderr.write(exc.summary.line())
            raise CommandError("simulation stopped early") from exc
        for error in summary.errors:
            self.stderr.write(error)
        style = self.style.SUCCESS if not summary.failed_batches else self.style.WARNING
        self.stdout.write(style(summary.line()))
