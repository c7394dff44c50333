from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kdgrade.lti import privacy
from kdgrade.lti.models import LtiUser


class Command(BaseCommand):
    help = "Print, as JSON, everything kdgrade holds about one student (a subject access request)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("platform_id", type=int)
        parser.add_argument("lms_user_id", help="the student's LTI user id (sub) on that platform")

    def handle(self, *args: object, **opts: object) -> None:
        user = LtiUser.objects.filter(platform_id=opts["platform_id"], sub=opts["lms_user_id"]).select_related(
            "platform").first()
        if user is None:
            raise CommandError("kdgrade holds nothing about this student (no such LMS user on that platform)")
        self.stdout.write(json.dumps(privacy.export_student(user), indent=2, ensure_ascii=False))
