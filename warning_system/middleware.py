"""Middleware that keeps the machine-to-machine endpoints cheap.

``POST /api/v1/sensor-data`` serves thousands of requests per second from
devices, ``POST /api/v1/predictions`` serves integrators, and
``GET /api/v1/alerts`` and ``GET /api/v1/sensors/{id}/readings`` (or
``/predictions``) are what dashboards and integrations poll; all of them
authenticate with API keys and never use sessions, users, flash messages,
CSRF tokens, static files or slash redirects. Every layer of
middleware costs a few microseconds per request even when it does nothing
(a function call per layer, the URL resolver, ``MiddlewareMixin`` plumbing),
and the target is ≤ 150 µs of CPU per request, authentication included.

:class:`IngestFastPathMiddleware` sits near the top of ``MIDDLEWARE`` (after
:class:`ReleaseCyclesMiddleware`) and sends those
paths (``FAST_PATHS``, and one sensor's readings and predictions pages) straight to their DRF views, applying on the way exactly
what the skipped middleware would have done for them:

- ``SecurityMiddleware`` (HTTPS redirect, HSTS, nosniff, referrer and
  cross-origin-opener policies) and ``XFrameOptionsMiddleware``: their own
  ``process_request``/``process_response`` run, so headers cannot drift;
- ``CommonMiddleware``: the ``ALLOWED_HOSTS`` check (``get_host()``, a 400
  on a foreign host) and ``Content-Length``;
- ``RejectNulMiddleware``: a NUL byte in the path or query string is a 400
  (``nul_rejection``; the alert list takes query filters);
- URL resolution: each view is resolved through the URLconf (which stays
  the single source of truth for the routes); the fixed paths once, then reused.

Everything else is skipped on purpose: the views are ``csrf_exempt`` (CSRF
middleware would pass them through), WhiteNoise serves only ``/static/``, and
sessions, users and messages are never used by API keys. Other paths get
the full stack unchanged. Middleware and URL resolution were 25-35 % of the
CPU of a predictions request (py-spy, bench/bench_api_cpu.py).
"""
from __future__ import annotations

from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import Resolver404, resolve

from management.authentication import extract_key

INGEST_PATH = "/api/v1/sensor-data"
ALERT_LIST_PATH = "/api/v1/alerts"
FAST_PATHS = (INGEST_PATH, "/api/v1/predictions", ALERT_LIST_PATH)
# One sensor's readings or predictions, newest first (GET /api/v1/sensors/{sensor_id}/readings): what
# dashboards and integrations poll per sensor. The sensor code varies, so these are resolved per request.
SENSOR_WINDOW_PREFIX = "/api/v1/sensors/"
SENSOR_WINDOW_SUFFIXES = ("/readings", "/predictions")


def is_fast_path(path: str) -> bool:
    return path in FAST_PATHS or (path.startswith(SENSOR_WINDOW_PREFIX) and path.endswith(SENSOR_WINDOW_SUFFIXES))


class IngestFastPathMiddleware:
    """Second in ``MIDDLEWARE``: the ``FAST_PATHS`` go straight to their views (see the module docstring).

    Measured with ``bench/bench_ingest_cpu.py``: the full stack costs the
    ingestion request ~110 µs of CPU more than this path (see
    docs/benchmarks.md, "2b").
    """

    def __init__(self, get_response):
        self.get_response = get_response
        # The middlewares whose effects the ingestion response must keep; their
        # get_response is never called, only their request/response hooks.
        self._security = SecurityMiddleware(get_response)
        self._xframe = XFrameOptionsMiddleware(get_response)
        self._matches = {}

    def _resolve(self, path: str):
        """The URLconf's match for a fast path, or None: the request takes the full stack."""
        if path in FAST_PATHS:  # fixed paths: resolved once
            match = self._matches.get(path)
            if match is None:
                match = self._matches[path] = resolve(path)
            return match
        try:  # a sensor's page: not cached, one entry per sensor code would grow without bound
            return resolve(path)
        except Resolver404:
            return None  # e.g. a code with a slash: the full stack answers its 404

    def __call__(self, request):
        path = request.path_info
        if not is_fast_path(path) or (path != INGEST_PATH and extract_key(request) is None):
            # The read endpoints also accept an analyst's session (with CSRF): those take the full stack.
            return self.get_response(request)
        match = self._resolve(path)
        if match is None:
            return self.get_response(request)
        redirect = self._security.process_request(request)  # HTTPS redirect (production)
        if redirect is not None:
            return self._security.process_response(request, redirect)
        rejected = nul_rejection(request)  # as RejectNulMiddleware (the alert list takes query filters)
        if rejected is not None:
            return self._security.process_response(request, rejected)
        request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware checks it: DisallowedHost -> 400
        request.resolver_match = match
        response = match.func(request, *match.args, **match.kwargs)
        if hasattr(response, "render"):
            response = response.render()
        if not response.streaming and not response.has_header("Content-Length"):  # as CommonMiddleware
            response.headers["Content-Length"] = str(len(response.content))
        response = self._xframe.process_response(request, response)
        return self._security.process_response(request, response)


def release_drf_cycles(response) -> None:
    """Break the reference cycles a DRF view leaves behind, once its response is rendered.

    Why: DRF links the view, its ``Request`` and the ``Response`` in cycles
    (``view.response`` <-> ``response.renderer_context["view"]``,
    ``request.parser_context["request"]``, a viewset's ``view.get`` bound to
    the view), so nothing of a request is freed
    when it ends; the cyclic garbage collector frees it later. A request that
    builds many objects (a 500-row readings page, a 1,000-reading batch)
    runs the young-generation collections while its own objects are still
    alive, so they are promoted and wait for a full collection, which comes
    rarely (it waits for the old generation to grow by 25 %). Measured on
    readings pages: worker RSS grew by ~24 KB per request (110 -> 180 MB in
    15 s of benchmark 6), and stayed there. With the cycles broken, reference
    counting frees the response, its data and the parsed body at once.
    Nothing reads these attributes after rendering.
    """
    context = getattr(response, "renderer_context", None)
    if not context or not getattr(response, "is_rendered", False):
        return
    response.renderer_context = None
    view = context.get("view")
    if view is not None:
        drf_request = getattr(view, "request", None)
        if getattr(drf_request, "parser_context", None) is not None:
            drf_request.parser_context = None
        # The view also holds bound methods of itself (a viewset's ``self.get =
        # self.list``), the request and the response; it is finished with all of them.
        view.__dict__.clear()


class ReleaseCyclesMiddleware:
    """First in ``MIDDLEWARE``: every rendered DRF response has its cycles broken (``release_drf_cycles``)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        release_drf_cycles(response)
        return response


class RejectNulMiddleware:
    """400 for a NUL byte anywhere in the path or query string.

    PostgreSQL cannot store or compare text containing NUL, so such a value
    reaching a lookup (``/api/v1/sensors/<id>``, a filter) would surface as a
    database error — a 500. No legitimate URL contains one.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return nul_rejection(request) or self.get_response(request)


def nul_rejection(request):
    """The 400 for a URL with a NUL byte in its path or query string, or None (see RejectNulMiddleware)."""
    if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
        from django.http import JsonResponse

        return JsonResponse({"detail": "NUL characters are not allowed in URLs."}, status=400)
    return None
