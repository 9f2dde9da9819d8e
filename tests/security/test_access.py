"""The access table (tests/security/access_table.py) is complete and enforced, and docs/security.md shows it.

Every URL pattern the resolver knows must have a row; each row is requested
by every principal (anonymous, a key of each scope, a logged-in analyst,
staff, a superuser) and the outcome class must match the table. No request
may answer 5xx.
"""
from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from .access_table import PRINCIPALS, ROUTES, markdown

pytestmark = pytest.mark.django_db

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def url_patterns(resolver: URLResolver | None = None, prefix: str = "") -> set[str]:
    """Every leaf pattern, spelled as its prefixes joined."""
    found: set[str] = set()
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            found |= url_patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            found.add(prefix + str(entry.pattern))
    return found


def test_every_url_pattern_has_a_row_in_the_access_table_and_no_row_is_stale():
    table = {route.pattern for route in ROUTES}
    patterns = url_patterns()
    assert sorted(patterns - table) == [], "URL patterns without a row in tests/security/access_table.py"
    assert sorted(table - patterns) == [], "rows for URL patterns that no longer exist"


def test_each_rows_example_path_resolves_to_its_own_pattern(scene):
    for route in ROUTES:
        path = route.path.format(**scene).split("?")[0]
        assert resolve(path).route == re.sub(r"(?<=/)\^", "", route.pattern), route  # ResolverMatch.route drops the anchors


def test_docs_security_md_embeds_the_current_access_table():
    text = DOC.read_text()
    start, end = "<!-- ACCESS-TABLE:START -->\n", "<!-- ACCESS-TABLE:END -->"
    assert start in text and end in text
    embedded = text.split(start, 1)[1].split(end, 1)[0]
    assert embedded == markdown(), "regenerate with: .venv/bin/python -m tests.security.access_table"


def _fill(value, scene: dict):
    if isinstance(value, str):
        return value.format(**scene)
    if isinstance(value, dict):
        return {k: _fill(v, scene) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, scene) for v in value]
    return value


def outcome(response) -> str:
    """ok / denied / 404, as the table spells outcomes (5xx is a failure of its own)."""
    status = response.status_code
    assert status < 500, f"{status}: {response.content[:300]!r}"
    if status in (401, 403):
        return "denied"
    if 300 <= status < 400:
        location = response.get("Location", "")
        if "login/" in location and "next=" in location:
            return "denied"
    if status == 404:
        return "404"
    return "ok"


def _client(principal: str, users: dict, scope_keys: dict) -> Client:
    client = Client()
    if principal in users:
        client.force_login(users[principal])
    elif principal in scope_keys:
        client.defaults["HTTP_AUTHORIZATION"] = f"Api-Key {scope_keys[principal]}"
    return client


def test_every_route_gives_each_principal_the_outcome_in_the_table(scene, users, scope_keys, settings):
    settings.PIPELINE_EAGER = True  # ingestion stores in-process: a 202 means the request really passed
    mismatches = []
    for route in ROUTES:
        for principal in PRINCIPALS:
            client = _client(principal, users, scope_keys)
            path = route.path.format(**scene)
            if route.method == "GET":
                response = client.get(path)
            else:
                body = _fill(route.body, scene) if route.body is not None else {}
                response = client.post(path, orjson.dumps(body), content_type="application/json")
            got, want = outcome(response), route.expected(principal)
            # 404 on an "ok" route is the view's own answer (e.g. the admin catch-all), past access control.
            if got == "404" and want == "ok":
                got = "ok"
            if got != want:
                mismatches.append((route.method, path, principal, want, got, response.status_code))
    assert not mismatches, "method, path, principal, expected, got, status:\n" + "\n".join(map(str, mismatches))


def test_only_health_schema_docs_login_and_static_are_reachable_without_credentials():
    public = {route.pattern for route in ROUTES if route.expected("anonymous") == "ok"}
    logouts = {"accounts/logout/", "admin/logout/"}  # they end the caller's own session; anonymous callers get a redirect
    assert public - logouts == {"api/v1/health", "api/v1/schema/", "api/v1/docs/", "api/v1/redoc/", "accounts/login/", "admin/login/"}


def test_static_files_are_served_to_anonymous_callers(settings):
    settings.WHITENOISE_USE_FINDERS = True  # tests run without collectstatic; production serves STATIC_ROOT the same way
    response = Client().get("/static/js/app.js")
    assert response.status_code == 200
