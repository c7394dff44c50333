#!/usr/bin/env python
"""Django's command-line utility for kdgrade."""

import os
import sys

# Commands that need the database up: they fail at start with one line when it is not.
NEEDS_DATABASE = {"runserver", "migrate", "load_demo", "ensure_admin", "score_csv", "createsuperuser"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kdgrade.settings")
    from kdgrade.env import ConfigError, exit_on_config_error

    try:
        import django

        django.setup()
    except ConfigError as exc:
        exit_on_config_error(exc)
    from django.core.management import execute_from_command_line

    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command in NEEDS_DATABASE and os.environ.get("RUN_MAIN") != "true":
        from kdgrade.startup import check_database, prepare_data_dirs

        prepare_data_dirs()
        check_database()
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
