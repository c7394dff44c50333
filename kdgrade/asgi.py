"""ASGI entry point."""

import os

from kdgrade.env import ConfigError, exit_on_config_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kdgrade.settings")
try:
    from django.core.asgi import get_asgi_application

    application = get_asgi_application()
except ConfigError as exc:
    exit_on_config_error(exc)
