"""Pieces of the OpenAPI description (drf-spectacular) that the API views share.

The views carry their own ``extend_schema``; this module holds the shapes they have in
common: Traffic Ops' alerts and the ``version`` path parameter.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

from portal.trafficops.alerts import NOT_FOUND_TEXT, too_large_text, unsupported_media_type_text

API_VERSIONS = ("3.0", "4.0", "4.1", "5.0")

VERSION_PARAMETER = OpenApiParameter(
    "version",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    enum=list(API_VERSIONS),
    description="The Traffic Ops API version; every route answers under each.",
)

ALERTS_SERIALIZER = inline_serializer(
    "Alerts",
    {
        "alerts": serializers.ListField(
            child=inline_serializer(
                "Alert",
                {
                    "text": serializers.CharField(),
                    "level": serializers.ChoiceField(choices=["error", "success", "warning", "info"]),
                },
            )
        )
    },
)


def alerts(description: str, *texts: str, level: str = "error") -> OpenApiResponse:
    """A response carrying Traffic Ops alerts, with one example per known text."""
    examples = [
        OpenApiExample(
            text.split(":")[0],
            value={"alerts": [{"text": text, "level": level}]},
            response_only=True,
        )
        for text in texts
    ]
    return OpenApiResponse(ALERTS_SERIALIZER, description=description, examples=examples)


UNAUTHORIZED = alerts("No session, or a bad or expired cookie.", "unauthorized, please log in.")
INTERNAL_ERROR = alerts(
    "Something failed on the server (osversions.json missing or malformed, ...); the log says why.",
    "Internal Server Error",
)


def forbidden(*missing: str) -> OpenApiResponse:
    return alerts(
        "Logged in, but lacks a permission (only the missing ones are named, in this order).",
        "missing required Permissions: " + ", ".join(missing),
    )


def without_trailing_slash(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Postprocessing hook: name the paths as Traffic Ops does (``isos``, not ``isos/``).

    The routes take both; drf-spectacular writes the optional slash as a slash.
    """
    result["paths"] = {path.rstrip("/"): item for path, item in result["paths"].items()}
    return result


def every_operation_may_be_not_found(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Postprocessing hook: list the 404 alert under every operation.

    Every route answers it for an API version or a format it does not know
    (``/api/9.9/isos``, ``?format=xml``), with ``portal.views``' JSON alert.
    """
    not_found = alerts_response("An API version, format or path the portal does not know.", NOT_FOUND_TEXT)
    for item in result["paths"].values():
        for operation in item.values():
            operation["responses"].setdefault("404", not_found)
    return result


def alerts_response(description: str, text: str) -> dict[str, Any]:
    """A response holding one example alert, as postprocessing hooks write it."""
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/Alerts"},
                "example": {"alerts": [{"text": text, "level": "error"}]},
            }
        },
    }


def every_body_may_be_refused(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Postprocessing hook: list 413 and 415 under every operation that takes a body.

    A body over the limit is refused before it is read, and one of a type the operation
    does not read (multipart, text/plain, ...) too (docs/api.md, "Request bodies"). Every
    POST may carry one, so every POST lists both.
    """
    too_large = alerts_response(
        "The body is over the size limit (REQUEST_BODY_MAX_KB), refused before it is read.",
        too_large_text(settings.DATA_UPLOAD_MAX_MEMORY_SIZE),
    )
    unsupported = alerts_response(
        "The body is of a type this operation does not read (JSON; the browsable API's "
        "form, url-encoded; never multipart).",
        unsupported_media_type_text("multipart/form-data"),
    )
    for item in result["paths"].values():
        for method, operation in item.items():
            if method.lower() in {"post", "put", "patch"}:
                operation["responses"].setdefault("413", too_large)
                operation["responses"].setdefault("415", unsupported)
    return result


def schema_common() -> dict[str, Any]:
    """Arguments every API view's ``extend_schema`` shares."""
    return {"parameters": [VERSION_PARAMETER]}


class SessionCookieScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """The session cookie that POST user/login sets (named like Traffic Ops' by default)."""

    target_class = "portal.trafficops.authentication.TrafficOpsSessionAuthentication"
    name = "sessionCookie"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}
