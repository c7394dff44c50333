"""Scoring speed: the scorer in process (batched throughput, single-answer latency) and the HTTP scoring
endpoint under concurrent load against a real server (gunicorn, PostgreSQL).  Prints a markdown table.

    .venv/bin/python bench/scoring_bench.py                       # everything (about a minute)
    .venv/bin/python bench/scoring_bench.py --skip-http           # in process only
    .venv/bin/python bench/scoring_bench.py --model var/bench-out/asap/1 --duration 10 --connections 4

Load generator: `wrk` (C, https://github.com/wg/wrk).  Install it with `apt-get install -y wrk` (Debian /
Ubuntu) or `brew install wrk`; without it the HTTP part says so and stops.

What is measured:
- Model: --model DIR, or (default) a production-size student (4,096 hashed buckets, 8-dim embedding,
  32 hidden units: the default `DistillConfig` student) distilled from the demo CSV with the tiny teacher,
  built once into var/bench-scoring/model/.  Answers: the ASAP-SAS prompt 1 test answers (about 260
  characters each) with that prompt's question and key, from ../shared/datasets/.
- In process: `scoring.services.score_with_model` = flags + featuriser + onnxruntime + result objects,
  what the API and score_csv run once the model is resolved (no database).  Batched: 1,000 answers per
  call; single: one answer per call, 2,000 calls, p50/p99.
- HTTP: gunicorn (`-w 3 -k gthread --threads 4`: on 2 cores a third process evens out the 8 keep-alive
  connections, which gunicorn does not balance between workers, and the threads hide database waits),
  PostgreSQL database `kdgrade_bench` on
  127.0.0.1:5432 (created and migrated here), token authentication, POST /api/v1/items/heat-spoon/score/
  with one answer per request, rotating over 36 real answers; `store` true (the default: a submission
  and its score are written, one transaction) and false.  wrk with N keep-alive connections for D
  seconds (default 8 connections, 10 s) after a warm-up; errors = socket errors + non-2xx responses.
- The flags are computed in process, before the featuriser runs (no helper process or thread): the
  in-process figures include them.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable
WORK = ROOT / "var" / "bench-scoring"
DB_NAME = "kdgrade_bench"
PG = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")

BUILD_MODEL = """
import sys, warnings
warnings.filterwarnings("ignore")
from distillation.config import DistillConfig
from distillation.pipeline import distill_csv
config = DistillConfig.tiny().with_student(n_buckets=49152)  # the served size
distill_csv(sys.argv[1], sys.argv[2], config=config, seed=0)
"""

SETUP_DB = """
import sys, django
django.setup()
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from scoring.demo_data import load_demo
from scoring.versions import activate_version, register_version
item = load_demo()
active = item.model_versions.filter(status="active").first()
if active is None or active.metrics.get("bench_source") != sys.argv[1]:
    version = register_version(item, sys.argv[1], metrics={"bench_source": sys.argv[1]})
    activate_version(version)
