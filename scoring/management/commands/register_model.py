"""`manage.py register_model --item ITEM DIR [--activate]`: register a model-version directory."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scoring import versions
from scoring.models import Item
from training import activation


class Command(BaseCommand):
    help = "Register a model-version directory (from `distill`) for an item; optionally activate it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path, help="The model-version directory (DIR/<item_id>/).")
        parser.add_argument("--item", help="The item's id (default: the manifest's item_id).")
        parser.add_argument("--activate", action="store_true",
                            help="Activate it once registered, if it passes the item's quality gates.")
        parser.add_argument("--override-gates", action="store_true",
                            help="With --activate: activate even if quality gates fail (recorded in the audit).")
        parser.add_argument("--note", default="", help="Why (recorded with the activation).")

    def handle(self, *args: object, **options: object) -> None:
        from distillation.artifact import ArtifactError, load_manifest

        directory: Path = options["directory"]
        try:
            item_id = options["item"] or load_manifest(directory).item_id
        except ArtifactError as exc:
            raise CommandError(str(exc)) from None
        item = Item.objects.filter(external_id=item_id).first()
        if item is None:
            raise CommandError(f"no item {item_id!r}")
        try:
            version = versions.register_version(item, directory)
            self.stdout.write(f"registered {version} at {version.artifact_path}")
            if options["activate"]:
                version = activation.activate(version, actor="manage.py register_model",
                                              override=options["override_gates"], note=options["note"])
                self.stdout.write(f"activated {version}")
        except activation.GatesFailed as exc:
            failed = "\n  ".join(g["message"] for g in exc.gates if g["passed"] is False)
            raise CommandError(f"{exc.version} registered but NOT activated; it fails its quality gates:\n  {failed}\n"
                               "(--override-gates activates it anyway, recorded)") from None
        except versions.ModelVersionError as exc:
            raise CommandError(str(exc)) from None
