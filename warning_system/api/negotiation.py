"""Content negotiation: DRF's, with its most common case decided without parsing media types."""
from rest_framework.negotiation import DefaultContentNegotiation


class FastContentNegotiation(DefaultContentNegotiation):
    """Devices, integrators and dashboards send no Accept header, ``*/*`` or the first renderer's type.

    DRF parses the Accept header into media-type objects and matches them
    against every renderer on each request: ~8 % of a 500-row readings
    page's CPU and ~10 µs of a single-reading ingest (bench/bench_api_cpu.py
    --profile). For those three headers, with no ``?format=`` and no format
    suffix, DRF's answer is always the first renderer with its own media
    type, so that is returned directly; anything else goes to DRF.
    ``tests/test_negotiation.py`` checks both agree.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        if renderers and not format_suffix:
            first = renderers[0]
            accept = request.META.get("HTTP_ACCEPT", "*/*")
            if (accept == "*/*" or accept == first.media_type) and self.settings.URL_FORMAT_OVERRIDE not in request.query_params:
                return first, first.media_type
        return super().select_renderer(request, renderers, format_suffix)
