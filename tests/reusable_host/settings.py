"""A minimal Django project that installs the isos and osversions apps, as another portal
would (docs/design.md, "Using the apps in another portal"): none of the portal's settings,
pages or middleware, only what the apps need."""

import os
from pathlib import Path

SECRET_KEY = "reusable-host-" + "x" * 40
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
ROOT_URLCONF = "tests.reusable_host.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["REUSABLE_HOST_DB"]}}

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "rest_framework",
    "guardian",
    "osversions",
    "isos",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["portal.trafficops.authentication.TrafficOpsSessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "portal.trafficops.json_body.TrafficOpsJSONParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "portal.trafficops.alerts.alert_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

# The apps' own settings (isos.checks lists them).
KICKSTART_FILES_LOCATION = Path(os.environ["REUSABLE_HOST_KICKSTART"])
ISO_NAMESERVERS = ["192.0.2.53"]
RESOLV_CONF = Path("/etc/resolv.conf")
ROOT_PASSWORD_HASH = "sha512"
ISO_VOLUME_ID = "CDROM"
ISO_LAYOUT_CACHE_ENTRIES = 2
ISO_LAYOUT_CACHE_MB = 16
ISO_STREAM_CHUNK_KB = 64
ISO_HOOK_TIMEOUT = 60.0
ISO_SEND_TIMEOUT = 300
ISO_MAX_STREAMS_PER_USER = 8
ISO_MAX_STREAMS = 100
ISO_MEDIA_BASE_URL = ""
ISO_MEDIA_TTL = 3600
