"""Settings of the portal, read strictly from the environment (portal.environment).

Every value an operator may change comes from an environment variable, with a default
that is safe on a laptop; docs/operations.md lists every variable. Importing this module
writes nothing: the data directory is made by ``manage.py demo`` or by the operator.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONCE

from isos.engine.boot_plan import VOLUME_ID, VOLUME_ID_RULE
from isos.media_base import MEDIA_BASE_URL, MEDIA_BASE_URL_RULE
from isos.passwords import HASH_SCHEMES
from portal.environment import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_matching,
    env_path,
    env_str,
)
from portal.laptop_key import read_laptop_key

BASE_DIR = Path(__file__).resolve().parent.parent
# A checkout (manage.py beside the packages) rather than an installed wheel.
CHECKOUT = (BASE_DIR / "manage.py").is_file()


def default_data_dir() -> Path:
    """The checkout's folder, or the user's data folder for an installed wheel."""
    if CHECKOUT:
        return BASE_DIR
    return env_path("XDG_DATA_HOME", Path.home() / ".local" / "share") / "iso-portal"


# The SQLite database, the sample kickstart files and a laptop's secret key live here.
DATA_DIR = env_path("PORTAL_DATA_DIR", default_data_dir())

# Required in production (the same on every server). Without it, the key ``manage.py
# demo`` keeps in DATA_DIR; with neither, ``manage.py check`` says what to do (portal.checks).
SECRET_KEY = env_str("SECRET_KEY", "") or read_laptop_key(DATA_DIR)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI's JavaScript and CSS, served by the portal itself (no CDN).
    "drf_spectacular_sidecar",
    "guardian",
    "axes",
    "csp",
    "portal",
    "osversions",
    "isos",
]
# A checkout (not the wheel) also has the development tools: manage.py isobench.
if CHECKOUT:
    INSTALLED_APPS.append("tests.bench")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (CSS, JS, the admin's and the browsable API's) straight from the app
    # server: no CDN, no separate web server needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Content-Security-Policy on every answer (settings: CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    # Request bodies: size (413), framing (chunked read up to the limit) and, for pages,
    # type (415), before anything reads them; after the others, so its answers get every
    # header above.
    "portal.request_bodies.RequestBodyMiddleware",
    # A NUL in the admin's query strings is a 400 page, never a database error.
    "portal.query_strings.AdminQueryStringMiddleware",
    # Last, as django-axes requires: turns a lockout found during authenticate() into the
    # 429 answer (portal.trafficops.lockout).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The host's pages: templates/ in a checkout; in the wheel they ship as portal/templates,
        # which APP_DIRS finds.
        "DIRS": [BASE_DIR / "templates"] if CHECKOUT else [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
    )
}
# Per worker, the most connections to PostgreSQL open at once (0: no pool, a connection per
# request). A gevent worker runs every request in a greenlet of its own: a thousand
# downloads starting together take turns at the pool instead of each opening one and
# passing PostgreSQL's max_connections. A pooled connection is reused, so no max age.
DATABASE_POOL_SIZE = env_int("DATABASE_POOL_SIZE", 10, minimum=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DATABASE_POOL_SIZE:
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_SIZE,
        "timeout": 30,
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several threads write audit records at once (runserver, tests' live server): wait for
    # the lock instead of failing, and take it up front so no transaction deadlocks.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    # A file, not memory: an in-memory test database is one connection shared by every
    # thread of the test server, which SQLite cannot use concurrently.
    # TEST_DATABASE_NAME lets two test runs share a checkout.
    DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME", str(DATA_DIR / ".test-db.sqlite3"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username+address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
# Django's PBKDF2 first, hashed off a gevent worker's event loop (portal.hashers); the rest
# are Django's own, for hashes made elsewhere.
PASSWORD_HASHERS = [
    "portal.hashers.PBKDF2OffTheLoopHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
# django-guardian's anonymous user is not used: anonymous requests get 401.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = False

# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords in a row for
# one username from one address, that pair is refused (429) for LOGIN_COOLOFF_MINUTES.
# Other users and other addresses are not affected; a successful login clears the count.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_float("LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "portal.trafficops.lockout.lockout_response"
# Masked wherever axes logs or stores request data: the web form's and the API's password
# fields (and an ISO request's root password, should one ever reach it).
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "password", "p", "rootPass"]
# The client address is REMOTE_ADDR. Behind a reverse proxy every client would share the
# proxy's address: set AXES_IPWARE_PROXY_COUNT and AXES_IPWARE_META_PRECEDENCE_ORDER
# (e.g. HTTP_X_FORWARDED_FOR) to match the proxy, or lockouts hit everyone at once.
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_path("STATIC_ROOT", DATA_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # collectstatic adds gzip and brotli copies; names stay plain, so pages render
    # whether collectstatic ran or not (tests, a laptop, the demo).
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve the apps' own static folders (found once, at start): the files are few and
# small, and a stale or missing collectstatic then never serves old CSS.
WHITENOISE_USE_FINDERS = True
# Without collectstatic there is no STATIC_ROOT, which the finders make up for.
warnings.filterwarnings("ignore", message=r"No directory at: .*staticfiles", category=UserWarning)

# A page's form without a valid token gets the portal's 403 page, not Django's bare one.
CSRF_FAILURE_VIEW = "portal.views.csrf_failure"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Traffic Ops clients hold a cookie named "mojolicious"; keeping the name lets their
# scripts and cookie jars work unchanged.
SESSION_COOKIE_NAME = env_str("SESSION_COOKIE_NAME", "mojolicious")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 60 * 60 * 8, minimum=60)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Only the portal's own scripts, styles and images run on its pages: no inline script or
# style, no other origin, no framing. The pages, the admin, the browsable API and Swagger UI
# (its start-up script split off, see portal/urls.py) work within it; a browser test checks
# that no page trips it. The two <style> blocks of the browsable API and Swagger UI carry a
# per-response nonce (templates/rest_framework/, templates/drf_spectacular/); Swagger UI's
# icons are data: URLs.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", NONCE],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Behind an HTTPS terminating proxy: redirect plain HTTP, send HSTS, trust X-Forwarded-Proto.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# A load balancer's health check often speaks plain HTTP to the app server itself.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Request bodies (docs/api.md, "Request bodies"): larger ones are refused with 413 before
# they are read (portal.request_bodies), chunked ones while they are read. Forms and JSON
# here are a few KB; only url-encoded forms (pages) and JSON (the API) are read.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("REQUEST_BODY_MAX_KB", 64, minimum=1) * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["portal.trafficops.authentication.TrafficOpsSessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        # Its HTML forms post url-encoded: the API never parses multipart.
        "portal.trafficops.browsable.UrlEncodedFormsBrowsableAPIRenderer",
    ],
    # JSON (bounded, UTF-8, nesting checked before decoding) and the browsable API's form;
    # any other type is a 415 (docs/api.md, "Request bodies").
    "DEFAULT_PARSER_CLASSES": [
        "portal.trafficops.json_body.TrafficOpsJSONParser",
        "rest_framework.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "portal.trafficops.alerts.alert_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# The OpenAPI description of the Traffic Ops routes: GET /api/schema/, browsable at /api/docs/.
SPECTACULAR_SETTINGS = {
    "TITLE": "ISO portal API",
    "VERSION": "5.0",
    "DESCRIPTION": (
        "The Traffic Ops endpoints that generate per-host installer ISOs. Every route answers "
        "under /api/3.0/, /api/4.0/, /api/4.1/ and /api/5.0/ (the `version` path parameter), "
        "with or without a trailing slash. Errors are Traffic Ops alerts: "
        '`{"alerts": [{"text": "...", "level": "error"}]}`. Log in with POST user/login and '
        "send the session cookie back with every later call."
    ),
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.trafficops.openapi.without_trailing_slash",
        "portal.trafficops.openapi.every_operation_may_be_not_found",
        "portal.trafficops.openapi.every_body_may_be_refused",
    ],
}

# --- ISO generation -------------------------------------------------------------------

# Where osversions.json and the ISO source directories live (Traffic Ops: /var/www/files).
KICKSTART_FILES_LOCATION = env_path("KICKSTART_FILES_LOCATION", DATA_DIR / "kickstart-files")
# Nameservers written into network.cfg; empty means the host's /etc/resolv.conf.
ISO_NAMESERVERS = env_list("ISO_NAMESERVERS", [])
RESOLV_CONF = env_path("RESOLV_CONF", Path("/etc/resolv.conf"))
# "sha512" ($6$) by default; "md5" ($1$, what Traffic Ops writes) for very old installers.
ROOT_PASSWORD_HASH = env_choice("ROOT_PASSWORD_HASH", "sha512", HASH_SCHEMES)
# Volume identifier written into every ISO (mkisofs' default when none is given).
ISO_VOLUME_ID = env_matching("ISO_VOLUME_ID", "CDROM", VOLUME_ID, VOLUME_ID_RULE)
# Per worker: laid-out sources kept (by count and memory), and the size of each chunk
# sent (a stream holds about two).
ISO_LAYOUT_CACHE_ENTRIES = env_int("ISO_LAYOUT_CACHE_ENTRIES", 8)
ISO_LAYOUT_CACHE_MB = env_int("ISO_LAYOUT_CACHE_MB", 64)
ISO_STREAM_CHUNK_KB = env_int("ISO_STREAM_CHUNK_KB", 512, minimum=4)
# Seconds a source's generate hook may run before it is killed with its process group.
ISO_HOOK_TIMEOUT = env_float("ISO_HOOK_TIMEOUT", 600, minimum=0.1)
# Seconds a download may wait on a client that reads nothing before it is cut (isos.generation).
ISO_SEND_TIMEOUT = env_int("ISO_SEND_TIMEOUT", 300, minimum=1)
# Downloads streaming at once: per user on all servers (0: no limit; 429 beyond), and per
# worker (503 beyond; never more than the worker's file descriptors hold). isos.stream_limits.
ISO_MAX_STREAMS_PER_USER = env_int("ISO_MAX_STREAMS_PER_USER", 8, minimum=0)
ISO_MAX_STREAMS = env_int("ISO_MAX_STREAMS", 1000, minimum=1)
# ISO URLs for virtual media (isos.media): the scheme and host a BMC reaches the portal by
# (empty: the request's own), and how long a URL lives, in seconds.
ISO_MEDIA_BASE_URL = env_matching("ISO_MEDIA_BASE_URL", "", MEDIA_BASE_URL, MEDIA_BASE_URL_RULE)
ISO_MEDIA_TTL = env_int("ISO_MEDIA_TTL", 24 * 3600, minimum=60)
# Redfish (isos.redfish): the CA bundle that verifies BMCs' certificates (empty: the system's),
# and how long one BMC request may take (inserting may wait for the BMC to fetch the image).
REDFISH_CA_BUNDLE = env_str("REDFISH_CA_BUNDLE", "")
REDFISH_TIMEOUT = env_float("REDFISH_TIMEOUT", 120, minimum=1)

LOG_LEVELS = {"debug", "info", "warning", "error", "critical"}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Client text never splits a line, in a traceback's messages either (portal.trafficops.log_text).
    "formatters": {
        "plain": {
            "class": "portal.trafficops.log_text.OneLineTracebackFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_choice("LOG_LEVEL", "INFO", LOG_LEVELS).upper()},
    "loggers": {
        # Django's request logger prints request bodies for nothing, but tracebacks of
        # 500s can hold local variables only with DEBUG; keep it at its default level.
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # One key=value line per ISO attempt (docs/operations.md), whatever LOG_LEVEL says.
        "isos.requests": {"level": "INFO"},
        # ISO URLs made and revoked, and (isos.media.fetches) one line per request to one,
        # naming its record, never its token.
        "isos.media": {"level": "INFO"},
        # django-axes: no start-up banner on every command, no four lines per login; its
        # warnings still show. The portal logs logins and lockouts itself (portal.login_log).
        "axes": {"level": "WARNING"},
    },
}
