"""Load test of a multi-process kdgrade: several gunicorn web processes and several Celery worker
processes on PostgreSQL + Redis, driven by (1) the scoring API and (2) learners submitting answers through
the LTI pages, whose grades the workers post to a development LMS's gradebook (lti1p3platform, AGS).
Prints a markdown table.

    DATABASE_URL=postgres://... CELERY_BROKER_URL=redis://.../N CACHE_URL=redis://.../M \\
        nice .venv/bin/python bench/load_bench.py [--web-workers 3] [--celery-workers 2] [--clients 8] \\
        [--duration 15] [--students 24] [--model DIR]

The load generator is Python (threads with keep-alive sessions) in this process; it shares the machine's
cores with the server, so the figures are a floor for the server, not its ceiling.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kdgrade.settings")
WORK = ROOT / "var" / "bench-load"
ANSWERS = [
    "Metal is a better conductor of heat than wood, so it takes heat away from my hand faster.",
    "The metal spoon conducts heat from the hot water to my hand.",
    "Because metal gets hot.",
    "Wood is an insulator so the heat does not travel up the wooden spoon, but metal conducts it.",
    "The spoon is made of metal and metal lets thermal energy move through it quickly.",
    "I don't know.",
]
BUILD_MODEL = """
import sys, warnings
warnings.filterwarnings("ignore")
from distillation.pipeline import distill_csv
distill_csv(sys.argv[1], sys.argv[2], seed=0)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3 if ordered else float("nan")


ERRORS: list[str] = []


