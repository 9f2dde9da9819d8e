"""``manage.py train_models``: a thin CLI over :mod:`predictions.ml.train`.

Settings read here (and only here): ``MODEL_DIR``, ``LANDSLIDE_HORIZON_HOURS``,
``FLOOD_HORIZON_HOURS`` and ``MODEL_METRIC_FLOORS``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from predictions.ml.train import DEFAULT_FLOORS, TrainConfig, TrainingRefused, summary_markdown, train_models


class Command(BaseCommand):
    help = ("Train the landslide and flood models on synthetic histories, validate them on "
            "held-out sites and a later period, and publish them if they clear the metric floors.")

    def add_arguments(self, parser):
        defaults = TrainConfig()
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument("--sites", type=int, default=defaults.sites)
        parser.add_argument("--days", type=int, default=defaults.days)
        parser.add_argument("--output", default=None, help="model directory (default: settings.MODEL_DIR)")
        parser.add_argument("--force", action="store_true",
                            help="publish even if a held-out metric is below MODEL_METRIC_FLOORS")

    def handle(self, *args, **options):
        if options["sites"] < 4 or options["days"] < 30:
            raise CommandError("--sites must be >= 4 and --days >= 30 to hold out sites and a period")
        config = TrainConfig(
            seed=options["seed"], sites=options["sites"], days=options["days"],
            landslide_horizon_hours=int(getattr(settings, "LANDSLIDE_HORIZON_HOURS", 24)),
            flood_horizon_hours=int(getattr(settings, "FLOOD_HORIZON_HOURS", 6)),
            floors=dict(getattr(settings, "MODEL_METRIC_FLOORS", DEFAULT_FLOORS)),
            force=options["force"],
        )
        output = options["output"] or settings.MODEL_DIR
        try:
            metadata = train_models(output, config)
        except TrainingRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(summary_markdown(metadata))
        self.stdout.write(self.style.SUCCESS(
            "published to {}: {}".format(output, ", ".join(f"{n} {m['version']}" for n, m in metadata.items()))))
