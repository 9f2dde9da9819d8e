"""A plain Django reading endpoint: the yardstick ``bench_ingest_cpu.py`` measures beside the real one.

Why: CPU per request in microseconds depends on the machine as much as on
the code. The same commit measured 100-123 µs for benchmark 2b on one
session's machine and 174-380 µs on others (docs/benchmarks.md), and issue
#3 states its 150 µs target next to its own yardstick, "plain Django: about
65-80 µs of CPU" for one reading per request on the machine it was written
on. Measuring that yardstick in the same process, in rounds interleaved with
the real endpoint's, says how fast the machine is at the moment of the
measurement, so a figure can be read against the target's own reference.

The yardstick is deliberately minimal (the cheapest reading of "plain
Django", so the ratio it gives is the strictest): Django's WSGI handler with
no middleware, one URL pattern, a function view that decodes the JSON body
with the standard library and answers 202 with a ``JsonResponse``. It
checks nothing and publishes nothing.

Used as ``ROOT_URLCONF`` (with ``MIDDLEWARE=[]``) by bench_ingest_cpu.py only.
"""
from __future__ import annotations

import json

from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def reading(request):
    json.loads(request.body)
    return JsonResponse({"accepted": 1}, status=202)


urlpatterns = [path("api/v1/sensor-data", reading)]