def _run_clients(n: int, duration: float, work) -> tuple[int, int, list[float], float]:
    """`n` threads call work(i, k, session) until `duration` is over; (ok, errors, latencies, seconds).
    `work` returns True, or raises/returns False; the first reasons are kept in ERRORS."""
    import requests

    ok = errors = 0
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + duration

    def loop(i: int) -> None:
        nonlocal ok, errors
        session = requests.Session()
        k = 0
        while time.monotonic() < stop_at:
            t = time.perf_counter()
            try:
                good = work(i, k, session)
            except Exception as exc:
                good = False
                with lock:
                    ERRORS.append(f"{type(exc).__name__}: {str(exc)[:160]}")
            took = time.perf_counter() - t
            with lock:
                latencies.append(took)
                if good:
                    ok += 1
                else:
                    errors += 1
            k += 1

    started = time.monotonic()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ok, errors, latencies, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--celery-workers", type=int, default=2, help="worker processes, each --concurrency 2")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--students", type=int, default=24)
    parser.add_argument("--model", type=Path, help="a model-version directory (default: build one, ~1 min)")
    args = parser.parse_args()
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"):
        if not os.environ.get(name, "").startswith(("postgres", "redis")):
            parser.error(f"set {name} (PostgreSQL / Redis): this is a test of the production layout")

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    WORK.mkdir(parents=True, exist_ok=True)
    model = args.model
    if model is None:
        model = WORK / "model" / "heat-spoon"
        if not (model / "manifest.json").is_file():
            print("building a model for the demo item...", file=sys.stderr)
            subprocess.run([sys.executable, "-c", BUILD_MODEL, str(ROOT / "scoring/demo/heat_spoon.csv"),
                            str(WORK / "model")], cwd=ROOT, check=True, capture_output=True)

    from devtools.devplatform import ROLE_LEARNER, DevPlatform, LaunchSpec, register_in_kdgrade
    from devtools.testing import Browser, ls_token
    from kdgrade.lti.models import Context, GradeOutbox, LtiAssignment, Platform
    from scoring import versions
    from scoring.api.accounts import integration_token
    from scoring.demo_data import load_demo
    from scoring.models import Assignment

    item = load_demo()
    if versions.active_version(item) is None:
        versions.activate_version(versions.register_version(item, model))
    token = integration_token("load-bench")  # scoring-only

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    # The development LMS is on 127.0.0.1 (allowed for outbound calls); the per-account API rate and the
    # per-learner answer limit are lifted: this measures throughput, with the same learners answering again.
    env = {**os.environ, "KDGRADE_PUBLIC_URL": base, "PYTHONUNBUFFERED": "1", "KDGRADE_LTI_RETRY_BASE": "1",
           "KDGRADE_OUTBOUND_ALLOW_PRIVATE": "true", "KDGRADE_API_THROTTLE_USER": "off",
           "KDGRADE_LTI_MAX_SUBMISSIONS_PER_HOUR": "0"}
    logs = [open(WORK / f"{name}.log", "w") for name in ("web", *(f"worker{i}" for i in range(args.celery_workers)))]  # noqa: SIM115
    procs = [subprocess.Popen(
        ["nice", "-n", "10", sys.executable, "-m", "gunicorn", "kdgrade.wsgi", "-b", f"127.0.0.1:{port}",
         "-w", str(args.web_workers), "-k", "gthread", "--threads", str(args.threads)],
        cwd=ROOT, env=env, stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True)]
    for i in range(args.celery_workers):
        procs.append(subprocess.Popen(
            ["nice", "-n", "10", sys.executable, "-m", "celery", "-A", "kdgrade", "worker", "-Q", "default",
             "--concurrency", "2", "-n", f"load{i}-{os.getpid()}@%h", "--loglevel", "WARNING"],
            cwd=ROOT, env=env, stdout=logs[i + 1], stderr=subprocess.STDOUT, start_new_session=True))
    rows: list[tuple[str, str]] = []
    try:
        import requests

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                health = requests.get(f"{base}/healthz", timeout=5).json()  # no training worker here
                if health.get("database") == "ok" and health["workers"]["default"]["alive"]:
                    break
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.5)
        else:
            raise SystemExit("the server or the workers did not come up (see var/bench-load/*.log)")
        rows.append(("processes", f"gunicorn -w {args.web_workers} -k gthread --threads {args.threads}; "
                                  f"{args.celery_workers} Celery workers x --concurrency 2 (prefork); "
                                  "PostgreSQL, Redis broker and cache; all `nice -n 10`"))
        rows.append(("load", f"{args.clients} client threads (Python, keep-alive) for {args.duration:.0f} s per part, "
                             f"on the same {os.cpu_count()} cores"))

        # 1. The scoring API.
        url = f"{base}/api/v1/items/{item.external_id}/score/"
        headers = {"Authorization": f"Token {token}"}

        def score(i: int, k: int, session) -> bool:
            r = session.post(url, json={"response": ANSWERS[(i + k) % len(ANSWERS)], "learner_ref": f"c{i}"},
                             headers=headers, timeout=30)
            if r.status_code != 201:
                raise RuntimeError(f"scoring API HTTP {r.status_code}: {r.text[:100]}")
            return True

        ok, errors, lat, took = _run_clients(args.clients, args.duration, score)
        rows.append(("scoring API `POST .../score/` (store): requests/s", f"**{ok / took:,.0f}** ({ok:,} ok, "
                                                                          f"{errors} errors)"))
        rows.append(("  latency p50 / p95 / p99 (ms)", f"{_pct(lat, .5):.0f} / {_pct(lat, .95):.0f} / "
                                                       f"{_pct(lat, .99):.0f}"))

        # 2. Learners answer through the LTI pages; the workers post each grade to the LMS gradebook.
        with DevPlatform(base) as lms:
            register_in_kdgrade(lms, name=f"Load LMS {port}")
            platform = Platform.objects.get(issuer=lms.issuer)
            context = Context.objects.create(platform=platform, context_id="course-1")
            assignment = Assignment.objects.create(item=item, title="Load", release=Assignment.Release.IMMEDIATE)
            LtiAssignment.objects.create(assignment=assignment, context=context)
            column = lms.add_lineitem("course-1", "Load", 2, "link-1")
            browsers: list[tuple[Browser, str, str]] = []
            t = time.monotonic()
            for s in range(args.students):
                b = Browser()
                page = b.launch(lms, LaunchSpec(f"s{s}", [ROLE_LEARNER], custom={
                    "kdgrade_assignment": str(assignment.pk)}, lineitem_id=column))
                assert page.status_code == 200, page.text[:300]
                browsers.append((b, page.url.split("?")[0], ls_token(page.url)))
            launch_s = time.monotonic() - t
            rows.append(("LTI launches, one after another (login, auth, launch, answer page)",
                         f"{args.students / launch_s:.1f}/s ({launch_s / args.students * 1e3:.0f} ms each)"))
            load_started = time.time()

            def submit(i: int, k: int, _session) -> bool:
                b, page_url, ls = browsers[(i + k * args.clients) % len(browsers)]
                r = b.post(page_url, {"ls": ls, "response": ANSWERS[(i + k) % len(ANSWERS)]})
                if r.status_code != 200 or 'name="response"' not in r.text:
                    raise RuntimeError(f"answer page HTTP {r.status_code} at {r.url}")
                return True

            ok, errors, lat, took = _run_clients(args.clients, args.duration, submit)
            end = time.monotonic()
            rows.append(("LTI answer page `POST` + redirect (scored, outbox row): submissions/s",
                         f"**{ok / took:,.1f}** ({ok:,} ok, {errors} errors)"))
            rows.append(("  latency p50 / p95 / p99 (ms)", f"{_pct(lat, .5):.0f} / {_pct(lat, .95):.0f} / "
                                                           f"{_pct(lat, .99):.0f}"))
            posts = GradeOutbox.objects.filter(slot__resource_link__context=context)
            while time.monotonic() - end < 120 and posts.filter(state=GradeOutbox.State.PENDING).exists():
                time.sleep(0.5)
            drain = time.monotonic() - end
            states = {s: posts.filter(state=s).count() for s in GradeOutbox.State.values}
            sent = posts.filter(state=GradeOutbox.State.SENT).order_by("sent_at")
            rows.append(("grade posts written / sent / superseded by a newer one / failed / still pending",
                         f"{sum(states.values())} / {states['sent']} / {states['superseded']} / "
                         f"{states['failed']} / {states['pending']}"))
            if sent.exists():
                span = (sent.last().sent_at.timestamp() - load_started)
                rows.append(("  AGS posts delivered to the LMS per second (first answer to last post)",
                             f"{states['sent'] / span:.1f}/s"))
            rows.append(("  time from the end of the load until no post was pending", f"{drain:.1f} s"))
            results = list(lms.gradebook.results.values())
            graded = sum(1 for r in results if r.get("gradingProgress") == "FullyGraded")
            rows.append(("  learners in the LMS gradebook: with a score / marked as needing grading",
                         f"{graded} / {len(results) - graded} of {args.students}"))
    finally:
        for p in procs:
            with_group = p.pid
            with contextlib.suppress(ProcessLookupError):
                os.killpg(with_group, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        for log in logs:
            log.close()
    load = os.getloadavg()
    rows.append(("machine load average (1/5/15 min) at the end", f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"))
    if ERRORS:
        rows.append(("errors (first 3)", "; ".join(ERRORS[:3]).replace("|", "/")))
    print("| what | figure |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
