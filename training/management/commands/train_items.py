"""``manage.py train_items ITEM [ITEM ...]``: start a training run (the admin's "Train" action)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scoring.models import Item
from training import runs
from training.models import TrainingRun


class Command(BaseCommand):
    help = ("Queue a training run for the given items on the `training` queue (run a worker with "
            "`celery -A kdgrade worker -Q training --concurrency 1`), or run it here with --now.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("items", nargs="+", help="item ids")
        parser.add_argument("--tiny", action="store_true", help="quick try with a tiny teacher (not for real use)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--no-confirmed", action="store_true", help="leave out teacher-confirmed live scores")
        parser.add_argument("--no-unscored", action="store_true", help="leave out unscored live answers")
        parser.add_argument("--activate", action="store_true", help="activate each version that passes its gates")
        parser.add_argument("--now", action="store_true", help="run in this process instead of a worker")
        parser.add_argument("--wait", action="store_true", help="wait for the worker to finish, printing progress")

    def handle(self, *args: object, **opts: object) -> None:
        found = {i.external_id: i for i in Item.objects.filter(external_id__in=opts["items"])}
        missing = [i for i in opts["items"] if i not in found]
        if missing:
            raise CommandError(f"no such item: {', '.join(missing)}")
        try:
            run = runs.start_run([found[i] for i in opts["items"]], preset="tiny" if opts["tiny"] else "default",
                                 seed=opts["seed"], include_confirmed=not opts["no_confirmed"],
                                 include_unscored=not opts["no_unscored"], activate_passing=opts["activate"],
                                 enqueue=not opts["now"])
        except runs.RunRefused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"training run {run.pk} {'started here' if opts['now'] else 'queued'}")
        if opts["now"]:
            runs.execute_run(run.pk)
        elif opts["wait"]:
            last = None
            while not (run := TrainingRun.objects.get(pk=run.pk)).finished:
                line = f"{run.percent:5.1f}% {run.current_item} {run.stage} {run.message}"
                if line != last:
                    self.stdout.write(line)
                    last = line
                time.sleep(2)
        run.refresh_from_db()
        for ri in run.run_items.select_related("item", "model_version"):
            failed = [g["name"] for g in ri.gates if g.get("passed") is False]
            gates = ("gates: all passed" if not failed else f"failed gates: {', '.join(failed)}") if ri.gates else ""
            self.stdout.write(f"{ri.item.external_id}: {ri.get_status_display()} {ri.model_version or ''} {gates} "
                              f"{ri.error}".rstrip())
        if run.finished:
            self.stdout.write(f"run {run.pk}: {run.get_status_display()}{': ' + run.error if run.error else ''}")
            if run.status in (TrainingRun.Status.FAILED, TrainingRun.Status.CANCELLED):
                raise CommandError(f"run {run.pk} {run.status}")
