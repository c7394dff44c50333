"""The serving path imports neither torch nor transformers, proven in fresh interpreters."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from scoring import versions
from tests.scoring_support import ANSWERS, DEMO_CSV, ROOT
from tests.workers import child_env

HEAVY = ("torch", "transformers", "sklearn", "scipy")


def _run(script: str, *args: str, **env: str) -> dict:
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=child_env(DJANGO_SETTINGS_MODULE="kdgrade.settings", **env))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _assert_light(report: dict) -> None:
    assert report["heavy"] == [], f"the serving path imported {report['heavy']}"


@pytest.mark.ml
def test_the_scorer_scores_without_torch(model_dirs):
    script = (
        "import json, sys\n"
        "from scoring.scorer import open_model\n"
        "model = open_model(sys.argv[1])\n"
        "p = model.predict_proba(json.loads(sys.argv[2]), 'question', 'reference')\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print(json.dumps({'heavy': heavy, 'rows': len(p), 'sum': float(p.sum())}))\n"
    )
    report = _run(script, str(model_dirs["v1"]), json.dumps(ANSWERS))
    _assert_light(report)
    assert report["rows"] == len(ANSWERS) and report["sum"] == pytest.approx(len(ANSWERS), abs=1e-4)


@pytest.mark.django_db(transaction=True)
def test_django_scoring_the_api_and_score_csv_run_without_torch(demo_versions, tmp_path):
    _, v1, _ = demo_versions
    versions.activate_version(v1)
    out = tmp_path / "scored.csv"
    script = (
        "import json, sys, django\n"
        "django.setup()\n"
        "from django.core.management import call_command\n"
        "from django.test import Client\n"
        "from django.contrib.auth.models import User\n"
        "from rest_framework.authtoken.models import Token\n"
        "from scoring.models import Item, Submission\n"
        "from scoring.services import score_submission\n"
        "item = Item.objects.get(external_id='heat-spoon')\n"
        "score = score_submission(Submission.objects.create(item=item, response=sys.argv[1]))\n"
        "call_command('score_csv', csv=sys.argv[2], out=sys.argv[3])\n"
        "from scoring.api.accounts import integration_token\n"
        "token = integration_token('torchless')\n"
        "r = Client().post('/api/v1/items/heat-spoon/score/', {'response': sys.argv[1]},\n"
        "                  content_type='application/json', HTTP_AUTHORIZATION='Token ' + token)\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print(json.dumps({'heavy': heavy, 'version': score.model_version_id, 'status': r.status_code}))\n"
    )
    report = _run(script, ANSWERS[0], str(DEMO_CSV), str(out))
    _assert_light(report)
    assert report["version"] == v1.pk and report["status"] == 201
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 36 and all(r["p_0"] for r in rows)
