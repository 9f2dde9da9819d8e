"""Who can do what: every URL pattern of the project, each principal's expected outcome.

One table, two uses: ``test_access.py`` walks every URL pattern of
``django.urls.get_resolver()`` and asserts each has a row here and that each
principal gets the outcome listed; ``python -m tests.security.access_table``
prints the Markdown table that docs/security.md embeds (a test checks the doc
is up to date). Adding a URL without a row fails the suite.

Outcomes:

- ``ok``: the request passes access control (2xx, a redirect that is not to a
  login page, or a 4xx about the request itself such as 400/404/409);
- ``denied``: 401, 403, or a redirect to a login page;
- ``404``: past access control, but nothing is served (the admin's "view on
  site" shortcut, as no model has a public URL; an admin app index for staff
  without permissions on that app).
"""
from __future__ import annotations

from dataclasses import dataclass, field

PRINCIPALS = ("anonymous", "key:ingest", "key:read", "key:predict", "key:manage", "analyst", "staff", "admin")
HEADINGS = {
    "anonymous": "anonymous",
    "key:ingest": "key `ingest`",
    "key:read": "key `read`",
    "key:predict": "key `predict`",
    "key:manage": "key `manage`",
    "analyst": "analyst (logged in)",
    "staff": "staff",
    "admin": "admin (superuser)",
}
KEYS = tuple(p for p in PRINCIPALS if p.startswith("key:"))
SESSIONS = ("analyst", "staff", "admin")


@dataclass(frozen=True)
class Route:
    pattern: str  # as the resolver walk spells it (see test_access.url_patterns)
    method: str
    path: str  # str.format()-ed with the test scene (ids of real objects)
    what: str
    allowed: frozenset[str]
    not_found: frozenset[str] = frozenset()  # principals past access control who get a bare 404
    body: dict | list | None = field(default=None, compare=False)

    def expected(self, principal: str) -> str:
        if principal in self.allowed:
            return "ok"
        return "404" if principal in self.not_found else "denied"


def _allow(*principals: str) -> frozenset[str]:
    return frozenset(principals)


EVERYONE = _allow(*PRINCIPALS)
NOBODY = _allow()
PAGES = _allow(*SESSIONS)
STAFF = _allow("staff", "admin")
SUPERUSER = _allow("admin")


def api(scope: str) -> frozenset[str]:
    """Keys with the scope; sessions may read (any analyst) and manage (staff); ingest and predict are keys only."""
    sessions = {"read": SESSIONS, "manage": ("staff", "admin")}.get(scope, ())
    return _allow(f"key:{scope}", *sessions)


def _admin_model(app_model: str, *, add: frozenset[str], change: frozenset[str], delete: frozenset[str]) -> list[Route]:
    """The seven routes the admin registers for one model (``app/model``); ``{obj_<model>}`` is the object id."""
    base = f"admin/{app_model}/"
    obj = "{obj_" + app_model.split("/")[1] + "}"
    return [
        Route(base, "GET", f"/{base}", f"admin: {app_model} list", SUPERUSER),
        Route(f"{base}add/", "GET", f"/{base}add/", f"admin: add {app_model}", add),
        Route(f"{base}<path:object_id>/", "GET", f"/{base}{obj}/", f"admin: {app_model} (a redirect to its change page, which decides)", STAFF),
        Route(f"{base}<path:object_id>/change/", "GET", f"/{base}{obj}/change/", f"admin: view/change {app_model}", change),
        Route(f"{base}<path:object_id>/delete/", "GET", f"/{base}{obj}/delete/", f"admin: delete {app_model}", delete),
        Route(f"{base}<path:object_id>/history/", "GET", f"/{base}{obj}/history/", f"admin: {app_model} history", SUPERUSER),
    ]


