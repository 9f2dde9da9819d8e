"""warning_system.api.negotiation.FastContentNegotiation decides exactly as DRF's DefaultContentNegotiation."""
import itertools

import pytest
from django.http import Http404
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from alerts.api.renderers import CSVRenderer
from warning_system.api.negotiation import FastContentNegotiation
from warning_system.api.renderers import ORJSONRenderer

ACCEPTS = [None, "*/*", "application/json", "text/csv", "text/html", "application/json; indent=4", "*/*;q=0.8",
           "text/*", "", "application/xml", "text/csv, application/json;q=0.5", "application/*"]
FORMATS = [None, "json", "csv", "xml"]
RENDERER_LISTS = [[ORJSONRenderer(), CSVRenderer()], [CSVRenderer(), ORJSONRenderer()], [ORJSONRenderer()]]


def _decide(negotiation, accept, fmt, renderers, suffix):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get("/api/v1/alerts", {} if fmt is None else {"format": fmt}, **headers))
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers, suffix)
    except (NotAcceptable, Http404) as exc:
        return type(exc).__name__
    return type(renderer).__name__, media_type


@pytest.mark.parametrize("accept,fmt,renderers,suffix", [
    *itertools.product(ACCEPTS, FORMATS, RENDERER_LISTS, [None]),
    *itertools.product(["*/*", "application/json"], [None], RENDERER_LISTS, ["json", "csv"]),
])
def test_fast_negotiation_picks_what_drf_picks(accept, fmt, renderers, suffix):
    assert _decide(FastContentNegotiation(), accept, fmt, renderers, suffix) == _decide(DefaultContentNegotiation(), accept, fmt, renderers, suffix)


def test_the_api_uses_the_fast_negotiation():
    from rest_framework.settings import api_settings

    assert api_settings.DEFAULT_CONTENT_NEGOTIATION_CLASS is FastContentNegotiation
