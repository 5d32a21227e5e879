"""``user/login`` and ``user/logout``: the session that Traffic Ops scripts hold.

A script POSTs ``{"u": ..., "p": ...}``, keeps the session cookie it gets back and sends
it with every later call, exactly as with Traffic Ops.
"""

from __future__ import annotations

import logging

from django.contrib.auth import authenticate, login, logout
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.trafficops.alerts import alert_response
from portal.trafficops.authentication import check_script_request
from portal.trafficops.json_body import MAX_JSON_DEPTH, check_media_type, json_object
from portal.trafficops.openapi import UNAUTHORIZED, alerts, schema_common

logger = logging.getLogger(__name__)


@method_decorator(sensitive_post_parameters("p"), name="dispatch")
class LoginView(APIView):
    """POST user/login: check the credentials and start a session."""

    authentication_classes: list[type] = []  # logging in needs no session yet
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Log in: start a session",
        request=inline_serializer(
            "LoginRequest",
            {"u": serializers.CharField(), "p": serializers.CharField(style={"input_type": "password"})},
        ),
        responses={
            200: alerts(
                "Logged in; the session cookie comes with it.", "Successfully logged in.", level="success"
            ),
            400: alerts(
                "The body is not a JSON object, or u or p is missing.",
                "username and password are required",
                "decoding: expected a JSON object",
                f"decoding: the JSON nests deeper than {MAX_JSON_DEPTH} levels",
            ),
            401: alerts("Wrong credentials.", "Invalid username or password."),
            429: alerts(
                "Too many failed logins for this user from this address (django-axes); see Retry-After.",
                "too many failed login attempts; try again later",
            ),
        },
        auth=[],
        **schema_common(),
    )
    @method_decorator(sensitive_variables("body", "password"))
    def post(self, request: Request, version: str) -> Response:
        check_script_request(request._request)
        body = json_object(request)
        username, password = body.get("u"), body.get("p")
        if not (isinstance(username, str) and username and isinstance(password, str) and password):
            return alert_response(status.HTTP_400_BAD_REQUEST, "username and password are required")
        user = authenticate(request._request, username=username, password=password)
        if user is None:
            logger.info("login refused for user %r", username)
            return alert_response(status.HTTP_401_UNAUTHORIZED, "Invalid username or password.")
        login(request._request, user)
        logger.info("login of user %r", username)
        return alert_response(status.HTTP_200_OK, "Successfully logged in.", level="success")


class LogoutView(APIView):
    """POST user/logout: end the session."""

    permission_classes = [IsAuthenticated]
    # Sent with no body, hence no JSON content type (portal.trafficops.authentication).
    csrf_token_exempt = True

    @extend_schema(
        summary="Log out: end the session",
        request=None,
        responses={
            200: alerts("The session is over.", "You are logged out.", level="success"),
            401: UNAUTHORIZED,
        },
        **schema_common(),
    )
    def post(self, request: Request, version: str) -> Response:
        check_media_type(request._request)  # a body is never read, but only of a type the API reads
        logout(request._request)
        return alert_response(status.HTTP_200_OK, "You are logged out.", level="success")