ROUTES: list[Route] = [
    # Public: health, the schema and docs, the login page.
    Route("api/v1/health", "GET", "/api/v1/health", "health (no key; load balancers)", EVERYONE),
    Route("api/v1/schema/", "GET", "/api/v1/schema/", "OpenAPI schema", EVERYONE),
    Route("api/v1/docs/", "GET", "/api/v1/docs/", "Swagger UI", EVERYONE),
    Route("api/v1/redoc/", "GET", "/api/v1/redoc/", "ReDoc", EVERYONE),
    Route("accounts/login/", "GET", "/accounts/login/", "login page", EVERYONE),
    Route("accounts/logout/", "POST", "/accounts/logout/", "logout (ends the caller's own session, if any)", EVERYONE),
    Route("admin/login/", "GET", "/admin/login/", "admin login page (rate limited)", EVERYONE),
    # API
    Route("api/v1/sensor-data", "POST", "/api/v1/sensor-data", "ingest readings", api("ingest"),
          body={"sensor_id": "{sensor}", "rainfall": 1.0}),
    Route("api/v1/^sensors$", "GET", "/api/v1/sensors", "list sensors", api("read")),
    Route("api/v1/^sensors/(?P<sensor_id>[^/]+)$", "GET", "/api/v1/sensors/{sensor}", "one sensor", api("read")),
    Route("api/v1/^sensors/(?P<sensor_id>[^/]+)/readings$", "GET", "/api/v1/sensors/{sensor}/readings", "a sensor's readings", api("read")),
    Route("api/v1/^sensors/(?P<sensor_id>[^/]+)/predictions$", "GET", "/api/v1/sensors/{sensor}/predictions", "a sensor's predictions", api("read")),
    Route("api/v1/predictions", "POST", "/api/v1/predictions", "score on demand", api("predict"), body={"sensor_id": "{sensor}"}),
    Route("api/v1/model-info", "GET", "/api/v1/model-info", "model versions and metrics", api("read")),
    Route("api/v1/^alerts$", "GET", "/api/v1/alerts", "list alerts", api("read")),
    Route("api/v1/^alerts/(?P<pk>[0-9]+)$", "GET", "/api/v1/alerts/{alert}", "one alert with history", api("read")),
    Route("api/v1/^alerts/(?P<pk>[0-9]+)/acknowledge$", "POST", "/api/v1/alerts/{alert}/acknowledge", "acknowledge an alert", api("manage"), body={"note": "seen"}),
    Route("api/v1/^alerts/(?P<pk>[0-9]+)/resolve$", "POST", "/api/v1/alerts/{alert}/resolve", "resolve an alert", api("manage"), body={"note": "done"}),
    # Analyst pages (session login; API keys are not sessions)
    Route("", "GET", "/", "dashboard", PAGES),
    Route("partials/open-alerts", "GET", "/partials/open-alerts", "dashboard live fragment", PAGES),
    Route("alerts/", "GET", "/alerts/", "alert list page", PAGES),
    Route("alerts/<int:pk>/", "GET", "/alerts/{alert}/", "alert detail page", PAGES),
    Route("alerts/<int:pk>/acknowledge", "POST", "/alerts/{alert}/acknowledge", "acknowledge from the page", STAFF),
    Route("alerts/<int:pk>/resolve", "POST", "/alerts/{alert}/resolve", "resolve from the page", STAFF),
    Route("sensors/", "GET", "/sensors/", "sensor list page", PAGES),
    Route("sensors/<str:sensor_id>/", "GET", "/sensors/{sensor}/", "sensor detail page", PAGES),
    # Admin site (staff only; model pages need model permissions, which only the superuser has here)
    Route("admin/", "GET", "/admin/", "admin index", STAFF),
    Route("admin/logout/", "POST", "/admin/logout/", "admin logout (ends the caller's own session, if any)", EVERYONE),
    Route("admin/password_change/", "GET", "/admin/password_change/", "change own password", STAFF),
    Route("admin/password_change/done/", "GET", "/admin/password_change/done/", "password changed", STAFF),
    Route("admin/autocomplete/", "GET", "/admin/autocomplete/?app_label=alerts&model_name=alert&field_name=sensor", "admin autocomplete", SUPERUSER),
    Route("admin/jsi18n/", "GET", "/admin/jsi18n/", "admin JavaScript catalog", STAFF),
    Route("admin/r/<path:content_type_id>/<path:object_id>/", "GET", "/admin/r/{ct_sensor}/{obj_sensor}/", "view on site (no model has a public URL)", NOBODY, not_found=STAFF),
    Route("admin/(?P<url>.*)$", "GET", "/admin/no-such-page/", "admin catch-all (404 for staff)", STAFF),
    Route("admin/^(?P<app_label>auth|sensors|predictions|alerts|management)/$", "GET", "/admin/sensors/", "admin app index", SUPERUSER, not_found=_allow("staff")),
    Route("admin/auth/user/<id>/password/", "GET", "/admin/auth/user/{obj_user}/password/", "admin: set a user's password", SUPERUSER),
    *_admin_model("auth/user", add=SUPERUSER, change=SUPERUSER, delete=SUPERUSER),
    *_admin_model("auth/group", add=SUPERUSER, change=SUPERUSER, delete=SUPERUSER),
    *_admin_model("sensors/site", add=SUPERUSER, change=SUPERUSER, delete=SUPERUSER),
    *_admin_model("sensors/sensor", add=SUPERUSER, change=SUPERUSER, delete=SUPERUSER),
    # Readings, predictions and alerts are records: viewable, never added, edited or deleted in the admin.
    *_admin_model("sensors/reading", add=NOBODY, change=SUPERUSER, delete=NOBODY),
    *_admin_model("predictions/prediction", add=NOBODY, change=SUPERUSER, delete=NOBODY),
    *_admin_model("alerts/alert", add=NOBODY, change=SUPERUSER, delete=NOBODY),
    *_admin_model("management/apikey", add=SUPERUSER, change=SUPERUSER, delete=SUPERUSER),
]

# Not URL patterns but served to anyone: static files (WhiteNoise middleware).
STATIC_NOTE = "Static files under `/static/` are served to anyone by WhiteNoise (CSS, JS, images; nothing secret)."

_MARK = {"ok": "✅", "denied": "⛔", "404": "404"}


def markdown() -> str:
    """The table docs/security.md embeds between its ACCESS-TABLE markers."""
    lines = [
        "| method | path | what | " + " | ".join(HEADINGS[p] for p in PRINCIPALS) + " |",
        "|---|---|---|" + "---|" * len(PRINCIPALS),
    ]
    for route in ROUTES:
        path = route.path.split("?")[0]
        cells = " | ".join(_MARK[route.expected(p)] for p in PRINCIPALS)
        lines.append(f"| {route.method} | `{path}` | {route.what} | {cells} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
