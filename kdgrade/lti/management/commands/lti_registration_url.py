from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from kdgrade.lti import config


class Command(BaseCommand):
    help = (
        "Print a Dynamic Registration URL to paste into Moodle or Canvas. Its key is good for one "
        "registration within KDGRADE_LTI_REGISTRATION_KEY_MINUTES minutes; /lti/register/ without a valid "
        "key registers nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--public-url", default="",
                            help="kdgrade's address as the LMS reaches it (default: KDGRADE_PUBLIC_URL, now "
                                 f"{settings.PUBLIC_URL})")

    def handle(self, *args: object, **options: object) -> None:
        base = str(options["public_url"] or settings.PUBLIC_URL).rstrip("/")
        self.stdout.write(config.registration_url(base, created_by="manage.py lti_registration_url"))
        self.stderr.write(f"(for kdgrade at {base}: the URL the LMS must reach; set KDGRADE_PUBLIC_URL or "
                          "--public-url if that is not it)")
