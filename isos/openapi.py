"""The OpenAPI description (drf-spectacular) of ``POST isos``.

The request's schema is drawn from :class:`IsoRequestSerializer`'s own fields (their
names, labels and lengths) and docs/api.md's rules for the required ones; its fields take
loose JSON types (dhcp a word or a boolean, the MTU a number or a string holding one)
that drf-spectacular cannot guess from a plain ``Field``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

from isos.serializers import FIELD_ATTRIBUTES, MTU_RANGE, REQUIRED_FIELDS, IsoRequestSerializer, RuleField
from portal.trafficops.openapi import INTERNAL_ERROR, UNAUTHORIZED, alerts, forbidden, schema_common

LOOSE_TYPES: dict[str, dict[str, Any]] = {
    "dhcp": {
        "oneOf": [
            {"type": "string", "enum": ["yes", "no", "true", "false", "1", "0"]},
            {"type": "boolean"},
        ],
        "description": "yes/no, true/false or 1/0 in any case, or a JSON boolean.",
    },
    "interfaceMtu": {
        "oneOf": [
            {"type": "integer", "minimum": MTU_RANGE[0], "maximum": MTU_RANGE[1]},
            {"type": "string", "pattern": r"^\s*\d+\s*$"},
        ],
        "description": f"An integer in {MTU_RANGE[0]}..{MTU_RANGE[1]}, or a string holding one.",
    },
}


class IsoRequestSerializerExtension(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    target_class = "isos.serializers.IsoRequestSerializer"

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        fields = IsoRequestSerializer().fields
        properties: dict[str, Any] = {}
        for name in FIELD_ATTRIBUTES:
            field = fields[name]
            schema: dict[str, Any] = LOOSE_TYPES.get(name, {}).copy() or {"type": "string"}
            if "oneOf" not in schema and isinstance(field, RuleField):
                schema["maxLength"] = field.max_length
            if name == "rootPass":
                schema.update(format="password", writeOnly=True)
            schema.setdefault("description", str(field.label))
            properties[name] = schema
        properties["stream"] = {
            "type": "string",
            "enum": ["yes", "no"],
            "description": "yes (or absent): the ISO, streamed; no: a URL for virtual media (JSON).",
        }
        return {
            "type": "object",
            "description": (
                "Keys match case-insensitively; unknown keys are ignored. ipAddress, ipNetmask "
                "and ipGateway are required when dhcp is no; mgmtInterface and mgmtIpGateway "
                "when mgmtIpAddress is given."
            ),
            "properties": properties,
            "required": list(REQUIRED_FIELDS),
        }


ISO_DOWNLOAD = "application/download"

ISO_SCHEMA: dict[str, Any] = {
    "summary": "Build and stream a per-host installer ISO",
    "request": {"application/json": IsoRequestSerializer},
    "responses": {
        (200, ISO_DOWNLOAD): OpenApiResponse(
            OpenApiTypes.BINARY,
            description='The ISO, named "<hostName>.<domainName>-<osversionDir>.iso" (every / as _).',
        ),
        (200, "application/json"): OpenApiResponse(
            inline_serializer(
                "IsoUrl",
                {
                    "alerts": serializers.ListField(child=serializers.DictField()),
                    "response": inline_serializer(
                        "IsoUrlResponse",
                        {
                            "isoName": serializers.CharField(),
                            "isoURL": serializers.URLField(help_text="GET or HEAD: no session; ranges"),
                            "size": serializers.IntegerField(),
                            "sha256": serializers.CharField(),
                            "expires": serializers.DateTimeField(help_text="RFC 3339, UTC."),
                        },
                    ),
                },
            ),
            description='With "stream": "no": a URL a BMC mounts as virtual media (docs/api.md).',
        ),
        (400, "application/json"): alerts(
            "The body is not a JSON object, a field rule is broken, or the osversionDir is not offered.",
            "validating: hostName is required, rootPass is required",
            "stream must be yes or no",
            'invalid OS version directory: "centos72"',
            "decoding: expected a JSON object",
        ),
        (401, "application/json"): UNAUTHORIZED,
        (403, "application/json"): forbidden("ISO:GENERATE", "ISO:READ"),
        (429, "application/json"): alerts(
            "This user streams ISO_MAX_STREAMS_PER_USER downloads already; Retry-After: when to try again.",
            "too many ISO downloads at once: at most 8 per user; try again when one of yours has finished",
        ),
        (500, "application/json"): INTERNAL_ERROR,
        (503, "application/json"): alerts(
            "This server streams as many downloads as it may; Retry-After: when to try again.",
            "the server is sending as many ISOs as it can (1000 at once); try again shortly",
        ),
    },
    "parameters": [
        *schema_common()["parameters"],
        OpenApiParameter(
            "Content-Disposition",
            OpenApiTypes.STR,
            OpenApiParameter.HEADER,
            response=[200],
            description='attachment; filename="<fqdn>-<osversionDir>.iso"',
        ),
        OpenApiParameter(
            "Content-Length",
            OpenApiTypes.INT,
            OpenApiParameter.HEADER,
            response=[200],
            description="The ISO's exact size, sent before its first byte.",
        ),
        OpenApiParameter(
            "Retry-After",
            OpenApiTypes.INT,
            OpenApiParameter.HEADER,
            response=[429, 503],
            description="Seconds to wait before trying again.",
        ),
    ],
}
