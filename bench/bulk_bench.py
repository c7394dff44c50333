"""Bulk scoring speed: `manage.py score_csv` on 50,000 real answers, end to end, on one core.

    .venv/bin/python bench/bulk_bench.py --model DIR [--rows 50000] [--repeat 3]

DIR is a model-version directory of ASAP-SAS prompt 1 (e.g. `var/bench-out/asap/1` from
`bench/distill_bench.py asap --items 1`).  The input CSV repeats the prompt's real answers (train + test)
up to --rows.  The command runs pinned to one core (`taskset -c 0` where available), as a fresh process:
the figure includes Python and Django start-up, reading and writing the CSV, flags, featuriser and
onnxruntime.  A second row times the scoring alone (`scoring.services.score_with_model`, batches of
2,000, in this process), a third the featuriser alone, and a fourth the batch API (1,000 answers per
request, stored) through Django's test client in this process.  Prints a table; medians of --repeat runs.
Django runs as deployed, without DEBUG (``DJANGO_DEBUG=false`` unless set): the development default's
debug cursor logs every query with its parameters, a fifth of a batch request's time.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("KDGRADE_DATASETS", ROOT.parent / "shared" / "datasets"))


def make_csv(path: Path, rows: int) -> list[dict]:
    src = []
    for name in ("train.csv", "test.csv"):
        with (DATA / "asap_sas" / name).open(encoding="utf-8", newline="") as h:
            src += [r for r in csv.DictReader(h) if r["item_id"] == "1"]
    out = [dict(src[i % len(src)], response_id=f"r{i}") for i in range(rows)]
    fields = ["item_id", "question", "reference_answer", "response_id", "response", "score"]
    with path.open("w", encoding="utf-8", newline="") as h:
        w = csv.DictWriter(h, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(out)
    return out


API_BATCH = 1000  # KDGRADE_MAX_BATCH's default


def batch_api(model_dir: Path, rows: list[dict]):
    """A function that posts every answer to the batch API (stored), through Django's test client in
    this process: request parsing, validation, scoring, one transaction per request, the JSON reply."""
    from django.test.utils import setup_test_environment
    from rest_framework.test import APIClient

    from scoring.api.accounts import integration_token
    from scoring.models import Item, RubricLevel
    from scoring.versions import activate_version, register_version

    setup_test_environment()  # the test client's host name is allowed
    item, _ = Item.objects.update_or_create(
        external_id="bench-asap-1",
        defaults={"title": "ASAP-SAS 1 (bench)", "question": rows[0]["question"],
                  "reference_answers": [rows[0]["reference_answer"]], "score_min": 0, "score_max": 3})
    for lv in range(4):
        RubricLevel.objects.update_or_create(item=item, score=lv, defaults={"label": str(lv)})
    activate_version(register_version(item, model_dir))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {integration_token('bench-bulk')}")
    url = f"/api/v1/items/{item.external_id}/score-batch/"
    bodies = [{"responses": [{"response": r["response"], "learner_ref": r["response_id"]}
                             for r in rows[s : s + API_BATCH]]} for s in range(0, len(rows), API_BATCH)]

    def post_all() -> None:
        for body in bodies:
            res = client.post(url, body, format="json")
            assert res.status_code == 201, res.content[:500]

    return post_all


def median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kdgrade-bulk-"))
    try:
        src = tmp / "in.csv"
        rows = make_csv(src, args.rows)
        pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
        os.environ.setdefault("DJANGO_DEBUG", "false")  # as deployed (this process and the commands)
        env = dict(os.environ, KDGRADE_DATA_DIR=str(tmp / "data"), OMP_NUM_THREADS="1")
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        cmd = [*pin, sys.executable, "manage.py", "score_csv", "--csv", str(src), "--out", str(tmp / "out.csv"),
               "--model", str(args.model)]
        e2e = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
            e2e.append(time.perf_counter() - t)

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kdgrade.settings")
        os.environ["KDGRADE_DATA_DIR"] = str(tmp / "data")
        if pin:
            os.sched_setaffinity(0, {0})
        import django

        django.setup()
        from scoring import services
        from scoring.scorer import WORD_CHUNK, open_model

        model = open_model(args.model)
        texts = [r["response"] for r in rows]
        q, ref = rows[0]["question"], rows[0]["reference_answer"]
        chunk = 2000

        def score_all():
            for s in range(0, len(texts), chunk):
                services.score_with_model(model, texts[s : s + chunk], question=q, reference=ref)

        def featurise_all():  # as score_with_model's batches are featurised (LoadedModel.predict)
            for s in range(0, len(texts), chunk):
                batch = texts[s : s + chunk]
                if model.featurizer.vocabulary is None:
                    model.featurizer.transform(batch, q, ref)
                    continue
                order = sorted(range(len(batch)), key=lambda i: len(batch[i]))  # a word CNN's chunks
                for c in range(0, len(batch), WORD_CHUNK):
                    model.featurizer.transform([batch[i] for i in order[c : c + WORD_CHUNK]], q, ref)

        api_post = batch_api(args.model, rows)

        timings = {}
        for name, fn in (("scoring", score_all), ("featuriser", featurise_all), ("api", api_post)):
            fn()
            ts = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t)
            timings[name] = median(ts)
        n = args.rows
        print(f"| measure ({n:,} ASAP-SAS prompt 1 answers, one core) | seconds (median of {args.repeat}) "
              "| answers/s |")
        print("|---|---|---|")
        print(f"| `score_csv --model` end to end (fresh process, CSV in and out) | {median(e2e):.2f} | "
              f"{n / median(e2e):,.0f} |")
        print(f"| `score_with_model` in process (flags + featuriser + ONNX), batches of {chunk} | "
              f"{timings['scoring']:.2f} | {n / timings['scoring']:,.0f} |")
        print(f"| featuriser alone (chunked as the scorer does) | {timings['featuriser']:.2f} | "
              f"{n / timings['featuriser']:,.0f} |")
        print(f"| batch API `POST .../score-batch/` in process (DRF, token auth, embedded SQLite, stored), "
              f"{API_BATCH:,} answers per request | {timings['api']:.2f} | {n / timings['api']:,.0f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
