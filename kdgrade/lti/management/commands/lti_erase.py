from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kdgrade.lti import privacy
from kdgrade.lti.models import Context, LtiUser, Platform


class Command(BaseCommand):
    help = ("Erase a student (--student PLATFORM_ID:LMS_USER_ID), a course (--course CONTEXT_ID: kdgrade's id, as "
            "in the admin) or a platform (--platform PLATFORM_ID) with all their answers, scores, grade posts, "
            "memberships and names. The LMS keeps its own copy: the command says what stays there.")

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--student")
        which.add_argument("--course", type=int)
        which.add_argument("--platform", type=int)
        parser.add_argument("--yes", action="store_true", help="do it (without: say what would be erased)")

    def handle(self, *args: object, **opts: object) -> None:
        if opts["student"]:
            platform_id, _, sub = str(opts["student"]).partition(":")
            target = LtiUser.objects.filter(platform_id=int(platform_id) if platform_id.isdigit() else -1,
                                            sub=sub).first()
            erase = privacy.erase_student
        elif opts["course"] is not None:
            target = Context.objects.filter(pk=opts["course"]).first()
            erase = privacy.erase_course
        else:
            target = Platform.objects.filter(pk=opts["platform"]).first()
            erase = privacy.erase_platform
        if target is None:
            raise CommandError("nothing to erase: no such student, course or platform in kdgrade")
        if not opts["yes"]:
            self.stdout.write(f"Would erase {target!s} and everything of it from kdgrade; run again with --yes.")
            return
        self.stdout.write(erase(target).summary())
