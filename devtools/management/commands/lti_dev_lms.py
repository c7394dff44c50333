from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = ("Development only: run a local LMS (the lti1p3platform library) on 127.0.0.1 that launches this "
            "kdgrade as a teacher or a student and shows the grades that come back.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=None,
                            help="default: KDGRADE_DEV_LMS_PORT (8765)")

    def handle(self, *args: object, **opts: object) -> None:
        if settings.PRODUCTION:
            raise CommandError("the development LMS is not for production")
        try:
            from devtools.devplatform import ROLE_INSTRUCTOR, ROLE_LEARNER, DevPlatform, register_in_kdgrade
        except ImportError as exc:
            raise CommandError("install the test requirements first: pip install -r requirements/dev.txt") from exc
        port = int(opts["port"] or settings.DEV_LMS_PORT)
        try:
            platform = DevPlatform(settings.PUBLIC_URL, port=port, client_id="dev-lms")
        except OSError as exc:
            raise CommandError(f"cannot listen on port {port} for the development LMS ({exc.strerror}): "
                               f"set KDGRADE_DEV_LMS_PORT to a free port") from exc
        register_in_kdgrade(platform, name="Development LMS (local)")
        platform.set_members("course-1", [
            {"user_id": "dev-teacher", "name": "Dev Teacher", "roles": [ROLE_INSTRUCTOR]},
            {"user_id": "dev-student-1", "name": "Dev Student 1", "roles": [ROLE_LEARNER]},
            {"user_id": "dev-student-2", "name": "Dev Student 2", "roles": [ROLE_LEARNER]},
            {"user_id": "dev-student-3", "name": "Dev Student 3", "roles": [ROLE_LEARNER]},
        ])
        platform.start()
        self.stdout.write(f"Development LMS on {platform.base}/ (kdgrade at {settings.PUBLIC_URL}); Ctrl-C stops it.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            platform.stop()
