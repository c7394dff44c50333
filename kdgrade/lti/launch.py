"""An LTI 1.3 launch from start to end: validate it (validation.py), record it (claims.py).

The parts live in modules named for what they hold: toolconf.py (pylti1p3's view of the Platform and
Deployment tables; each Platform makes its own Registration), login.py (OIDC login initiation),
validation.py, claims.py, roles.py and sessions.py (finding a live launch session).
"""

from __future__ import annotations

from django.http import HttpRequest

from kdgrade.lti.claims import record_launch
from kdgrade.lti.errors import LaunchRefused
from kdgrade.lti.models import LaunchSession
from kdgrade.lti.validation import validate_launch

__all__ = ["LaunchRefused", "launch"]


def launch(request: HttpRequest) -> LaunchSession:
    """Validate an id_token POSTed to /lti/launch/ and record who launched what."""
    valid = validate_launch(request)
    return record_launch(valid.platform, valid.body)
