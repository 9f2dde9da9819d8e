from django.apps import AppConfig


class SensorsConfig(AppConfig):
    name = "sensors"
    verbose_name = "Sites and sensors"

    def ready(self) -> None:
        # Connects the save/delete signals that clear the ingest path's sensor cache.
        from . import sensor_cache  # noqa: F401
