"""Bad configuration fails at start with one clear line that names the setting."""

import os
import subprocess
import sys

import pytest

from tests.workers import ROOT

pytestmark = pytest.mark.ml  # starts its own processes; no test database needed


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    # A fresh process as an operator would start it: none of the test session's own settings (the browser
    # tests' DJANGO_ALLOW_ASYNC_UNSAFE included, which check --deploy rightly refuses).
    drop = {"DATABASE_URL", "KDGRADE_MODE", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    base = {k: v for k, v in os.environ.items() if k not in drop}
    base.update(env)
    return subprocess.run(args, cwd=ROOT, env=base, capture_output=True, text=True, timeout=120)


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "manage.py", *args], **env)


def assert_one_clear_line(result: subprocess.CompletedProcess, setting: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert setting in lines[0]


@pytest.mark.parametrize(
    "url",
    ["postgres//no-scheme-separator", "mysql://root@localhost/x", "postgres://u@host:notaport/db", "sqlite://"],
)
def test_malformed_database_url(url):
    assert_one_clear_line(manage("migrate", DATABASE_URL=url), "DATABASE_URL")


def test_unreachable_database_names_the_setting_and_hides_the_password():
    result = manage("migrate", DATABASE_URL="postgres://kd:s3cret@127.0.0.1:1/kd")
    assert_one_clear_line(result, "DATABASE_URL")
    assert "s3cret" not in result.stderr


def test_production_without_secret_key():
    assert_one_clear_line(manage("check", KDGRADE_MODE="production", ALLOWED_HOSTS="kd.example.org"), "SECRET_KEY")


def test_production_without_allowed_hosts():
    result = manage("check", KDGRADE_MODE="production", SECRET_KEY="x" * 60)
    assert_one_clear_line(result, "ALLOWED_HOSTS")


def test_worker_with_malformed_database_url_says_so_in_one_line():
    result = run([sys.executable, "-m", "celery", "-A", "kdgrade", "worker"], DATABASE_URL="nonsense")
    assert_one_clear_line(result, "DATABASE_URL")


def test_production_deploy_check_is_clean():
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING",
        KDGRADE_MODE="production", SECRET_KEY="kdgrade-test-" + "0123456789abcdef" * 4, ALLOWED_HOSTS="kd.example.org",
        KDGRADE_KEY_ENCRYPTION_KEY="yMPW0T9W8l3GQH5wLbTtuWdN8BXCVKzv3qKJ2gq5E0c=",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
