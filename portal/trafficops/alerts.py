"""Traffic Ops' JSON shapes for answers that are not data: alerts.

Traffic Ops answers every error (and some successes) with
``{"alerts": [{"text": ..., "level": ...}]}``. This module builds those answers and turns
every exception a DRF view raises into one, so no client mistake ever reaches a
traceback page.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.http import Http404, JsonResponse, UnreadablePostError
from rest_framework import exceptions, status
from rest_framework.response import Response

from portal.trafficops.log_text import log_traceback

logger = logging.getLogger(__name__)

UNAUTHORIZED_TEXT = "unauthorized, please log in."
INTERNAL_ERROR_TEXT = "Internal Server Error"
NOT_FOUND_TEXT = "not found"


def alerts_body(*texts: str, level: str = "error") -> dict[str, list[dict[str, str]]]:
    """The ``{"alerts": [...]}`` body with one alert per text."""
    return {"alerts": [{"text": text, "level": level} for text in texts]}


def alert_response(status_code: int, text: str, level: str = "error") -> Response:
    """A DRF response carrying one alert; rendered as JSON for API clients."""
    return Response(alerts_body(text, level=level), status=status_code)


def plain_alert_response(status_code: int, text: str, level: str = "error") -> JsonResponse:
    """The same alert as a plain Django response, for code outside DRF's renderers."""
    return JsonResponse(alerts_body(text, level=level), status=status_code)


class AlertError(exceptions.APIException):
    """An error whose text goes to the client as it is, without a prefix."""

    def __init__(self, text: str, status_code: int = status.HTTP_400_BAD_REQUEST) -> None:
        super().__init__(text)
        self.status_code = status_code


def decoding_error(reason: str) -> exceptions.ParseError:
    """A 400 whose alert reads ``decoding: <reason>``."""
    return exceptions.ParseError(reason)


def too_large_text(limit: int | None) -> str:
    """The 413 alert's text (docs/api.md)."""
    text = "the request body is too large"
    return f"{text}: at most {limit} bytes" if limit else text


def body_too_large(limit: int | None) -> AlertError:
    """A 413 alert for a body over ``limit`` bytes."""
    return AlertError(too_large_text(limit), status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)


def unsupported_media_type_text(media_type: str) -> str:
    """The 415 alert's text (docs/api.md)."""
    return f'unsupported media type "{media_type}": send Content-Type: application/json'


def unreadable_body_reason(exc: Exception) -> str | None:
    """What was wrong with a client's body that Django refused while reading it, or None.

    Django raises these from ``request.POST``/``request.body``; they are client mistakes,
    never a 500 or a traceback in the log. Fixed texts: nothing of the request is echoed.
    """
    if isinstance(exc, UnreadablePostError):
        return "the request body could not be read"
    if isinstance(exc, TooManyFieldsSent):
        return f"the request body has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields"
    if isinstance(exc, BadRequest) or (
        isinstance(exc, SuspiciousOperation) and not isinstance(exc, RequestDataTooBig)
    ):
        return "the request body was refused as malformed"
    return None


def _first_text(detail: Any) -> str:
    """Flatten a DRF error detail (str, list or dict) into one line."""
    if isinstance(detail, dict):
        return ", ".join(_first_text(value) for value in detail.values())
    if isinstance(detail, list):
        return ", ".join(_first_text(value) for value in detail)
    return str(detail)


def alert_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's exception handler: every error becomes a Traffic Ops alert.

    Authentication failures are 401 whatever the authentication class says (DRF turns
    them into 403 when the class names no WWW-Authenticate scheme; Traffic Ops says 401).
    """
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        return alert_response(status.HTTP_401_UNAUTHORIZED, UNAUTHORIZED_TEXT)
    if isinstance(exc, exceptions.ParseError):
        detail = str(exc.detail)
        if detail.startswith("JSON parse error - "):
            detail = detail.removeprefix("JSON parse error - ")
        return alert_response(status.HTTP_400_BAD_REQUEST, f"decoding: {detail}")
    if isinstance(exc, exceptions.ValidationError):
        return alert_response(exc.status_code, f"validating: {_first_text(exc.detail)}")
    if isinstance(exc, Http404):
        return alert_response(status.HTTP_404_NOT_FOUND, NOT_FOUND_TEXT)
    if isinstance(exc, exceptions.UnsupportedMediaType):
        request = context.get("request")
        content_type = str(getattr(request, "content_type", "") or "")
        media_type = content_type.split(";", 1)[0].strip().lower()
        return alert_response(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, unsupported_media_type_text(media_type))
    if isinstance(exc, RequestDataTooBig):
        return alert_response(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, too_large_text(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        )
    if (reason := unreadable_body_reason(exc)) is not None:
        return alert_response(status.HTTP_400_BAD_REQUEST, f"decoding: {reason}")
    if isinstance(exc, exceptions.APIException):
        return alert_response(exc.status_code, _first_text(exc.detail))
    # Anything else is our fault: say so in the log, not in the response.
    # The exception's message may quote the client's text: log_traceback keeps it on one line.
    logger.error("unhandled error in %s\n%s", context.get("view").__class__.__name__, log_traceback(exc))
    return alert_response(status.HTTP_500_INTERNAL_SERVER_ERROR, INTERNAL_ERROR_TEXT)
