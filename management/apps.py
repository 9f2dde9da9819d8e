from django.apps import AppConfig


class ManagementConfig(AppConfig):
    name = "management"
    label = "management"
    verbose_name = "API keys and operations"
