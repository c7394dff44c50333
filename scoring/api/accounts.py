"""API accounts for integrations: a user that is not staff, cannot log in with a password, and holds
only the permissions its token needs."""

from __future__ import annotations

from django.contrib.auth.models import Permission, User
from django.db import transaction
from rest_framework.authtoken.models import Token

from scoring.api.auth import CachedTokenAuthentication
from scoring.api.permissions import READ_SUBMISSIONS, SCORE, VIEW_ITEM


def _perm(dotted: str) -> Permission:
    app, codename = dotted.split(".", 1)
    return Permission.objects.get(content_type__app_label=app, codename=codename)


@transaction.atomic
def integration_token(username: str, *, read_submissions: bool = False, new_key: bool = False) -> str:
    """The API token of integration account `username` (made if missing): scoring-only (score answers,
    read items), plus reading stored submissions when `read_submissions`.  `new_key` replaces its token."""
    user, created = User.objects.get_or_create(username=username, defaults={"is_staff": False})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    user.user_permissions.add(_perm(SCORE), _perm(VIEW_ITEM))
    if read_submissions:
        user.user_permissions.add(_perm(READ_SUBMISSIONS))
    else:
        user.user_permissions.remove(_perm(READ_SUBMISSIONS))
    if new_key:
        Token.objects.filter(user=user).delete()
        CachedTokenAuthentication.clear_cache()
    return Token.objects.get_or_create(user=user)[0].key
