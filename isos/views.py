"""The pages for people: the Generate ISO form and the history of builds.

Thin views: the rules are the serializer's, the road to the download is
``isos.generation`` (shared with the API and the command, walked with the submission's
:class:`~isos.attempt.Attempt`), the form is ``isos.forms`` and the visibility of records
is ``isos.history`` (docs/design.md). A successful form answers with the ISO itself, as
the API does, so the browser saves it and shows its own progress.
"""

from __future__ import annotations

import base64
import json
import logging
import re

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods

from isos.attempt import Attempt, Road
from isos.forms import GenerateForm
from isos.generation import (
    GenerationFailed,
    audit_permissions,
    audit_validation,
    catalog_for_attempt,
    failures_audited,
    iso_download_response,
    iso_filename,
    missing_permissions,
)
from isos.history import (
    PAGE_SIZE,
    HistoryFilters,
    copyable_settings,
    generate_again_query,
    latest_build_of,
    previous_hosts,
    query_text,
    sees_every_build,
    version_names,
    visible_builds,
)
from isos.media import MadeUrl, MediaRefused, base_url, live_media, live_media_of, make_url, revoke
from isos.models import IsoBuild
from isos.orphans import close_orphaned_streams
from isos.stream_limits import StreamRefused
from osversions.catalog import CatalogError, usable_catalog
from portal.trafficops.log_text import log_text

logger = logging.getLogger(__name__)

GENERATE_TEMPLATE = "isos/generate.html"
# The page's script posts a token with the form; the download's answer sets it back in a
# cookie with what the page then shows (docs/operations.md, "The pages").
DOWNLOAD_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
DOWNLOAD_COOKIE = "isoDownload"
DOWNLOAD_COOKIE_SECONDS = 300
FAILURE_TEXT = (
    "The ISO could not be made because of a problem on our side. It was logged; "
    "please try again later or tell an administrator."
)


def render_form(
    request: HttpRequest,
    form: GenerateForm,
    status: int = 200,
    failure: str = "",
    *,
    copy_from: str = "",
    media: MadeUrl | None = None,
) -> HttpResponse:
    """The Generate ISO page; ``failure`` is a message for a fault on our side, ``copy_from``
    an FQDN asked for in "Copy from a previous host" that has no record this user may see,
    ``media`` an ISO URL just made ("Get a URL for virtual media")."""
    context = {
        "form": form,
        "failure": failure,
        "previous_hosts": previous_hosts(request.user, ""),
        "copy_from": copy_from,
        "check_url": check_url(),
        "media": media,
    }
    response = render(request, GENERATE_TEMPLATE, context, status=status)
    if media is not None:
        response["Cache-Control"] = "no-store"  # the URL's token: never from a cache
    return response


def check_url() -> str:
    """Where the page's script checks a request (POST isos/validate), under the host's API
    namespace ``api``; "" when the host mounts the API otherwise (the page then checks on submit)."""
    try:
        return reverse("api:isos-validate", kwargs={"version": "5.0"})
    except NoReverseMatch:
        return ""


@sensitive_post_parameters("rootPass", "confirmRootPass")
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def generate_iso_page(request: HttpRequest) -> HttpResponseBase:
    """The form (prefilled from the query string), or on POST the ISO or the form with errors."""
    if request.method == "POST":
        return submit_generate_form(request)
    message = missing_permissions(request.user)
    if message is not None:
        raise PermissionDenied(message)
    copy_from = query_text(request.GET, "copyFrom")
    if copy_from:
        # "Copy from a previous host" without JavaScript: the link "Generate again" makes.
        build = latest_build_of(request.user, copy_from)
        if build is not None:
            return redirect(f"{reverse('isos:generate')}?{generate_again_query(build)}")
    try:
        catalog = usable_catalog(request.user)
    except CatalogError as error:
        logger.error("Generate ISO page: %s", log_text(error))
        return render_form(request, GenerateForm.from_query(request.GET, {}), 500, FAILURE_TEXT)
    return render_form(request, GenerateForm.from_query(request.GET, catalog), copy_from=copy_from)


@login_required
@require_GET
def previous_hosts_json(request: HttpRequest) -> JsonResponse:
    """For the page's script: the newest copyable record of each FQDN matching ``q``, with its
    settings (never a password), as "Copy from a previous host" offers them."""
    message = missing_permissions(request.user)
    if message is not None:
        return JsonResponse({"alerts": [{"text": message, "level": "error"}]}, status=403)
    names = version_names(request.user)
    hosts = [
        {
            "fqdn": build.fqdn,
            "osversion": names.get(build.osversion_dir, build.osversion_dir),
            "startedAt": build.started_at.isoformat(),
            "settings": copyable_settings(build),
        }
        for build in previous_hosts(request.user, query_text(request.GET, "q"))
    ]
    return JsonResponse({"hosts": hosts}, headers={"Cache-Control": "no-store"})


