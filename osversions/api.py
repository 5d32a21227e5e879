"""``GET osversions``: the ISO sources this user may generate from."""

from __future__ import annotations

import logging

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from isos.models import PERMISSION_LABELS, READ_ISO
from osversions.catalog import CatalogError, usable_catalog
from portal.alerts import INTERNAL_ERROR_TEXT, alert_response
from portal.openapi import INTERNAL_ERROR, UNAUTHORIZED, forbidden, schema_common
from portal.permissions import requires_permissions

logger = logging.getLogger(__name__)


class OsVersionsView(APIView):
    """``{"response": {"<display name>": "<directory>", ...}}``."""

    permission_classes = [requires_permissions({READ_ISO: PERMISSION_LABELS[READ_ISO]})]

    @extend_schema(
        summary="The ISO sources this user may generate from",
        responses={
            200: inline_serializer(
                "OsVersions",
                {
                    "response": serializers.DictField(
                        child=serializers.CharField(),
                        help_text='Display name to directory, e.g. {"CentOS 7.2": "centos72"}.',
                    )
                },
            ),
            401: UNAUTHORIZED,
            403: forbidden("ISO:READ"),
            500: INTERNAL_ERROR,
        },
        **schema_common(),
    )
    def get(self, request: Request, version: str) -> Response:
        try:
            catalog = usable_catalog(request.user)
        except CatalogError as error:
            logger.error("GET osversions: %s", error)
            return alert_response(status.HTTP_500_INTERNAL_SERVER_ERROR, INTERNAL_ERROR_TEXT)
        return Response({"response": catalog})
