from django.contrib import admin

from sensors.admin import CappedCountPaginator, ReadOnlyAdmin

from .models import Prediction


@admin.register(Prediction)
class PredictionAdmin(ReadOnlyAdmin):
    list_display = ("sensor", "timestamp", "landslide_probability", "landslide_risk", "flood_probability", "flood_risk", "landslide_model_version", "flood_model_version")
    list_filter = ("landslide_risk", "flood_risk")
    date_hierarchy = "timestamp"
    raw_id_fields = ("sensor",)
    search_fields = ("=sensor__sensor_id",)
    ordering = ("-timestamp",)
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_select_related = ("sensor",)
