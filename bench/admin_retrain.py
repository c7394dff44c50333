"""Retraining through the admin, end to end, timed: a real browser uploads one ASAP-SAS prompt (answers +
a Canvas rubric CSV export) on the admin page, previews and imports it, starts a training run from the items
list with the full recipe, follows the run page until it ends, and activates the new version (the override
box is ticked, and recorded, only when a quality gate failed).  Prints the times and the report's figures.

    .venv/bin/python bench/admin_retrain.py --prompt 1 [--data-dir var/bench-admin] [--tiny]

It runs its own web server, training worker (file-system broker) and SQLite database under --data-dir
(wiped first).  Needs Chromium (/usr/bin/chromium) and Playwright (requirements/dev.txt).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "datasets" / "asap_sas" / "train.csv"
# ASAP-SAS science prompts: score 0-3 by how many key elements the answer gives (Data Set ReadMeFirst files).
RUBRIC = {"1": "Acid rain: additional information needed to replicate the experiment",
          "2": "Polymer investigation: conclusion and improvements to the experimental design",
          "5": "Protein synthesis: key elements of the process",
          "6": "Cell membrane: processes used to move substances across it"}


def write_inputs(prompt: str, folder: Path) -> tuple[Path, Path]:
    with DATA.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    answers = folder / f"asap-{prompt}-scored.csv"
    with answers.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(rows[0])
        w.writerows(r for r in rows[1:] if r[0] == prompt)
    rubric = folder / f"asap-{prompt}-canvas-rubric.csv"
    with rubric.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["Rubric Name", "Criteria Name", "Criteria Description", "Criteria Enable Range"]
                   + ["Rating Name", "Rating Description", "Rating Points"] * 4)
        w.writerow([f"ASAP-SAS {prompt}", prompt, RUBRIC[prompt], "false",
                    "Three key elements", "Three or more key elements", "3", "Two key elements", "Two", "2",
                    "One key element", "One", "1", "None", "Other / irrelevant / incorrect", "0"])
    return answers, rubric


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt", default="1", choices=sorted(RUBRIC))
    ap.add_argument("--data-dir", default=str(ROOT / "var" / "bench-admin"))
    ap.add_argument("--port", type=int, default=8391)
    ap.add_argument("--tiny", action="store_true", help="the tiny teacher (a quick check of the script)")
    args = ap.parse_args()
    data_dir = Path(args.data_dir).resolve()
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    env = {**os.environ, "KDGRADE_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1",
           "DATABASE_URL": f"sqlite:///{data_dir / 'db.sqlite3'}", "CELERY_BROKER_URL": "filesystem://"}
    for k in ("CACHE_URL",):
        env.pop(k, None)
    py = sys.executable
    run = lambda *a: subprocess.run([py, "manage.py", *a], cwd=ROOT, env=env, check=True,  # noqa: E731
                                    stdout=subprocess.DEVNULL)
    run("migrate", "--noinput", "-v0")
    run("createcachetable")
    password = "bench-" + os.urandom(8).hex()
    subprocess.run([py, "-c", "import django;django.setup();from django.contrib.auth.models import User;"
                    f"User.objects.create_superuser('admin','a@example.org','{password}')"],
                   cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "kdgrade.settings"}, check=True)
    answers, rubric = write_inputs(args.prompt, data_dir)
    logs = [open(data_dir / n, "w") for n in ("web.log", "worker.log")]  # noqa: SIM115
    web = subprocess.Popen([py, "manage.py", "runserver", "--noreload", f"127.0.0.1:{args.port}"], cwd=ROOT, env=env,
                           stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True)
    worker = subprocess.Popen([py, "-m", "celery", "-A", "kdgrade", "worker", "-Q", "training", "--concurrency", "1",
                               "-n", "bench-training@%h", "--loglevel", "INFO"], cwd=ROOT, env=env,
                              stdout=logs[1], stderr=subprocess.STDOUT, start_new_session=True)
    try:
        figures = drive(args, password, answers, rubric)
    finally:
        for p in (web, worker):
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=30)
    print_table(args.prompt, figures, data_dir)


def drive(args, password: str, answers: Path, rubric: Path) -> dict:
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{args.port}"
    t: dict = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--headless"])
        page = browser.new_page()
        for _ in range(100):
            try:
                page.goto(f"{base}/admin/login/")
                break
            except Exception:  # the server is still starting
                time.sleep(0.5)
        page.fill("#id_username", "admin")
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.goto(f"{base}/admin/training/importbatch/upload/")
        t["upload"] = time.monotonic()
        page.set_input_files("#id_answers", str(answers))
        page.set_input_files("#id_rubric", str(rubric))
        page.click("button:has-text('Preview')")
        page.wait_for_selector("#preview", timeout=120_000)
        t["preview"] = time.monotonic()
        t["preview_text"] = page.inner_text("#preview")
        page.click("button:has-text('Import')")
        page.wait_for_selector("text=Imported", timeout=120_000)
        t["imported"] = time.monotonic()
        page.goto(f"{base}/admin/scoring/item/")
        page.check("input[name=_selected_action]")
        page.select_option("select[name=action]", "train")
        page.click("button[name=index]")
        page.select_option("#id_preset", "tiny" if args.tiny else "default")
        page.check("#id_activate_passing")
        page.click("button:has-text('Start training')")
        page.wait_for_selector("#bar")
        t["started"] = time.monotonic()
        run_url = page.url
        while not page.is_visible("#report-link"):
            page.wait_for_timeout(5000)
            print(f"  {page.get_attribute('#bar', 'aria-valuenow')}% {page.inner_text('[data-field=stage]')} "
                  f"(time left {page.inner_text('[data-field=eta]')})", flush=True)
        t["trained"] = time.monotonic()
        page.click("#report-link")
        page.wait_for_selector("text=Models side by side")
        t["overridden"] = False
        if page.locator("button:has-text('Activate version')").count():
            if page.locator("input[name=override]").count():
                page.check("input[name=override]")
                page.fill("input[name=note]", "benchmark: activated to time the path; gates failed")
                t["overridden"] = True
            page.click("button:has-text('Activate version')")
            page.wait_for_selector("text=is now active", timeout=120_000)
        t["active"] = time.monotonic()
        t["run_url"] = run_url
        browser.close()
    return t


def print_table(prompt: str, t: dict, data_dir: Path) -> None:
    os.environ.update({"KDGRADE_DATA_DIR": str(data_dir), "DATABASE_URL": f"sqlite:///{data_dir / 'db.sqlite3'}",
                       "DJANGO_SETTINGS_MODULE": "kdgrade.settings"})
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from training.models import ActivationAudit, TrainingRunItem

    ri = TrainingRunItem.objects.select_related("model_version").get(item__external_id=prompt)
    audit = ActivationAudit.objects.filter(action="activate").order_by("-id").first()
    e = ri.report
    print(f"\n## ASAP-SAS prompt {prompt} through the admin\n")
    print("| step | seconds since upload |\n|---|---:|")
    for key, label in (("preview", "preview shown"), ("imported", "imported"), ("started", "run started"),
                       ("trained", "run finished (version registered)"), ("active", "version active")):
        print(f"| {label} | {t[key] - t['upload']:.0f} |")
    print(f"\nActivated by: {audit.actor if audit else '-'}; gates overridden: {t['overridden']}\n")
    print(f"Answers: {e.get('n_train')} train, {e.get('n_test')} test; human-human QWK {e.get('human_human_qwk')}\n")
    print("| model | QWK | accuracy | macro-F1 | SMD | params | answers/s |\n|---|---:|---:|---:|---:|---:|---:|")
    for name, m in (e.get("models") or {}).items():
        if m is None:  # not built by this run (an admin's run skips the int8 teacher)
            continue
        f = lambda k, m=m: "" if m.get(k) is None else (f"{m[k]:.3f}" if isinstance(m[k], float) else m[k])  # noqa: E731
        print(f"| {name} | {f('qwk')} | {f('accuracy')} | {f('macro_f1')} | {f('smd')} | {f('params')} | "
              f"{f('responses_per_s')} |")
    print("\n| gate | passed | message |\n|---|---|---|")
    for g in ri.gates:
        print(f"| {g['name']} | {g['passed']} | {g['message']} |")


if __name__ == "__main__":
    main()
