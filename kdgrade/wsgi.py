"""WSGI entry point (gunicorn kdgrade.wsgi)."""

import os

from kdgrade.env import ConfigError, exit_on_config_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kdgrade.settings")
try:
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
except ConfigError as exc:
    exit_on_config_error(exc)
