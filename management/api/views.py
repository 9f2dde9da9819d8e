from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from management.health import run_checks


class HealthView(APIView):
    """Liveness and dependency health; no key needed."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(
        responses={
            200: inline_serializer("Health", {"status": serializers.CharField(), "checks": serializers.DictField(child=serializers.CharField()), "errors": serializers.DictField(child=serializers.CharField(), required=False)}),
            503: inline_serializer("HealthFailing", {"status": serializers.CharField(), "checks": serializers.DictField(child=serializers.CharField()), "errors": serializers.DictField(child=serializers.CharField())}),
        },
    )
    def get(self, request):
        status_code, body = run_checks()
        return Response(body, status=status_code)
