from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from scoring.api.accounts import integration_token


class Command(BaseCommand):
    help = ("Print the API token of an integration account (made if missing). The account is scoring-only "
            "(score answers, read items); --read-submissions also lets it read stored answers.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--read-submissions", action="store_true")
        parser.add_argument("--new-key", action="store_true", help="replace the account's token")

    def handle(self, *args: object, **opts: object) -> None:
        self.stdout.write(integration_token(str(opts["username"]), read_submissions=bool(opts["read_submissions"]),
                                            new_key=bool(opts["new_key"])))
