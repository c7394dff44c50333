from django.conf import settings
from django.core.management.base import BaseCommand

from kdgrade.lti import config


class Command(BaseCommand):
    help = (
        "Print a Dynamic Registration URL to paste into Moodle or Canvas. Its key is good for one "
        "registration within KDGRADE_LTI_REGISTRATION_KEY_MINUTES minutes; /lti/register/ without a valid "
        "key registers nothing."
    )

    def handle(self, *args: object, **options: object) -> None:
        self.stdout.write(config.registration_url(settings.PUBLIC_URL, created_by="manage.py lti_registration_url"))
