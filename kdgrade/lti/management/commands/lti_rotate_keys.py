from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from kdgrade.lti.keys import key_sets, retire_keys, rotate_keys


class Command(BaseCommand):
    help = ("Make a new tool signing key in every key set (the shared one on /lti/jwks/ and each platform's "
            "own).  Older keys stay published so launches and tokens in flight keep verifying; "
            "--retire-after-hours unpublishes keys rotated out longer ago than that.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--retire-after-hours", type=float, default=None)
        parser.add_argument("--retire-only", action="store_true", help="retire old keys, make no new one")

    def handle(self, *args: object, **opts: object) -> None:
        hours = opts["retire_after_hours"]
        for platform in key_sets():
            which = f"platform {platform.pk} ({platform.name})" if platform else "shared key set"
            if opts["retire_only"]:
                n = retire_keys(older_than_hours=float(hours if hours is not None else 24), platform=platform)
                self.stdout.write(f"{which}: retired {n} key(s)")
            else:
                key = rotate_keys(retire_older_than_hours=hours, platform=platform)
                self.stdout.write(f"{which}: new signing key {key.kid}")
