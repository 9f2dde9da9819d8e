"""Sites, sensors and their readings.

Readings are the big table (tens of millions of rows): its indexes are chosen
for "latest readings of a sensor" (unique (sensor, timestamp DESC), which also
makes a re-delivered reading a no-op) and for time-range scans (a BRIN index
on timestamp, created in a PostgreSQL-only migration).
"""
from django.db import models
from django.db.models import F, Q


class Site(models.Model):
    name = models.CharField(max_length=120, unique=True)
    region = models.CharField(max_length=120, blank=True)
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(latitude__gte=-90, latitude__lte=90) | Q(latitude__isnull=True), name="site_latitude_range"),
            models.CheckConstraint(condition=Q(longitude__gte=-180, longitude__lte=180) | Q(longitude__isnull=True), name="site_longitude_range"),
        ]

    def __str__(self) -> str:
        return self.name


class Sensor(models.Model):
    class Kind(models.TextChoices):
        RAIN_GAUGE = "rain_gauge", "Rain gauge"
        SOIL_MOISTURE = "soil_moisture", "Soil-moisture probe"
        EXTENSOMETER = "extensometer", "Extensometer"
        RIVER_GAUGE = "river_gauge", "River-stage gauge"
        MULTI = "multi", "Multi-parameter station"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        MAINTENANCE = "maintenance", "In maintenance"
        RETIRED = "retired", "Retired"

    sensor_id = models.CharField(max_length=64, unique=True, help_text="The code devices send.")
    name = models.CharField(max_length=120, blank=True)
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="sensors")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.MULTI)
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    elevation = models.FloatField(null=True, blank=True, help_text="Metres above sea level.")
    installed_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    maintenance_until = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True, db_index=True)

    # Thresholds set by field staff; empty means "no threshold rule".
    flood_stage_m = models.FloatField("flood stage (m)", null=True, blank=True)
    rainfall_limit_mm_h = models.FloatField("rainfall limit (mm/h)", null=True, blank=True)
    ground_movement_limit_mm_h = models.FloatField("ground movement limit (mm/h)", null=True, blank=True)
    soil_moisture_limit = models.FloatField("soil moisture limit (fraction)", null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sensor_id"]
        constraints = [
            models.CheckConstraint(condition=Q(soil_moisture_limit__gte=0, soil_moisture_limit__lte=1) | Q(soil_moisture_limit__isnull=True), name="sensor_soil_moisture_limit_range"),
            models.CheckConstraint(condition=Q(rainfall_limit_mm_h__gte=0) | Q(rainfall_limit_mm_h__isnull=True), name="sensor_rainfall_limit_nonneg"),
            models.CheckConstraint(condition=Q(ground_movement_limit_mm_h__gte=0) | Q(ground_movement_limit_mm_h__isnull=True), name="sensor_ground_movement_limit_nonneg"),
        ]

    def __str__(self) -> str:
        return self.sensor_id


class Reading(models.Model):
    """One measurement set from a sensor at one time; stored once per (sensor, timestamp)."""

    id = models.BigAutoField(primary_key=True)
    # No database-level foreign key (db_constraint=False): PostgreSQL checked it
    # per inserted row at COMMIT (~7-10 µs a reading, bench/bench_consumer.py
    # --stages). The pipeline instead locks the batch's sensor rows FOR KEY
    # SHARE when it looks them up, and sensors_delete locks the sensor FOR
    # UPDATE before its cascade: no reading can be stored for a sensor being
    # deleted, the guarantee the constraint gave (tests/sensors/test_models.py).
    sensor = models.ForeignKey(Sensor, on_delete=models.CASCADE, related_name="readings", db_index=False, db_constraint=False)
    timestamp = models.DateTimeField(help_text="Measurement time.")
    received_at = models.DateTimeField(help_text="When the API received it.")
    rainfall = models.FloatField(null=True, blank=True, help_text="mm in the last hour (0–500).")
    soil_moisture = models.FloatField(null=True, blank=True, help_text="Volumetric fraction (0–1).")
    ground_movement = models.FloatField(null=True, blank=True, help_text="Displacement rate, mm/h (0–1000).")
    water_level = models.FloatField(null=True, blank=True, help_text="m above gauge datum (−50–100).")

    MEASUREMENTS = ("rainfall", "soil_moisture", "ground_movement", "water_level")

    class Meta:
        constraints = [
            # One index serves both the idempotent upsert and "latest readings of a sensor".
            models.UniqueConstraint(F("sensor"), F("timestamp").desc(), name="reading_sensor_timestamp_uniq"),
            models.CheckConstraint(
                condition=Q(rainfall__isnull=False) | Q(soil_moisture__isnull=False) | Q(ground_movement__isnull=False) | Q(water_level__isnull=False),
                name="reading_has_measurement",
            ),
            models.CheckConstraint(condition=Q(rainfall__gte=0, rainfall__lte=500) | Q(rainfall__isnull=True), name="reading_rainfall_range"),
            models.CheckConstraint(condition=Q(soil_moisture__gte=0, soil_moisture__lte=1) | Q(soil_moisture__isnull=True), name="reading_soil_moisture_range"),
            models.CheckConstraint(condition=Q(ground_movement__gte=0, ground_movement__lte=1000) | Q(ground_movement__isnull=True), name="reading_ground_movement_range"),
            models.CheckConstraint(condition=Q(water_level__gte=-50, water_level__lte=100) | Q(water_level__isnull=True), name="reading_water_level_range"),
        ]

    def __str__(self) -> str:
        return f"{self.sensor_id}@{self.timestamp.isoformat()}"
