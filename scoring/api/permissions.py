"""Who may call what in the API (Django permissions, so the admin's user and group pages manage them).

- scoring (score, score-batch): `scoring.add_submission` - what an integration's scoring-only token has;
- items and their model versions: `scoring.add_submission` or `scoring.view_item`;
- reading a submission (a student's answer): `scoring.view_submission` only;
- the schema and docs: any authenticated account (settings.SPECTACULAR_SETTINGS).
A caller without the permission gets 403 for every id, existing or not: ids cannot be enumerated.
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

SCORE = "scoring.add_submission"
VIEW_ITEM = "scoring.view_item"
READ_SUBMISSIONS = "scoring.view_submission"


def any_of(*perms: str) -> type[BasePermission]:
    """A DRF permission class: an authenticated, active user holding at least one of `perms`."""

    class AnyOf(BasePermission):
        message = f"This account lacks the permission for this ({' or '.join(perms)})."

        def has_permission(self, request: Request, view: APIView) -> bool:
            user = request.user
            return bool(user and user.is_authenticated and user.is_active
                        and any(user.has_perm(p) for p in perms))

    AnyOf.__name__ = f"AnyOf({', '.join(perms)})"
    return AnyOf


CanScore = any_of(SCORE)
CanReadItems = any_of(SCORE, VIEW_ITEM)
CanReadSubmissions = any_of(READ_SUBMISSIONS)
