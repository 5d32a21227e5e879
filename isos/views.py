"""The pages for people: the Generate ISO form and the history of builds.

Thin views: the rules are the serializer's, the road to the download is
``isos.generation`` (shared with the API), the form's fields are ``isos.web_form`` and
the visibility of records is ``isos.history``. A successful form answers with the ISO
itself, as the API does, so the browser saves it and shows its own progress.
"""

from __future__ import annotations

import logging

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods

from isos.audit import record_attempt
from isos.generation import GenerationFailed, catalog_for_attempt, checked_request, iso_download_response
from isos.history import PAGE_SIZE, HistoryFilters, generate_again_query, sees_every_build, visible_builds
from isos.models import PERMISSION_LABELS, IsoBuild
from isos.web_form import GenerateForm
from osversions.catalog import CatalogError, usable_catalog
from osversions.models import OsVersion
from portal.trafficops.permissions import missing_permission_labels, missing_permissions_message

logger = logging.getLogger(__name__)

GENERATE_TEMPLATE = "isos/generate.html"
FAILURE_TEXT = (
    "The ISO could not be made because of a problem on our side. It was logged; "
    "please try again later or tell an administrator."
)


def render_form(
    request: HttpRequest, form: GenerateForm, status: int = 200, failure: str = ""
) -> HttpResponse:
    """The Generate ISO page; ``failure`` is a message for a fault on our side."""
    return render(request, GENERATE_TEMPLATE, {"form": form, "failure": failure}, status=status)


@sensitive_post_parameters("rootPass", "confirmRootPass")
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def generate_iso_page(request: HttpRequest) -> HttpResponseBase:
    """The form (prefilled from the query string), or on POST the ISO or the form with errors."""
    missing = missing_permission_labels(request.user, PERMISSION_LABELS)
    if missing:
        message = missing_permissions_message(missing)
        if request.method == "POST":
            record_attempt(request, IsoBuild.Outcome.REFUSED, message)
        raise PermissionDenied(message)
    if request.method == "POST":
        return submit_generate_form(request)
    try:
        catalog = usable_catalog(request.user)
    except CatalogError as error:
        logger.error("Generate ISO page: %s", error)
        return render_form(request, GenerateForm.from_query(request.GET, {}), 500, FAILURE_TEXT)
    return render_form(request, GenerateForm.from_query(request.GET, catalog))


@sensitive_variables("form", "serializer")
def submit_generate_form(request: HttpRequest) -> HttpResponseBase:
    """A submitted form: the ISO, or the form again with its messages.

    The ISO is the API's own streaming response; messages go beside their fields (400);
    a fault on our side is a polite page (500).
    """
    try:
        catalog = catalog_for_attempt(request)
    except GenerationFailed:
        return render_form(request, GenerateForm.from_post(request.POST, {}), 500, FAILURE_TEXT)
    form = GenerateForm.from_post(request.POST, catalog)
    refusals = form.form_refusals()
    serializer = checked_request(request, form.request_body(), catalog, refusals)
    if serializer.is_valid() and not refusals:
        try:
            return iso_download_response(request, serializer.iso_request(), serializer.safe_settings())
        except GenerationFailed:
            return render_form(request, form, 500, FAILURE_TEXT)
    form.add_errors(serializer.errors)
    form.add_errors(refusals)
    return render_form(request, form, 400)


@login_required
@require_GET
def history_page(request: HttpRequest) -> HttpResponse:
    """The attempts this user may see, newest first, filtered and paginated."""
    filters = HistoryFilters.from_query(request.GET)
    visible = visible_builds(request.user)
    page = Paginator(filters.apply(visible), PAGE_SIZE).get_page(request.GET.get("page"))
    generate_url = reverse("isos:generate")
    # Display names of the OS versions the records name (rows outlive osversions.json entries).
    version_names = dict(OsVersion.objects.values_list("directory", "name"))
    rows = [
        (
            build,
            version_names.get(build.osversion_dir, ""),
            f"{generate_url}?{generate_again_query(build)}" if build.request_settings else "",
        )
        for build in page.object_list
    ]
    return render(
        request,
        "isos/history.html",
        {
            "page": page,
            "rows": rows,
            "filters": filters,
            "filter_query": filters.query_string(),
            "sees_everyone": sees_every_build(request.user),
            "osversion_choices": [
                (directory, version_names.get(directory, directory))
                for directory in sorted(
                    set(visible.exclude(osversion_dir="").values_list("osversion_dir", flat=True))
                )
            ],
            "outcome_choices": IsoBuild.Outcome.choices,
        },
    )
