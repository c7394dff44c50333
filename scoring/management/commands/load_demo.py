import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from scoring import versions
from scoring.demo_data import DEMO_RESPONSES, load_demo


class Command(BaseCommand):
    help = "Load the demo science item, its rubric and its human-scored answers (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--with-model",
            action="store_true",
            help="Also distil a model for the demo item (about a minute, needs the training stack) "
            "and activate it, unless the item already has an active model.",
        )

    def handle(self, *args: object, **options: object) -> None:
        item = load_demo()
        self.stdout.write(
            f"Demo item '{item.external_id}' ready: {item.rubric_levels.count()} rubric levels, "
            f"{item.submissions.count()} scored answers."
        )
        if not options["with_model"]:
            return
        active = versions.active_version(item)
        if active is not None:
            self.stdout.write(f"Demo item has an active model: {active}.")
            return
        self.stdout.write("Distilling a model for the demo item (first run only, about a minute)...")
        with tempfile.TemporaryDirectory(dir=settings.DATA_DIR) as out:
            call_command("distill", train=str(DEMO_RESPONSES), out=out, items=[item.external_id])
            # register_version copies the directory under MODELS_DIR.
            version = versions.activate_version(versions.register_version(item, Path(out) / item.external_id))
        self.stdout.write(f"Activated {version}.")