from scoring.api.accounts import integration_token
print(integration_token("bench"))
"""

WRK_SCRIPT = """
local bodies = %(bodies)s
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Token %(token)s"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d, '
    .. '"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def _asap_prompt1(datasets: Path) -> tuple[list[str], str, str]:
    with (datasets / "asap_sas" / "test.csv").open(encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["item_id"] == "1"]
    answers = [r["response"] for r in rows]
    return (answers * (1000 // len(answers) + 1))[:1000], rows[0]["question"], rows[0]["reference_answer"]


def ensure_model(model: Path | None) -> Path:
    if model is not None:
        return model
    target = WORK / "model" / "heat-spoon"
    if not (target / "manifest.json").is_file():
        print("building a production-size student from the demo CSV (tiny teacher, ~10 s)...", file=sys.stderr)
        shutil.rmtree(WORK / "model", ignore_errors=True)
        subprocess.run([PY, "-c", BUILD_MODEL, str(ROOT / "scoring" / "demo" / "heat_spoon.csv"),
                        str(WORK / "model")], cwd=ROOT, check=True, capture_output=True)
    return target


def in_process(model_dir: Path, datasets: Path) -> list[tuple[str, str]]:
    import numpy as np

    from scoring.scorer import open_model
    from scoring.services import score_with_model

    model = open_model(model_dir)
    answers, question, reference = _asap_prompt1(datasets)
    for _ in range(3):  # warm-up: caches, allocator
        score_with_model(model, answers, question=question, reference=reference)
    rates, scorer_rates = [], []
    for _ in range(10):
        t = time.perf_counter()
        score_with_model(model, answers, question=question, reference=reference)
        rates.append(len(answers) / (time.perf_counter() - t))
        t = time.perf_counter()
        model.predict_proba(answers, question, reference)
        scorer_rates.append(len(answers) / (time.perf_counter() - t))
    times, cpu = [], []
    for answer in answers * 2:
        t, c = time.perf_counter(), time.thread_time()
        score_with_model(model, [answer], question=question, reference=reference)
        times.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
    p50, p99 = np.percentile(times, [50, 99]) * 1e3
    c50, c99 = np.percentile(cpu, [50, 99]) * 1e3
    return [
        ("model", f"{model_dir} ({model.featurizer.n_buckets} buckets, "
                  f"{model.manifest.student_params:,} parameters)"),
        ("answers", f"ASAP-SAS prompt 1 test answers, mean {statistics.mean(map(len, answers)):.0f} characters"),
        ("batched, 1,000 answers/call: responses/s (median of 10; best)",
         f"**{statistics.median(rates):,.0f}**; {max(rates):,.0f}"),
        ("  of which featuriser + onnxruntime alone: responses/s (median)", f"{statistics.median(scorer_rates):,.0f}"),
        ("single answer/call: p50 / p99 / max (ms), 2,000 calls",
         f"**{p50:.3f} / {p99:.3f}** / {max(times) * 1e3:.2f}"),
        ("  same, CPU time of the calling thread (excludes waiting for a core): p50 / p99 (ms)",
         f"{c50:.3f} / {c99:.3f}"),
    ]


def _database_url() -> str:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone():
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    return f"{PG}/{DB_NAME}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(model_dir: Path, duration: int, connections: int, workers: int, threads: int) -> list[tuple[str, str]]:
    if shutil.which("wrk") is None:
        print("wrk is not installed: `apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk`; "
              "skipping the HTTP part", file=sys.stderr)
        return [("HTTP", "not run: wrk missing (apt-get install -y wrk)")]
    env = dict(os.environ, DATABASE_URL=_database_url(), KDGRADE_DATA_DIR=str(WORK / "data"),
               DJANGO_SETTINGS_MODULE="kdgrade.settings", DJANGO_DEBUG="false", LOG_LEVEL="WARNING",
               KDGRADE_API_THROTTLE_USER="off")  # measure the scorer, not the per-account rate limit
    env.pop("CACHE_URL", None)
    subprocess.run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    token = subprocess.run([PY, "-c", SETUP_DB, str(model_dir.resolve())], cwd=ROOT, env=env, check=True,
                           capture_output=True, text=True).stdout.strip().splitlines()[-1]
    with (ROOT / "scoring" / "demo" / "heat_spoon.csv").open(encoding="utf-8", newline="") as handle:
        texts = [r["response"] for r in csv.DictReader(handle)]
    port = _free_port()
    log = open(WORK / "gunicorn.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [str(Path(PY).parent / "gunicorn"), "kdgrade.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers),
         "-k", "gthread", "--threads", str(threads), "--keep-alive", "30", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    rows: list[tuple[str, str]] = [
        ("HTTP server", f"gunicorn -w {workers} -k gthread --threads {threads}, PostgreSQL, token auth"),
        ("load", f"wrk -t1 -c{connections} -d{duration}s (keep-alive), one answer per request"),
    ]
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=2).read()  # noqa: S310 - local URL
                break
            except OSError:
                time.sleep(0.2)
        for store in (True, False):
            bodies = [json.dumps({"response": t, "store": store}) for t in texts]
            lua = WRK_SCRIPT % {"bodies": "{" + ", ".join(json.dumps(b) for b in bodies) + "}", "token": token}
            with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
                handle.write(lua)
            endpoint = f"{url}/api/v1/items/heat-spoon/score/"
            # warm-up: every worker loads the model once
            subprocess.run(["wrk", "-t1", f"-c{connections}", "-d2s", "-s", handle.name, endpoint],
                           capture_output=True, text=True, check=True)
            out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", handle.name, endpoint],
                                 capture_output=True, text=True, check=True).stdout
            os.unlink(handle.name)
            r = json.loads(next(line for line in out.splitlines() if line.startswith("WRKJSON"))[8:])
            errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
            rps = r["requests"] / (r["duration_us"] / 1e6)
            label = "store=true (submission + score saved)" if store else "store=false (scored only)"
            rows.append((f"HTTP {label}: req/s; p50 / p90 / p99 / max (ms); errors",
                         f"**{rps:,.0f}**; {r['p50_us'] / 1e3:.1f} / {r['p90_us'] / 1e3:.1f} / "
                         f"**{r['p99_us'] / 1e3:.1f}** / {r['max_us'] / 1e3:.1f}; **{errors}** "
                         f"of {r['requests']:,}"))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a model-version directory (default: build one)")
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--duration", type=int, default=10, help="seconds of HTTP load per run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kdgrade.settings")
    os.environ.setdefault("KDGRADE_DATA_DIR", str(WORK / "data"))
    import django

    django.setup()
    model_dir = ensure_model(args.model)
    rows = in_process(model_dir, args.datasets)
    if not args.skip_http:
        rows += http(model_dir, args.duration, args.connections, args.workers, args.threads)
    load = os.getloadavg()
    rows.append(("machine", f"{os.cpu_count()} CPUs; load average before/after {load[2]:.1f} / {load[0]:.1f} "
                            "(other processes share the cores)"))
    print("| measure | value |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
