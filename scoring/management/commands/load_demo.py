import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from scoring import versions
from scoring.demo_data import DEMO_RESPONSES, load_demo
from training import activation


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
            version = versions.register_version(item, Path(out) / item.external_id)
        try:
            version = activation.activate(version, actor="manage.py load_demo")
        except activation.GatesFailed as exc:
            failed = "\n  ".join(g["message"] for g in exc.gates if g["passed"] is False)
            self.stdout.write(f"{version} is NOT active: it fails its quality gates:\n  {failed}\n"
                              "Its page in the admin (Scoring -> Model versions) lists them; answers to the demo "
                              "item are held for review until a version that passes is activated.")
            return
        self.stdout.write(f"Activated {version}.")