@sensitive_variables("form")
def submit_generate_form(request: HttpRequest) -> HttpResponseBase:
    """A submitted form, one attempt: the ISO, or the form again with its messages.

    The ISO is the API's own streaming response; messages go beside their fields (400);
    a fault on our side, foreseen or not, is a polite page (500).
    """
    attempt = Attempt.from_request(request, Road.PAGE)
    message = audit_permissions(attempt)
    if message is not None:
        raise PermissionDenied(message)
    # Shown with the apology if the OS versions cannot even be read.
    form = GenerateForm.unjudged(request.POST)
    try:
        with failures_audited(attempt):
            form = GenerateForm(request.POST, catalog=catalog_for_attempt(attempt))
            valid = form.is_valid()  # the serializer's rules, then the page's own
            audit_validation(attempt, form.serializer, form.page_refusals)
            if valid:
                iso_request = form.serializer.iso_request()
                if request.POST.get("action") == "url":
                    try:
                        made = make_url(attempt, iso_request, iso_filename(iso_request), base_url(request))
                    except MediaRefused as refusal:  # audited as refused already
                        text = str(refusal)
                        return render_form(request, form, 400, text[:1].upper() + text[1:] + ".")
                    return render_form(request, form, media=made)
                download = iso_download_response(attempt, iso_request)
                token = request.POST.get("downloadToken", "")
                if DOWNLOAD_TOKEN.fullmatch(token) and attempt.record is not None:
                    set_download_cookie(download, token, attempt.record, iso_filename(iso_request))
                return download
    except StreamRefused as refusal:
        sentence = refusal.message[:1].upper() + refusal.message[1:] + "."
        response = render_form(request, form, refusal.status, sentence)
        response["Retry-After"] = str(refusal.retry_after)
        return response
    except GenerationFailed:
        return render_form(request, form, 500, FAILURE_TEXT)
    return render_form(request, form, 400)


def set_download_cookie(response: HttpResponseBase, token: str, build: IsoBuild, filename: str) -> None:
    """The one-time cookie telling the page that its download started, and what it is."""
    payload = {
        "token": token,
        "name": filename,
        "size": build.iso_size,
        "build": build.pk,
        "fqdn": build.fqdn,
    }
    value = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    response.set_cookie(
        DOWNLOAD_COOKIE,
        value,
        max_age=DOWNLOAD_COOKIE_SECONDS,
        path=reverse("isos:generate"),
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=False,  # the page's script reads it, then deletes it
        samesite="Strict",
    )


@login_required
@require_GET
def history_page(request: HttpRequest) -> HttpResponse:
    """The attempts this user may see, newest first, filtered and paginated."""
    filters = HistoryFilters.from_query(request.GET)
    close_orphaned_streams()  # a dead worker's download reads "interrupted", not "streaming"
    visible = visible_builds(request.user)
    page = Paginator(filters.apply(visible), PAGE_SIZE).get_page(request.GET.get("page"))
    generate_url = reverse("isos:generate")
    # Display names of the OS versions the records name that this user may see (rows outlive
    # osversions.json entries); any other directory is shown as the record has it.
    names = version_names(request.user)
    rows = [
        (
            build,
            names.get(build.osversion_dir, ""),
            f"{generate_url}?{generate_again_query(build)}" if build.request_settings else "",
        )
        for build in page.object_list
    ]
    return render(
        request,
        "isos/history.html",
        {
            "live_urls": live_media_of(request.user)[:50],
            "page": page,
            "rows": rows,
            "filters": filters,
            "filter_query": filters.query_string(),
            "sees_everyone": sees_every_build(request.user),
            "osversion_choices": [
                (directory, names.get(directory, directory))
                for directory in sorted(
                    set(visible.exclude(osversion_dir="").values_list("osversion_dir", flat=True))
                )
            ],
            "outcome_choices": IsoBuild.Outcome.choices,
        },
    )


@login_required
@require_http_methods(["POST"])
def revoke_media_url(request: HttpRequest, media_id: int) -> HttpResponse:
    """History's "Revoke": the URL answers 404 from now on (its owner, or an admin)."""
    record = live_media(media_id, request.user)
    if record is not None and revoke(record, request.user.get_username()):
        logger.info("ISO URL %s revoked by %s", record.pk, log_text(request.user.get_username()))
        messages.success(request, f"The URL of {record.iso_name} is revoked.")
    else:
        messages.error(request, "No such live URL that you may revoke.")
    return redirect(f"{reverse('isos:history')}#live-urls")
