"""Alerts in the admin: triage lists, acknowledge/resolve actions, the read-only history.

Alerts are created and changed only by the rules and the lifecycle services
(which write the history and the outbox), so the admin cannot add, edit or
delete them: it acts on them through the same services as the API.
"""
from django.contrib import admin, messages

from . import services
from .models import Alert, AlertEvent


class AlertEventInline(admin.TabularInline):
    model = AlertEvent
    fields = ("at", "kind", "level", "status", "probability", "actor", "note", "published_at")
    readonly_fields = fields
    ordering = ("at", "id")
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("id", "sensor", "site", "hazard", "level", "status", "source", "probability", "triggered_at", "last_triggered_at", "acknowledged_by")
    list_filter = ("status", "hazard", "level", "source")
    search_fields = ("sensor__sensor_id",)
    list_select_related = ("sensor", "sensor__site")
    date_hierarchy = "triggered_at"
    inlines = (AlertEventInline,)
    actions = ("acknowledge", "resolve")
    fieldsets = (
        (None, {"fields": ("sensor", "hazard", "level", "source", "status", "message")}),
        ("Explanation", {"fields": ("probability", "peak_probability", "value", "threshold", "model_version", "features")}),
        ("Timeline", {"fields": ("triggered_at", "last_triggered_at", "clear_streak", "below_since", "created_at", "updated_at")}),
        ("Handling", {"fields": ("acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by", "resolution_reason", "note")}),
    )
    readonly_fields = tuple(f for _, opts in fieldsets for f in opts["fields"])

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="site", ordering="sensor__site__name")
    def site(self, obj) -> str:
        return obj.sensor.site.name

    def _transition(self, request, queryset, service, done: str) -> None:
        changed, skipped = 0, []
        for alert in queryset:
            try:
                service(alert=alert, actor=request.user.get_username())
                changed += 1
            except services.InvalidTransition:
                skipped.append(str(alert.pk))
        self.message_user(request, f"{changed} alert(s) {done}.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Skipped alert(s) {', '.join(skipped)}: their status does not allow it.", messages.WARNING)

    @admin.action(description="Acknowledge selected alerts", permissions=["change"])
    def acknowledge(self, request, queryset):
        self._transition(request, queryset, services.alert_acknowledge, "acknowledged")

    @admin.action(description="Resolve selected alerts", permissions=["change"])
    def resolve(self, request, queryset):
        self._transition(request, queryset, services.alert_resolve, "resolved")
