"""``GET /healthz``: whether this app server can serve, for load balancers and monitors.

No login, and nothing in the answer but the names of the checks and how each went: the
reasons (which may name paths or hosts, or count skipped entries) go to the log only.
A check is ``ok``, ``degraded`` (it serves, with less: osversions.json has entries that
were skipped) or ``failing``; any failing check answers 503, else 200 (docs/operations.md).
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from osversions.catalog import CatalogError, load_catalog_file

logger = logging.getLogger(__name__)

OK, DEGRADED, FAILING = "ok", "degraded", "failing"


def database_state() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return OK if cursor.fetchone() == (1,) else FAILING
    except DatabaseError as error:
        logger.warning("health check: the database does not answer: %s", error)
        return FAILING


def catalog_state() -> str:
    try:
        catalog = load_catalog_file()
    except CatalogError as error:
        logger.warning("health check: %s", error)
        return FAILING
    if catalog.skipped:
        logger.warning(
            "health check: osversions.json: %d entries skipped, %d usable",
            len(catalog.skipped),
            len(catalog.entries),
        )
        return DEGRADED
    return OK


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """200 ``{"status": "ok" | "degraded", ...}``, or 503 naming the checks that failed."""
    checks = {"database": database_state(), "osversions": catalog_state()}
    failing = [name for name, state in checks.items() if state == FAILING]
    degraded = [name for name, state in checks.items() if state == DEGRADED]
    body: dict[str, object] = {
        "status": FAILING if failing else DEGRADED if degraded else OK,
        "checks": checks,
    }
    if failing:
        body["failing"] = failing
    if degraded:
        body["degraded"] = degraded
    return JsonResponse(body, status=503 if failing else 200)
