"""Reading settings from the environment, with one-line errors that name the setting.

Kept free of Django imports so that `manage.py`, the WSGI entry point and the Celery
app can all turn a bad setting into a single clear line instead of a stack trace.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


class ConfigError(Exception):
    """A setting is missing or malformed; `setting` names it."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting
        self.message = message

    def one_line(self) -> str:
        return f"kdgrade: configuration error in {self.setting}: {self.message}"


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def env_bool(name: str, default: bool) -> bool:
    value = env_str(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(name, f"expected true/false, got {value!r}")


def env_int(name: str, default: int) -> int:
    value = env_str(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(name, f"expected an integer, got {value!r}") from None


def env_float(name: str, default: float) -> float:
    value = env_str(name)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise ConfigError(name, f"expected a number, got {value!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = env_str(name)
    if value is None:
        return default
    return [part.strip() for part in value.split(",") if part.strip()]


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***`, safe to print in logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


SUPPORTED_DATABASE_SCHEMES = {"sqlite", "postgres", "postgresql", "pgsql"}


def parse_database_url(url: str, base_dir: Path) -> dict:
    """Django DATABASES['default'] for DATABASE_URL, or ConfigError naming it."""
    import dj_database_url

    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in SUPPORTED_DATABASE_SCHEMES:
        raise ConfigError(
            "DATABASE_URL",
            f"malformed or unsupported URL {redact_url(url)!r}; expected "
            "postgres://USER:PASSWORD@HOST:PORT/NAME or sqlite:////absolute/path.sqlite3",
        )
    try:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except Exception as exc:  # dj-database-url raises several types for bad input
        raise ConfigError("DATABASE_URL", f"malformed URL {redact_url(url)!r}: {exc}") from None
    if config["ENGINE"].endswith("postgresql"):
        if not config.get("NAME"):
            raise ConfigError("DATABASE_URL", f"no database name in {redact_url(url)!r}")
        try:
            int(config.get("PORT") or 5432)
        except ValueError:
            raise ConfigError("DATABASE_URL", f"bad port in {redact_url(url)!r}") from None
    else:
        config["CONN_MAX_AGE"] = 0
        if not config.get("NAME") or config["NAME"] == ":memory:":
            raise ConfigError("DATABASE_URL", "an SQLite URL needs a file path")
        config["NAME"] = str((base_dir / config["NAME"]).resolve())
    return config


def exit_on_config_error(exc: ConfigError) -> None:
    print(exc.one_line(), file=sys.stderr)
    raise SystemExit(2)
