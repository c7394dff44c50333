"""Django settings, read from the environment (12-factor).

Every setting has an embedded default that runs the product on a fresh machine with
nothing else started (SQLite, a file-system Celery broker).  Production mode
(`KDGRADE_MODE=production`) refuses to start without the secrets it needs.
See README.md for the full list of variables.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path

from kdgrade.env import (
    ConfigError,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    parse_database_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

MODE = env_str("KDGRADE_MODE", "development")
if MODE not in {"development", "production"}:
    raise ConfigError("KDGRADE_MODE", f"expected 'development' or 'production', got {MODE!r}")
PRODUCTION = MODE == "production"
# Production never runs with DEBUG (tracebacks with settings and personal data): DJANGO_DEBUG is
# ignored there.
DEBUG = False if PRODUCTION else env_bool("DJANGO_DEBUG", True)

# Where the product keeps its files: SQLite database, broker queues, model versions, uploads.
DATA_DIR = Path(env_str("KDGRADE_DATA_DIR", str(BASE_DIR / "var"))).resolve()
MODELS_DIR = Path(env_str("KDGRADE_MODELS_DIR", str(DATA_DIR / "models"))).resolve()
MEDIA_ROOT = Path(env_str("KDGRADE_UPLOADS_DIR", str(DATA_DIR / "uploads"))).resolve()
MEDIA_URL = "/media/"


def _secret_key() -> str:
    key = env_str("SECRET_KEY") or env_str("DJANGO_SECRET_KEY")
    if key:
        if PRODUCTION and len(key) < 50:
            raise ConfigError("SECRET_KEY", "must be at least 50 characters in production")
        return key
    if PRODUCTION:
        raise ConfigError("SECRET_KEY", "is required in production mode (KDGRADE_MODE=production)")
    # Development: a random key kept in the data folder, so sessions survive restarts
    # and no key is ever committed.
    path = DATA_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(64)
    path.write_text(key)
    path.chmod(0o600)
    return key


SECRET_KEY = _secret_key()


def _key_encryption_key() -> str:
    """The Fernet key that encrypts the tool's private signing keys in the database."""
    from cryptography.fernet import Fernet

    key = env_str("KDGRADE_KEY_ENCRYPTION_KEY")
    if not key and PRODUCTION:
        raise ConfigError("KDGRADE_KEY_ENCRYPTION_KEY", "is required in production mode (a Fernet key: "
                          "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')")
    if not key:
        # Development: generated once and kept in the data folder, like the secret key.
        path = DATA_DIR / "key_encryption_key"
        if path.exists():
            key = path.read_text().strip()
        else:
            DATA_DIR.mkdir(parents=True, exist_ok=True)
            key = Fernet.generate_key().decode()
            path.write_text(key)
            path.chmod(0o600)
    try:
        Fernet(key.encode())
    except ValueError:
        raise ConfigError("KDGRADE_KEY_ENCRYPTION_KEY",
                          "is not a Fernet key (32 url-safe base64-encoded bytes)") from None
    return key


ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ConfigError("ALLOWED_HOSTS", "is required in production mode (comma-separated host names)")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
KDGRADE_KEY_ENCRYPTION_KEY = _key_encryption_key()

# The port the development server listens on (scripts/run.sh) and the development LMS's port.
PORT = env_int("KDGRADE_PORT", 8000)
DEV_LMS_PORT = env_int("KDGRADE_DEV_LMS_PORT", 8765)
# The public base URL of the tool (what LMS admins paste), e.g. https://kdgrade.district.org; unset, the
# development server's own address on KDGRADE_PORT.
PUBLIC_URL = env_str("KDGRADE_PUBLIC_URL", f"http://127.0.0.1:{PORT}").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc assets, served from this server (no CDN)
    "scoring",
    "training",
    "kdgrade.lti",
    "grading",
]
if not PRODUCTION and env_bool("KDGRADE_DEVTOOLS", True):
    # The development LMS and its `lti_dev_lms` command; never installed in production.
    INSTALLED_APPS.append("devtools")

MIDDLEWARE = [
    "kdgrade.middleware.ProbeMiddleware",  # health probes: before host validation and the HTTPS redirect
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # No XFrameOptionsMiddleware: kdgrade is framed by the LMS.  Framing is governed by
    # CSP frame-ancestors instead (and forbidden on the admin).
    "kdgrade.middleware.FrameAncestorsMiddleware",
]

