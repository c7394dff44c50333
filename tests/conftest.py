import os

import pytest
from django.conf import settings


@pytest.fixture(scope="session", autouse=True)
def _announce_configuration():
    """Check the suite runs in the configuration scripts/test.sh asked for."""
    wanted = os.environ.get("KDGRADE_TEST_CONFIG")
    engine = settings.DATABASES["default"]["ENGINE"]
    broker = settings.CELERY_BROKER_URL
    if wanted == "servers":
        assert engine.endswith("postgresql"), f"servers configuration but database engine is {engine}"
        assert broker.startswith("redis"), f"servers configuration but broker is {broker}"
    elif wanted == "embedded":
        assert engine.endswith("sqlite3"), f"embedded configuration but database engine is {engine}"
        assert broker.startswith("filesystem"), f"embedded configuration but broker is {broker}"
    yield


@pytest.fixture(autouse=True)
def _lms_on_loopback(settings):
    """The tests' LMS (devtools.devplatform) listens on 127.0.0.1, which kdgrade's outbound client
    refuses by default: the tests allow it here, explicitly (tests of the refusal turn it off)."""
    settings.KDGRADE_OUTBOUND_ALLOW_PRIVATE = True


# Shared fixtures: real model versions distilled once per session (see tests/scoring_support.py).
from tests.scoring_support import demo_versions, model_dirs, models_dir  # noqa: E402, F401
