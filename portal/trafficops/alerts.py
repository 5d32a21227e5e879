"""Traffic Ops' JSON shapes for answers that are not data: alerts.

Traffic Ops answers every error (and some successes) with
``{"alerts": [{"text": ..., "level": ...}]}``. This module builds those answers and turns
every exception a DRF view raises into one, so no client mistake ever reaches a
traceback page.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import Http404, JsonResponse
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
    if isinstance(exc, exceptions.APIException):
        return alert_response(exc.status_code, _first_text(exc.detail))
    # Anything else is our fault: say so in the log, not in the response.
    # The exception's message may quote the client's text: log_traceback keeps it on one line.
    logger.error("unhandled error in %s\n%s", context.get("view").__class__.__name__, log_traceback(exc))
    return alert_response(status.HTTP_500_INTERNAL_SERVER_ERROR, INTERNAL_ERROR_TEXT)