ROOT_URLCONF = "kdgrade.urls"
WSGI_APPLICATION = "kdgrade.wsgi.application"
ASGI_APPLICATION = "kdgrade.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'kdgrade.sqlite3'}")
DATABASES = {"default": parse_database_url(DATABASE_URL, BASE_DIR)}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory, for the test database too: Celery worker processes in the
    # tests must see the same data.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-kdgrade.sqlite3")}
    # IMMEDIATE: a transaction takes the write lock at BEGIN, so concurrent writers wait for
    # `timeout` instead of failing with "database is locked" when a read turns into a write.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A cache shared by every process (LTI state and nonces, access tokens): Redis when
# CACHE_URL is set, otherwise a table in the database (created by migrate).
CACHE_URL = env_str("CACHE_URL")
if CACHE_URL and CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}
elif CACHE_URL:
    raise ConfigError("CACHE_URL", f"expected redis://HOST:PORT/DB, got {CACHE_URL!r}")
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "kdgrade_cache"}
    }
# Request counters of the API throttle: shared (Redis) when there is one; per process otherwise (a
# database write per API call would cost the scoring hot path more than the limit is worth).
CACHES["throttle"] = (
    {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL, "KEY_PREFIX": "throttle"}
    if CACHE_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "kdgrade-throttle"}
)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("KDGRADE_STATIC_ROOT", str(DATA_DIR / "static"))).resolve()
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every request without it
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Cookies and framing: an LTI tool lives in a cross-site iframe -------------------
# Browsers only send cookies into a cross-site iframe when they are SameSite=None;
# Secure, which needs HTTPS.  Development over plain http on localhost uses Lax.
_cross_site_cookies = env_bool("KDGRADE_CROSS_SITE_COOKIES", PRODUCTION)
SESSION_COOKIE_SAMESITE = "None" if _cross_site_cookies else "Lax"
CSRF_COOKIE_SAMESITE = SESSION_COOKIE_SAMESITE
SESSION_COOKIE_SECURE = _cross_site_cookies
CSRF_COOKIE_SECURE = _cross_site_cookies
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600)
# CSP frame-ancestors for the pages the LMS frames; the admin is never framed.  Unset: in production,
# 'self' and the origins of the registered, active platforms (kdgrade.lti.framing); in development, any.
FRAME_ANCESTORS = env_str("KDGRADE_FRAME_ANCESTORS", None if PRODUCTION else "*")

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = None  # the LMS opens kdgrade in popups and frames
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SILENCED_SYSTEM_CHECKS = [
        # X-Frame-Options is deliberately absent: CSP frame-ancestors replaces it.
        "security.W002",
    ]

# --- Celery ---------------------------------------------------------------------------
# Default: the file-system transport, which needs no server.  Set CELERY_BROKER_URL to
# redis://... or amqp://... in production.
BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
        # Bounded socket operations: a broker that stops answering (a paused container, a half-open
        # connection) must not wedge a worker's shutdown while it hands back unacknowledged messages.
        "socket_timeout": env_float("CELERY_BROKER_SOCKET_TIMEOUT", 10.0),
        "socket_connect_timeout": env_float("CELERY_BROKER_CONNECT_TIMEOUT", 5.0),
    }
)
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", None)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# Training runs for minutes to hours on its own queue so it never delays a grade.
CELERY_TASK_ROUTES = {"distillation.*": {"queue": "training"}, "*.train_*": {"queue": "training"}}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE: dict = {
    "worker-heartbeat": {"task": "scoring.heartbeat", "schedule": 60.0},
    "worker-heartbeat-training": {"task": "scoring.heartbeat", "schedule": 60.0, "kwargs": {"queue": "training"},
                                  "options": {"queue": "training"}},
}
# /healthz reports a queue's workers down when none has recorded a heartbeat for this long (3 beats).
KDGRADE_HEALTH_HEARTBEAT_MAX_AGE = env_float("KDGRADE_HEALTH_HEARTBEAT_MAX_AGE", 180.0)
# A queue's heartbeats older than this are deleted when the next one is recorded (two a minute would
# otherwise grow the table by a million rows a year); the last ones stay while no worker runs.
KDGRADE_HEARTBEAT_KEEP_HOURS = env_float("KDGRADE_HEARTBEAT_KEEP_HOURS", 24.0)
# A worker stopped with SIGTERM finishes its running task, then exits; after this many seconds it
# exits anyway (the task's message stays unacknowledged and is redelivered: tasks are idempotent).
KDGRADE_WORKER_SHUTDOWN_GRACE = env_float("KDGRADE_WORKER_SHUTDOWN_GRACE", 25.0)

