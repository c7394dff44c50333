"""The shipped deployment files agree with each other and with the README recipe (no container engine
or systemd on the test machines: their structure and commands are checked, and each command's Celery
or gunicorn options are parsed by the real programs)."""

from __future__ import annotations

import configparser
import re
import shlex
import subprocess
import sys

import yaml

from tests.workers import ROOT

UNITS = ROOT / "deploy" / "systemd"


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _exec_start(unit: str) -> list[str]:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read(UNITS / unit)
    return shlex.split(parser["Service"]["ExecStart"].replace("\\\n", " "))


def test_compose_has_the_layout_with_exactly_one_beat():
    services = _compose()["services"]
    assert {"db", "redis", "migrate", "web", "worker", "training", "beat", "proxy"} <= set(services)
    beats = [name for name, s in services.items() if "beat" in (s.get("command") or [])]
    assert beats == ["beat"]
    assert services["worker"]["command"][services["worker"]["command"].index("-Q") + 1] == "default"
    assert services["training"]["command"][services["training"]["command"].index("-Q") + 1] == "training"
    assert services["migrate"]["command"][-2:] == ["migrate", "--noinput"]
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
    for name in ("worker", "training"):
        grace = int(services[name]["stop_grace_period"].rstrip("s"))
        assert grace > 25, "the container must outlive KDGRADE_WORKER_SHUTDOWN_GRACE"


def test_systemd_units_run_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    for unit, needle in [("kdgrade-web.service", "gunicorn kdgrade.wsgi"),
                         ("kdgrade-worker.service", "-Q default"),
                         ("kdgrade-training.service", "-Q training"),
                         ("kdgrade-beat.service", "beat")]:
        cmd = " ".join(_exec_start(unit))
        assert needle in cmd and needle in readme, unit
    text = (UNITS / "kdgrade-worker.service").read_text()
    stop = int(re.search(r"TimeoutStopSec=(\d+)", text).group(1))
    assert stop > 25 and "KillSignal=SIGTERM" in text


def test_celery_and_gunicorn_accept_the_shipped_options():
    """Each shipped command line, with --help appended, is accepted by the real program (a typo in an
    option would make it exit 2)."""
    services = _compose()["services"]
    for name in ("worker", "training", "beat"):
        args = services[name]["command"]
        done = subprocess.run([sys.executable, "-m", *args, "--help"], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, (name, done.stderr[-500:])
    gunicorn = _exec_start("kdgrade-web.service")
    opts = [a.replace("${KDGRADE_PORT}", "8000") for a in gunicorn[1:]]
    done = subprocess.run([sys.executable, "-m", "gunicorn", *opts, "--check-config"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1000:]
