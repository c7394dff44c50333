from django.core.management.base import BaseCommand

from scoring.demo_data import load_demo


class Command(BaseCommand):
    help = "Load the demo science item, its rubric and its human-scored answers (idempotent)."

    def handle(self, *args: object, **options: object) -> None:
        item = load_demo()
        self.stdout.write(
            f"Demo item '{item.external_id}' ready: {item.rubric_levels.count()} rubric levels, "
            f"{item.submissions.count()} scored answers."
        )
