"""``GET /healthz``: whether this app server can serve, for load balancers and monitors.

No login, and nothing in the answer but the names of the checks and whether each passed:
the reasons (which may name paths or hosts) go to the log only.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from osversions.catalog import CatalogError, read_catalog_file

logger = logging.getLogger(__name__)


def database_answers() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return bool(cursor.fetchone() == (1,))
    except DatabaseError as error:
        logger.warning("health check: the database does not answer: %s", error)
        return False


def catalog_readable() -> bool:
    try:
        read_catalog_file()
    except CatalogError as error:
        logger.warning("health check: %s", error)
        return False
    return True


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """200 ``{"status": "ok", ...}``, or 503 naming the checks that failed."""
    checks = {"database": database_answers(), "osversions": catalog_readable()}
    failing = [name for name, passed in checks.items() if not passed]
    body: dict[str, object] = {
        "status": "failing" if failing else "ok",
        "checks": {name: "ok" if passed else "failing" for name, passed in checks.items()},
    }
    if failing:
        body["failing"] = failing
    return JsonResponse(body, status=503 if failing else 200)
