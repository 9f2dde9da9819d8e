"""Admin for field staff: sites, sensors (status, thresholds) and readings.

The readings table grows to tens of millions of rows, so its changelist never
counts the whole table, shows a recent period by default, and picks the
sensor with a raw-id widget instead of loading every sensor into a select.
"""
from datetime import timedelta

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import OuterRef, Subquery
from django.utils import timezone
from django.utils.functional import cached_property

from . import services
from .models import Reading, Sensor, Site


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("name", "region", "latitude", "longitude")
    search_fields = ("name", "region")


def _latest(field: str):
    return Subquery(Reading.objects.filter(sensor=OuterRef("pk")).order_by("-timestamp").values(field)[:1])


@admin.register(Sensor)
class SensorAdmin(admin.ModelAdmin):
    list_display = (
        "sensor_id", "name", "status", "site", "kind", "last_seen_at", "latest_reading",
        "flood_stage_m", "rainfall_limit_mm_h", "ground_movement_limit_mm_h", "soil_moisture_limit",
    )
    # Thresholds are edited inline in the list: field staff tune many sensors at once.
    list_editable = ("flood_stage_m", "rainfall_limit_mm_h", "ground_movement_limit_mm_h", "soil_moisture_limit")
    list_filter = ("status", "site", "kind")
    search_fields = ("sensor_id", "name")
    list_select_related = ("site",)
    readonly_fields = ("last_seen_at", "created_at", "updated_at")
    actions = ("put_in_maintenance", "activate", "retire")
    fieldsets = (
        (None, {"fields": ("sensor_id", "name", "site", "kind", "status", "maintenance_until")}),
        ("Location", {"fields": ("latitude", "longitude", "elevation", "installed_at")}),
        ("Thresholds", {"fields": ("flood_stage_m", "rainfall_limit_mm_h", "ground_movement_limit_mm_h", "soil_moisture_limit")}),
        ("Activity", {"fields": ("last_seen_at", "created_at", "updated_at")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            latest_ts=_latest("timestamp"),
            latest_rainfall=_latest("rainfall"),
            latest_soil_moisture=_latest("soil_moisture"),
            latest_ground_movement=_latest("ground_movement"),
            latest_water_level=_latest("water_level"),
        )

    @admin.display(description="latest reading", ordering="latest_ts")
    def latest_reading(self, obj) -> str:
        if obj.latest_ts is None:
            return "—"
        parts = [
            f"{label} {value:g}"
            for label, value in (
                ("rain", obj.latest_rainfall), ("soil", obj.latest_soil_moisture),
                ("move", obj.latest_ground_movement), ("level", obj.latest_water_level),
            )
            if value is not None
        ]
        return f"{timezone.localtime(obj.latest_ts):%Y-%m-%d %H:%M} · " + ", ".join(parts)

    def delete_model(self, request, obj) -> None:
        services.sensors_delete(sensor_ids=[obj.pk])

    def delete_queryset(self, request, queryset) -> None:
        services.sensors_delete(sensor_ids=queryset.values_list("pk", flat=True))

    def _set_status(self, request, queryset, status, label):
        changed = services.sensors_set_status(sensor_ids=queryset.values_list("pk", flat=True), status=status)
        self.message_user(request, f"{changed} sensor(s) {label}.", messages.SUCCESS)

    @admin.action(description="Put selected sensors in maintenance (no alerts)")
    def put_in_maintenance(self, request, queryset):
        self._set_status(request, queryset, Sensor.Status.MAINTENANCE, "put in maintenance")

    @admin.action(description="Activate selected sensors")
    def activate(self, request, queryset):
        self._set_status(request, queryset, Sensor.Status.ACTIVE, "activated")

    @admin.action(description="Retire selected sensors (readings rejected)")
    def retire(self, request, queryset):
        self._set_status(request, queryset, Sensor.Status.RETIRED, "retired")


class CappedCountPaginator(Paginator):
    """Counts at most ``CAP`` rows: COUNT(*) over millions of readings would stall the page.

    ``COUNT`` over a ``LIMIT``-ed subquery stops early; analysts narrow the
    period or sensor to page further back.
    """

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list.order_by()[: self.CAP].count()


class PeriodFilter(admin.SimpleListFilter):
    """Readings are listed by recent period; the last 24 h unless the user widens it."""

    title = "period"
    parameter_name = "period"
    PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}

    def lookups(self, request, model_admin):
        return [("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days"), ("all", "All time")]

    def value(self):
        return super().value() or "24h"

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        window = self.PERIODS.get(self.value())
        if window is None:
            return queryset
        return queryset.filter(timestamp__gte=timezone.now() - window)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Reading)
class ReadingAdmin(ReadOnlyAdmin):
    list_display = ("sensor", "timestamp", "rainfall", "soil_moisture", "ground_movement", "water_level", "received_at")
    list_filter = (PeriodFilter,)
    date_hierarchy = "timestamp"
    raw_id_fields = ("sensor",)
    search_fields = ("=sensor__sensor_id",)
    ordering = ("-timestamp",)
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_select_related = ("sensor",)