# --- Training (the `training` app) -----------------------------------------------------
# A running training task beats every KDGRADE_TRAINING_HEARTBEAT_SECONDS; the beat sweep marks a run
# whose heartbeat is older than KDGRADE_TRAINING_STALE_SECONDS failed (its worker was killed or lost).
KDGRADE_TRAINING_HEARTBEAT_SECONDS = env_float("KDGRADE_TRAINING_HEARTBEAT_SECONDS", 10.0)
KDGRADE_TRAINING_STALE_SECONDS = env_float("KDGRADE_TRAINING_STALE_SECONDS", 90.0)
KDGRADE_TRAINING_SWEEP_SECONDS = env_float("KDGRADE_TRAINING_SWEEP_SECONDS", 30.0)
KDGRADE_MAX_UPLOAD_BYTES = env_int("KDGRADE_MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
CELERY_BEAT_SCHEDULE["training-sweep-stale-runs"] = {
    "task": "training.sweep_stale_runs",
    "schedule": KDGRADE_TRAINING_SWEEP_SECONDS,
}

# --- LTI 1.3 (kdgrade.lti) -------------------------------------------------------------
# Calls to the LMS (token, AGS, NRPS): timeout, retry backoff of the grade outbox, and the lease a
# worker holds on a gradebook cell while it posts (longer than a post can take).
KDGRADE_LTI_HTTP_TIMEOUT = env_float("KDGRADE_LTI_HTTP_TIMEOUT", 10.0)
KDGRADE_LTI_RETRY_BASE = env_float("KDGRADE_LTI_RETRY_BASE", 30.0)
KDGRADE_LTI_RETRY_MAX = env_float("KDGRADE_LTI_RETRY_MAX", 3600.0)
KDGRADE_LTI_LEASE_SECONDS = env_float("KDGRADE_LTI_LEASE_SECONDS", 6 * KDGRADE_LTI_HTTP_TIMEOUT + 30)
KDGRADE_LTI_SWEEP_SECONDS = env_float("KDGRADE_LTI_SWEEP_SECONDS", 60.0)
# Teaching assistants, graders and guest instructors (Instructor sub-roles) open the instructor pages
# (review, override, release) when true; as learners when false.  A full Instructor role always does.
KDGRADE_LTI_TA_INSTRUCTOR = env_bool("KDGRADE_LTI_TA_INSTRUCTOR", True)
# How long a Dynamic Registration URL (with its single-use key) stays valid.
KDGRADE_LTI_REGISTRATION_KEY_MINUTES = env_int("KDGRADE_LTI_REGISTRATION_KEY_MINUTES", 60)
# A launch token (`ls`) lives this long at most; it is replaced by a new one every ..._ROTATE_SECONDS
# (the previous one keeps working ..._GRACE_SECONDS, for pages already open in another tab).
KDGRADE_LTI_LAUNCH_SECONDS = env_int("KDGRADE_LTI_LAUNCH_SECONDS", 2 * 3600)
KDGRADE_LTI_LAUNCH_ROTATE_SECONDS = env_int("KDGRADE_LTI_LAUNCH_ROTATE_SECONDS", 15 * 60)
KDGRADE_LTI_LAUNCH_GRACE_SECONDS = env_int("KDGRADE_LTI_LAUNCH_GRACE_SECONDS", 5 * 60)
# A learner's answers to one assignment in immediate mode (model scores shown at once): at most this
# many per hour, so the model cannot be probed answer after answer.
KDGRADE_LTI_MAX_SUBMISSIONS_PER_HOUR = env_int("KDGRADE_LTI_MAX_SUBMISSIONS_PER_HOUR", 10)
# A platform keyset is fetched again for an unknown key id at most once per this many seconds.
KDGRADE_LTI_KEYSET_REFETCH_SECONDS = env_float("KDGRADE_LTI_KEYSET_REFETCH_SECONDS", 60.0)
# Extra hosts a platform's token URL / token audience may be on, beyond its issuer's host:
# "issuer-host=token-host" pairs (Canvas cloud's are built in).
KDGRADE_LTI_TOKEN_HOSTS = env_list("KDGRADE_LTI_TOKEN_HOSTS", [])

# --- Outbound calls (kdgrade.outbound): every URL kdgrade fetches comes from a platform -----------
KDGRADE_OUTBOUND_HTTPS_ONLY = PRODUCTION
# Development and tests only (a local LMS on 127.0.0.1): allow loopback and private addresses.
KDGRADE_OUTBOUND_ALLOW_PRIVATE = env_bool("KDGRADE_OUTBOUND_ALLOW_PRIVATE", False)
if PRODUCTION and KDGRADE_OUTBOUND_ALLOW_PRIVATE:
    raise ConfigError("KDGRADE_OUTBOUND_ALLOW_PRIVATE", "is for development only; in production list the "
                      "networks of an on-premises LMS in KDGRADE_OUTBOUND_ALLOWED_NETWORKS")
# Networks (CIDR) kdgrade may call although they are private, e.g. an on-premises Moodle: 10.20.0.0/16
KDGRADE_OUTBOUND_ALLOWED_NETWORKS = env_list("KDGRADE_OUTBOUND_ALLOWED_NETWORKS", [])
for _net in KDGRADE_OUTBOUND_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_net, strict=False)
    except ValueError:
        raise ConfigError("KDGRADE_OUTBOUND_ALLOWED_NETWORKS", f"{_net!r} is not a network (CIDR)") from None
