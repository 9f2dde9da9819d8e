"""API keys in the admin: the plain key is shown once after creation; keys can be revoked."""
from django import forms
from django.contrib import admin, messages
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey as UnscopedAPIKey

from . import services
from .models import ALL_SCOPES, APIKey, Scope


# The library's own concrete key model has no scopes; field staff manage ours only.
if admin.site.is_registered(UnscopedAPIKey):
    admin.site.unregister(UnscopedAPIKey)


class APIKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = APIKey
        fields = ("name", "scopes", "sensors", "expiry_date", "revoked")

    def clean_scopes(self):
        return [s for s in ALL_SCOPES if s in self.cleaned_data["scopes"]]


@admin.register(APIKey)
class ScopedAPIKeyAdmin(APIKeyModelAdmin):
    form = APIKeyForm
    list_display = (*APIKeyModelAdmin.list_display, "scope_list", "last_used_at")
    filter_horizontal = ("sensors",)
    actions = ("revoke",)

    @admin.display(description="scopes")
    def scope_list(self, obj) -> str:
        return ", ".join(obj.scopes or [])

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        changed = services.api_key_revoke(keys=queryset)
        self.message_user(request, f"{changed} key(s) revoked.", messages.SUCCESS)
