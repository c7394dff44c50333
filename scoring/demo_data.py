"""Load the demo item that ships with kdgrade (written by the project, see scoring/demo/)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from django.db import transaction

from scoring.models import Item, RubricLevel, Score, Submission

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_RUBRIC = DEMO_DIR / "heat_spoon_rubric.json"
DEMO_RESPONSES = DEMO_DIR / "heat_spoon.csv"


@transaction.atomic
def load_demo() -> Item:
    """Create (or refresh) the demo item, its rubric and its scored answers. Idempotent."""
    spec = json.loads(DEMO_RUBRIC.read_text(encoding="utf-8"))
    item, _ = Item.objects.update_or_create(
        external_id=spec["item_id"],
        defaults={
            "title": spec["title"],
            "question": spec["question"],
            "reference_answers": spec["reference_answers"],
            "score_min": spec["score_min"],
            "score_max": spec["score_max"],
            # None: the threshold fitted with the model version decides (an admin may override it)
            "confidence_threshold": spec.get("confidence_threshold"),
        },
    )
    for level in spec["levels"]:
        RubricLevel.objects.update_or_create(
            item=item, score=level["score"], defaults={"label": level["label"], "descriptor": level["descriptor"]}
        )
    if not item.submissions.filter(source=Submission.Source.DEMO).exists():
        with DEMO_RESPONSES.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        submissions = Submission.objects.bulk_create(
            Submission(
                item=item, response=row["response"], source=Submission.Source.DEMO, learner_ref=row["response_id"]
            )
            for row in rows
        )
        Score.objects.bulk_create(
            Score(submission=sub, override_score=int(row["score"]), final_score=int(row["score"]), overridden_by="demo")
            for sub, row in zip(submissions, rows, strict=True)
        )
    return item