KDGRADE_OUTBOUND_MAX_BYTES = env_int("KDGRADE_OUTBOUND_MAX_BYTES", 2 * 1024 * 1024)
KDGRADE_OUTBOUND_DEADLINE = env_float("KDGRADE_OUTBOUND_DEADLINE", 20.0)

# --- Students' data: retention ----------------------------------------------------------------------
# Answers, scores, grade posts, course memberships and names older than this many days are deleted by
# a daily beat task (kdgrade.lti.privacy.purge_expired); 0 keeps them until erased by hand.
KDGRADE_RETENTION_DAYS = env_int("KDGRADE_RETENTION_DAYS", 365)
CELERY_BEAT_SCHEDULE["privacy-purge"] = {"task": "kdgrade.lti.purge_expired_data", "schedule": 24 * 3600.0}
CELERY_BEAT_SCHEDULE["lti-sweep-grade-outbox"] = {
    "task": "kdgrade.lti.sweep_outbox",
    "schedule": KDGRADE_LTI_SWEEP_SECONDS,
}

# --- REST API -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": ["scoring.api.throttling.UserThrottle", "scoring.api.throttling.AnonThrottle"],
    # Per API account and per anonymous address; "off" lifts a limit (e.g. for a benchmark).
    "DEFAULT_THROTTLE_RATES": {
        "user": None if (_r := env_str("KDGRADE_API_THROTTLE_USER", "6000/minute")) == "off" else _r,
        "anon": None if (_r := env_str("KDGRADE_API_THROTTLE_ANON", "60/minute")) == "off" else _r,
    },
}
# Failed admin logins: after this many for one address (or one user name) within the window, the
# login page refuses for the rest of the window.
KDGRADE_ADMIN_LOGIN_FAILURES = env_int("KDGRADE_ADMIN_LOGIN_FAILURES", 5)
KDGRADE_ADMIN_LOGIN_WINDOW_SECONDS = env_int("KDGRADE_ADMIN_LOGIN_WINDOW_SECONDS", 15 * 60)
SPECTACULAR_SETTINGS = {
    "TITLE": "kdgrade API",
    "DESCRIPTION": "Score science short answers with distilled ONNX models.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The API description is for the accounts that use the API, not for anyone.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Scoring limits -------------------------------------------------------------------
KDGRADE_MAX_ANSWER_CHARS = env_int("KDGRADE_MAX_ANSWER_CHARS", 5000)
KDGRADE_MAX_BATCH = env_int("KDGRADE_MAX_BATCH", 1000)
KDGRADE_DEFAULT_CONFIDENCE_THRESHOLD = env_float("KDGRADE_DEFAULT_CONFIDENCE_THRESHOLD", 0.6)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
