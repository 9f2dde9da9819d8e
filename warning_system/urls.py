from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

api_v1 = [
    path("", include("management.api.urls")),
    path("", include("sensors.api.read_urls")),
    path("", include("predictions.api.urls")),
    path("", include("alerts.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
]

admin.site.site_header = "warning_system: field operations"
admin.site.site_title = "warning_system admin"

urlpatterns = [
    # Ingestion first: it is the hottest route, so it should resolve in one step.
    path("api/v1/", include("sensors.api.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("alerts.urls")),
    path("", include("sensors.urls")),
]
