"""Django settings, read from the environment (12-factor).

Every setting has an embedded default that runs the product on a fresh machine with
nothing else started (SQLite, a file-system Celery broker).  Production mode
(`KDGRADE_MODE=production`) refuses to start without the secrets it needs.
See README.md for the full list of variables.
"""

from __future__ import annotations

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
DEBUG = env_bool("DJANGO_DEBUG", not PRODUCTION)

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

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ConfigError("ALLOWED_HOSTS", "is required in production mode (comma-separated host names)")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# The public base URL of the tool (what LMS admins paste), e.g. https://kdgrade.district.org
PUBLIC_URL = env_str("KDGRADE_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")

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
    "scoring",
    "kdgrade.lti",
    "grading",
]
if not PRODUCTION and env_bool("KDGRADE_DEVTOOLS", True):
    # The development LMS and its `lti_dev_lms` command; never installed in production.
    INSTALLED_APPS.append("devtools")

MIDDLEWARE = [
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
# CSP frame-ancestors for the pages the LMS frames; the admin is never framed.
FRAME_ANCESTORS = env_str("KDGRADE_FRAME_ANCESTORS", "'self' https:" if PRODUCTION else "*")

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
    else {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
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
}

# --- LTI 1.3 (kdgrade.lti) -------------------------------------------------------------
# Calls to the LMS (token, AGS, NRPS): timeout, retry backoff of the grade outbox, and the lease a
# worker holds on a gradebook cell while it posts (longer than a post can take).
KDGRADE_LTI_HTTP_TIMEOUT = env_float("KDGRADE_LTI_HTTP_TIMEOUT", 10.0)
KDGRADE_LTI_RETRY_BASE = env_float("KDGRADE_LTI_RETRY_BASE", 30.0)
KDGRADE_LTI_RETRY_MAX = env_float("KDGRADE_LTI_RETRY_MAX", 3600.0)
KDGRADE_LTI_LEASE_SECONDS = env_float("KDGRADE_LTI_LEASE_SECONDS", 6 * KDGRADE_LTI_HTTP_TIMEOUT + 30)
KDGRADE_LTI_SWEEP_SECONDS = env_float("KDGRADE_LTI_SWEEP_SECONDS", 60.0)
# How long a Dynamic Registration URL (with its signed key) stays valid.
KDGRADE_LTI_REGISTRATION_KEY_DAYS = env_int("KDGRADE_LTI_REGISTRATION_KEY_DAYS", 7)
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
}
SPECTACULAR_SETTINGS = {
    "TITLE": "kdgrade API",
    "DESCRIPTION": "Score science short answers with distilled ONNX models.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
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
