from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from management.views import RateLimitedLoginView, login_guarded

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
    # Before admin.site.urls so the admin's own sign-in is rate limited too (reverse("admin:login") is unchanged).
    path("admin/login/", login_guarded(admin.site.login)),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("accounts/login/", RateLimitedLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("alerts.urls")),
    path("", include("sensors.urls")),
]
handler404 = "warning_system.views.not_found"
