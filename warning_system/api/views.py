"""A DRF base view for hot JSON endpoints: per-request machinery built once.

DRF instantiates every parser, renderer and authenticator class and a
content negotiator on each request, parses the ``Accept`` header, computes
``Allow`` with a ``hasattr`` per HTTP method, and runs versioning and
throttling hooks that this API does not configure. On an endpoint whose own
work is a few hundred microseconds that is a large share: POST
/api/v1/predictions spent ~15 % of its CPU there (py-spy;
bench/bench_api_cpu.py predict-miss). The ingestion view
(``sensors.api.ingest.SensorDataView``) and POST /api/v1/predictions use it.

Semantics kept: authentication, permissions (scopes), the configured
exception handler, 415 for a body that is not JSON. Changed on purpose: the
response is JSON whatever ``Accept`` says (these endpoints have one
representation), rather than a 406.
"""
from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.settings import api_settings
from rest_framework.views import APIView


class JSONOnlyNegotiation(BaseContentNegotiation):
    """The view speaks JSON only: pick the parser by content type, and always the first renderer."""

    def select_parser(self, request, parsers):
        content_type = request.content_type.split(";", 1)[0].strip().lower()
        for parser in parsers:
            if content_type == parser.media_type:
                return parser
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        renderer = renderers[0]
        return renderer, renderer.media_type


class LeanJSONAPIView(APIView):
    """``APIView`` whose parsers, renderers, authenticators and negotiator are built once per class.

    They are stateless, so sharing them across requests and threads is safe.
    Subclasses declare ``*_classes`` as usual (defaults: the REST_FRAMEWORK
    settings); the instances are made when the subclass is defined.
    """

    content_negotiation_class = JSONOnlyNegotiation
    throttle_classes = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if api_settings.DEFAULT_THROTTLE_CLASSES or api_settings.DEFAULT_VERSIONING_CLASS is not None:
            raise ImproperlyConfigured("LeanJSONAPIView skips throttling and versioning; revisit it now that the API configures them.")
        cls._parsers = tuple(parser() for parser in cls.parser_classes)
        cls._renderers = tuple(renderer() for renderer in cls.renderer_classes)
        cls._authenticators = tuple(auth() for auth in cls.authentication_classes)
        cls._negotiator = cls.content_negotiation_class()
        methods = [m.upper() for m in cls.http_method_names if hasattr(cls, m)]
        cls._headers = {"Allow": ", ".join(methods)}

    @property
    def default_response_headers(self):
        return self._headers

    def get_parsers(self):
        return self._parsers

    def get_renderers(self):
        return self._renderers

    def get_authenticators(self):
        return self._authenticators

    def get_content_negotiator(self):
        return self._negotiator

    def initial(self, request, *args, **kwargs):
        """``APIView.initial`` minus format suffixes, versioning and throttles, which these routes do not use."""
        self.format_kwarg = None
        request.accepted_renderer, request.accepted_media_type = self.perform_content_negotiation(request)
        request.version = request.versioning_scheme = None
        self.perform_authentication(request)
        self.check_permissions(request)
