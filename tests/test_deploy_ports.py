"""Ports and the public URL: the development public URL follows KDGRADE_PORT unless KDGRADE_PUBLIC_URL
is set; a port in use is named in the error; the registration URL can be printed for another address."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.workers import ROOT, child_env

pytestmark = pytest.mark.django_db(transaction=True)


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = child_env(**env)
    if "KDGRADE_PUBLIC_URL" not in env:
        base.pop("KDGRADE_PUBLIC_URL", None)
    quiet = ["-v0"] if args[0] == "shell" else []
    return subprocess.run([sys.executable, "manage.py", *args, *quiet], cwd=ROOT, env=base, capture_output=True,
                          text=True, timeout=120)


def test_public_url_follows_the_port_unless_set():
    show = "from django.conf import settings; print(settings.PUBLIC_URL)"
    assert _manage("shell", "-c", show, KDGRADE_PORT="8123").stdout.strip() == "http://127.0.0.1:8123"
    assert _manage("shell", "-c", show).stdout.strip() == "http://127.0.0.1:8000"
    assert _manage("shell", "-c", show, KDGRADE_PORT="8123",
                   KDGRADE_PUBLIC_URL="https://kd.school.org/").stdout.strip() == "https://kd.school.org"


def test_registration_url_for_the_address_the_lms_reaches():
    out = _manage("lti_registration_url", "--public-url", "https://kd.school.org/", KDGRADE_PORT="8123")
    assert out.returncode == 0 and out.stdout.startswith("https://kd.school.org/lti/register/?key="), out
    plain = _manage("lti_registration_url", KDGRADE_PORT="8123")
    assert plain.stdout.startswith("http://127.0.0.1:8123/lti/register/?key=")
    assert "KDGRADE_PUBLIC_URL" in plain.stderr


def test_a_port_in_use_is_named():
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        lms = _manage("lti_dev_lms", "--port", str(port))
        assert lms.returncode != 0 and f"port {port}" in lms.stderr and "KDGRADE_DEV_LMS_PORT" in lms.stderr
        run = subprocess.run(["bash", "scripts/run.sh"], cwd=ROOT, env=child_env(KDGRADE_PORT=str(port)),
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 1 and f"port {port} on 127.0.0.1 is in use" in run.stderr, run.stderr
        assert "KDGRADE_PORT=" in run.stderr
