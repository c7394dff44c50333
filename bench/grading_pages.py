"""The timings a teacher feels on the grading pages, with 200 answers in one assignment.  Prints a
markdown table.

    .venv/bin/python bench/grading_pages.py                     # SQLite in var/bench-grading/, in process + browser
    .venv/bin/python bench/grading_pages.py --no-browser        # in process only
    .venv/bin/python bench/grading_pages.py --database-url postgres://postgres@127.0.0.1:5432/NAME

What is measured:
- Data: one course, one assignment, 200 students with one answer each and a score (a tenth flagged, one
  in 25 declined), written straight to a fresh database (tests/grading_support.py), with their names
  on the roster.
- In process ("server time"): Django's test client through the whole middleware stack, no network:
  GET of the review queue (the first answer to review, all 200 rows behind it), the answers table,
  the groups, the overview and the CSV export; POST accept (which redirects to the next answer to
  review; that page finds it) and the GET of that next answer.  Each accept takes a different unreviewed answer.  N runs
  after 3 warm-ups; median and 90th percentile, milliseconds.
- Browser: headless Debian Chromium (Playwright) against `manage.py runserver` on the same database: the
  Navigation Timing of the queue page (responseStart - requestStart: the server's time plus the
  loopback) and of accept-and-next from the keyboard (Enter on the queue page: POST, redirect, GET;
  responseStart - startTime of the landing document, so both requests), N runs each.
Targets (issue 12): review page with 200 answers under 300 ms server time; accept-and-next under 100 ms.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = ROOT / "var" / "bench-grading"


def _ms(samples: list[float]) -> str:
    samples = sorted(samples)
    p90 = samples[min(len(samples) - 1, round(0.9 * (len(samples) - 1)))]
    return f"{statistics.median(samples):.1f} / {p90:.1f}"


def _create_postgres_database(database_url: str) -> None:
    import psycopg

    server, name = database_url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def _setup(database_url: str) -> None:
    if database_url.startswith("postgres"):
        _create_postgres_database(database_url)
    os.environ.update(DATABASE_URL=database_url, KDGRADE_DATA_DIR=str(WORK / "data"), LOG_LEVEL="WARNING",
                      DJANGO_SETTINGS_MODULE="kdgrade.settings", DJANGO_ALLOW_ASYNC_UNSAFE="true")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    call_command("flush", "--noinput", verbosity=0)


def in_process(course, runs: int) -> list[tuple[str, str]]:
    from django.test import Client

    client = Client()
    base = f"/lti/a/{course.assignment.pk}"
    token = course.teacher.token
    rows = []
    for label, url in [("review queue (first answer to review; 200 answers)", f"{base}/review/?ls={token}"),
                       ("answers table (200 rows)", f"{base}/answers/?ls={token}"),
                       ("similar answers (groups)", f"{base}/groups/?ls={token}"),
                       ("class overview", f"{base}/overview/?ls={token}"),
                       ("CSV export", f"{base}/export.csv?ls={token}")]:
        times = []
        for i in range(runs + 3):
            t0 = time.perf_counter()
            resp = client.get(url)
            elapsed = (time.perf_counter() - t0) * 1e3
            assert resp.status_code == 200, (url, resp.status_code)
            if i >= 3:
                times.append(elapsed)
        rows.append((f"GET {label}", _ms(times)))
    from scoring.models import Score

    todo = list(Score.objects.filter(submission__assignment=course.assignment, override_score__isnull=True,
                                     model_score__isnull=False).order_by("pk").values_list("pk", "submission_id"))
    posts, nexts, both = [], [], []
    for i, (score_id, sub_id) in enumerate(todo[: runs + 3]):
        t0 = time.perf_counter()
        resp = client.post(f"{base}/accept/", {"ls": token, "score_id": score_id, "back": "queue", "s": sub_id})
        t1 = time.perf_counter()
        assert resp.status_code == 302, resp.status_code
        page = client.get(resp["Location"])
        t2 = time.perf_counter()
        assert page.status_code == 200
        if i >= 3:
            posts.append((t1 - t0) * 1e3)
            nexts.append((t2 - t1) * 1e3)
            both.append((t2 - t0) * 1e3)
    rows += [("POST accept (writes the score and its audit row, redirects)", _ms(posts)),
             ("GET the next answer after the redirect", _ms(nexts)),
             ("**accept-and-next** (POST + GET)", _ms(both))]
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser(course, database_url: str, runs: int) -> list[tuple[str, str]]:
    from playwright.sync_api import sync_playwright

    from tests.browser.support import CHROMIUM, CHROMIUM_ARGS

    if not os.access(CHROMIUM, os.X_OK):
        return [("browser", f"not run: {CHROMIUM} missing (scripts/bootstrap.sh dev)")]
    port = _free_port()
    env = dict(os.environ, DATABASE_URL=database_url, KDGRADE_DATA_DIR=str(WORK / "data"), LOG_LEVEL="WARNING")
    server = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}/lti/a/{course.assignment.pk}/review/?ls={course.teacher.token}"
    from scoring.models import Score

    todo = list(Score.objects.filter(submission__assignment=course.assignment, override_score__isnull=True,
                                     model_score__isnull=False).order_by("-pk").values_list("submission_id", flat=True))
    rows = []
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        with sync_playwright() as pw:
            chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = chromium.new_page(viewport={"width": 1280, "height": 900})
            nav = ("() => { const n = performance.getEntriesByType('navigation')[0];"
                   " return [n.responseStart - n.requestStart, n.responseStart - n.startTime]; }")
            opens, accepts = [], []
            for i in range(runs + 3):
                page.goto(url)
                page.wait_for_selector("html[data-ready] #review")
                if i >= 3:
                    opens.append(page.evaluate(nav)[0])
            for i, sub_id in enumerate(todo[: runs + 3]):
                page.goto(f"{url}&s={sub_id}")
                page.wait_for_selector("html[data-ready] #accept")
                before = page.inner_text("#student-name")
                page.locator("body").press("Enter")
                page.wait_for_function("(b) => document.documentElement.dataset.ready &&"
                                       " document.getElementById('student-name').textContent !== b", arg=before)
                if i >= 3:
                    accepts.append(page.evaluate(nav)[1])
            chromium.close()
        rows += [("browser: review queue opens (responseStart - requestStart)", _ms(opens)),
                 ("browser: **accept-and-next** from the keyboard (POST + redirect + GET, to first byte)",
                  _ms(accepts))]
    finally:
        server.terminate()
        server.wait(timeout=20)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=f"sqlite:///{WORK / 'bench.sqlite3'}")
    parser.add_argument("--answers", type=int, default=200)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if args.database_url.startswith("sqlite:///"):
        Path(args.database_url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    _setup(args.database_url)
    from django.db import connection

    from tests.grading_support import make_course

    course = make_course(args.answers)
    rows = [("database", f"{connection.vendor}"), ("answers", str(args.answers)),
            ("runs", f"{args.runs} after 3 warm-ups"),
            ("load (1-minute load average, cores)", f"{os.getloadavg()[0]:.2f}, {os.cpu_count()}")]
    rows += in_process(course, args.runs)
    if not args.no_browser:
        rows += browser(course, args.database_url, args.runs)
    print("| what | median / p90 (ms) |\n|---|---|")
    for what, value in rows:
        print(f"| {what} | {value} |")


if __name__ == "__main__":
    main()
