"""Demo sites and sensors for `make run` and the storm simulator."""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from .models import Sensor, Site

DEMO_SITES = [
    {"name": "Ribeira Slope", "region": "Serra do Mar", "latitude": -23.78, "longitude": -45.98, "description": "Steep granitic slope above a coastal road."},
    {"name": "Kali Valley", "region": "Western Nepal", "latitude": 29.38, "longitude": 80.56, "description": "Monsoon-fed valley with debris-flow history."},
    {"name": "Lower Arno", "region": "Tuscany", "latitude": 43.77, "longitude": 11.25, "description": "River reach above an urban floodplain."},
]

# (site index, code, kind, thresholds)
DEMO_SENSORS = [
    (0, "RIB-RG-01", Sensor.Kind.RAIN_GAUGE, {"rainfall_limit_mm_h": 40}),
    (0, "RIB-SM-01", Sensor.Kind.SOIL_MOISTURE, {"soil_moisture_limit": 0.45}),
    (0, "RIB-EX-01", Sensor.Kind.EXTENSOMETER, {"ground_movement_limit_mm_h": 5}),
    (0, "RIB-MP-01", Sensor.Kind.MULTI, {"rainfall_limit_mm_h": 40, "ground_movement_limit_mm_h": 5, "flood_stage_m": 4.0}),
    (1, "KAL-MP-01", Sensor.Kind.MULTI, {"rainfall_limit_mm_h": 50, "ground_movement_limit_mm_h": 5, "flood_stage_m": 5.0}),
    (1, "KAL-MP-02", Sensor.Kind.MULTI, {"rainfall_limit_mm_h": 50, "ground_movement_limit_mm_h": 5, "flood_stage_m": 5.0}),
    (1, "KAL-RV-01", Sensor.Kind.RIVER_GAUGE, {"flood_stage_m": 5.0}),
    (2, "ARN-RV-01", Sensor.Kind.RIVER_GAUGE, {"flood_stage_m": 4.5}),
    (2, "ARN-RV-02", Sensor.Kind.RIVER_GAUGE, {"flood_stage_m": 4.5}),
    (2, "ARN-MP-01", Sensor.Kind.MULTI, {"rainfall_limit_mm_h": 35, "flood_stage_m": 4.5}),
]


@transaction.atomic
def demo_load() -> list[Sensor]:
    """Create the demo sites and sensors if absent (idempotent)."""
    sites = []
    for spec in DEMO_SITES:
        site, _ = Site.objects.update_or_create(name=spec["name"], defaults=spec)
        sites.append(site)
    sensors = []
    for site_index, code, kind, thresholds in DEMO_SENSORS:
        site = sites[site_index]
        sensor, _ = Sensor.objects.get_or_create(
            sensor_id=code,
            defaults={
                "name": f"{site.name} {kind.label}", "site": site, "kind": kind,
                "latitude": site.latitude, "longitude": site.longitude,
                "installed_at": timezone.now(), **thresholds,
            },
        )
        sensors.append(sensor)
    return sensors
