"""``manage.py distill``: train one model version per item from a canonical CSV (distillation.pipeline)."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Distil a tiny ONNX student from a fine-tuned teacher for each item of a labelled-response CSV; "
        "writes one model version per item under OUT/<item_id>/ and a JSON report."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--train", required=True, help="canonical labelled-response CSV")
        parser.add_argument("--test", help="test CSV (default: a held-out split of --train)")
        parser.add_argument("--unlabelled", help="CSV of unscored responses for the teacher to label")
        parser.add_argument("--out", required=True, help="output directory (model versions go to OUT/<item_id>/)")
        parser.add_argument("--teacher", help="local Hugging Face checkpoint directory (default: the MiniLM package)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--report-json", help="write the JSON report here (default: OUT/report.json)")
        parser.add_argument("--items", nargs="+", help="only these item ids")
        parser.add_argument("--pooled", action="store_true", help="one model over all items (OUT/pooled/)")
        parser.add_argument("--config", help="JSON file of training settings (distillation.config.DistillConfig)")
        parser.add_argument("--tiny", action="store_true", help="tiny random teacher, few steps (tests, demos)")
        parser.add_argument("--teacher-epochs", type=int, help="maximum teacher epochs")

    def handle(self, *args, **opts) -> None:
        from distillation.config import DistillConfig
        from distillation.data import DataError
        from distillation.onnx_contract import ContractError
        from distillation.pipeline import ProgressPrinter, distill
        from distillation.teacher import TeacherError

        if opts["config"]:
            try:
                config = DistillConfig.from_dict(json.loads(Path(opts["config"]).read_text()))
            except (OSError, ValueError, TypeError) as exc:
                raise CommandError(f"--config {opts['config']}: {exc}") from exc
        else:
            config = DistillConfig.tiny() if opts["tiny"] else DistillConfig()
        if opts["teacher_epochs"]:
            config = config.with_teacher(epochs=opts["teacher_epochs"])
        report_json = opts["report_json"] or str(Path(opts["out"]) / "report.json")
        try:
            report = distill(
                opts["train"], opts["out"], test_csv=opts["test"], unlabelled_csv=opts["unlabelled"],
                teacher=opts["teacher"], config=config, seed=opts["seed"], report_json=report_json,
                pooled=opts["pooled"], items=opts["items"], progress=ProgressPrinter(self.stderr),
            )
        except (DataError, ContractError, TeacherError) as exc:
            raise CommandError(str(exc)) from exc
        for item, entry in report["items"].items():
            m = entry["models"]
            self.stdout.write(
                f"{item}: student QWK {m['student']['qwk']:.3f} (teacher {m['teacher']['qwk']:.3f}, "
                f"no KD {m['student_no_kd']['qwk']:.3f}, TF-IDF {m['tfidf']['qwk']:.3f}), "
                f"{m['student']['params']:,} params -> {Path(opts['out']) / item}"
            )
            failed = [g["message"] for g in entry.get("gates", []) if g["passed"] is False]
            self.stdout.write(f"  gates: {'all passed' if not failed else 'FAILED: ' + ' '.join(failed)}")
            sel = m["student"].get("selective") or {}
            if sel:
                self.stdout.write(f"  scores alone at confidence >= {sel['threshold']:.3f}: "
                                  f"{sel['test']['coverage']:.0%} of the test answers")
        self.stdout.write(f"report: {report_json}")
