"""Names and Role Provisioning: the course roster, for the teacher's "who has not answered" list."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from kdgrade.lti import ags
from kdgrade.lti.claims import display_name
from kdgrade.lti.models import Context, LtiUser, Membership
from kdgrade.lti.roles import role_flags

log = logging.getLogger(__name__)


def sync_roster(context_id: int) -> int:
    """Fetch the course's members over NRPS and record them.  Returns how many members it saw."""
    context = Context.objects.select_related("platform").get(pk=context_id)
    if not context.memberships_url:
        raise ags.ServiceError("the platform did not offer a roster service for this course", retryable=False)
    members = ags.fetch_members(context.platform, context.memberships_url)
    seen: set[int] = set()
    with transaction.atomic():
        for m in members:
            sub = str(m.get("user_id") or "")
            if not sub:
                continue
            user, _ = LtiUser.objects.get_or_create(platform=context.platform, sub=sub)
            name = display_name(m)[:255]
            if name and name != user.name:
                user.name = name
                user.save(update_fields=["name"])
            roles = list(m.get("roles") or [])
            is_learner, is_instructor = role_flags(roles)
            membership, _ = Membership.objects.update_or_create(
                context=context, user=user,
                defaults={"roles": roles, "is_learner": is_learner and not is_instructor,
                          "is_instructor": is_instructor, "active": (m.get("status") or "Active") == "Active"},
            )
            seen.add(membership.pk)
        context.memberships.exclude(pk__in=seen).update(active=False)
        context.roster_synced_at = timezone.now()
        context.save(update_fields=["roster_synced_at"])
    log.info("lti: roster of context %s synced: %d members", context.pk, len(seen))
    return len(seen)
