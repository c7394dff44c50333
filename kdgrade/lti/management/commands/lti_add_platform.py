from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from kdgrade.lti.config import RegistrationFailed, add_platform, preset_values
from kdgrade.lti.keys import jwks_url


class Command(BaseCommand):
    help = "Register an LTI 1.3 platform (Canvas, Moodle, ...) with kdgrade."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--issuer", required=True)
        parser.add_argument("--client-id", required=True)
        parser.add_argument("--deployment-id", action="append", default=[], help="repeat for several")
        parser.add_argument("--auth-url")
        parser.add_argument("--token-url")
        parser.add_argument("--keyset-url")
        parser.add_argument("--preset", choices=["canvas", "moodle", "other"], default="other",
                            help="fill the URLs Canvas or Moodle (at --issuer) use")
        parser.add_argument("--name", default="")
        parser.add_argument("--token-audience", default="")

    def handle(self, *args: object, **opts: object) -> None:
        urls = preset_values(str(opts["preset"]), str(opts["issuer"]))
        for key in ("auth_url", "token_url", "keyset_url"):
            value = opts.get(key) or urls.get(key)
            if not value:
                self.stderr.write(f"--{key.replace('_', '-')} is required (or use --preset canvas|moodle)")
                raise SystemExit(2)
            urls[key] = str(value)
        try:
            platform = add_platform(
                issuer=str(opts["issuer"]), client_id=str(opts["client_id"]),
                deployment_ids=[str(d) for d in opts["deployment_id"]], auth_url=urls["auth_url"],
                token_url=urls["token_url"], keyset_url=urls["keyset_url"], name=str(opts["name"]),
                preset=str(opts["preset"]), token_audience=str(opts["token_audience"]),
            )
        except RegistrationFailed as exc:
            raise CommandError(exc.reason) from None
        deps = ", ".join(platform.deployments.values_list("deployment_id", flat=True)) or "none"
        self.stdout.write(f"platform {platform.pk} {platform.issuer} client {platform.client_id}; deployments: {deps}")
        self.stdout.write(f"kdgrade's public keyset URL for this platform: {jwks_url(settings.PUBLIC_URL, platform)}")
