"""Students' data: retention, erasure (one student, one course, one platform) and export (one student).

What kdgrade holds about a student: their LMS user id (`sub`) and name, course memberships and roles
(from launches and roster syncs), answers with their scores, and the grade posts to the gradebook.
Erasing removes all of it from kdgrade; it does not touch the LMS, which keeps its own copy (see
`LMS_KEEPS`), and an erased grade post that was still waiting is never sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from kdgrade.lti.models import (
    Context,
    GradeOutbox,
    GradeSlot,
    LaunchSession,
    LtiAssignment,
    LtiUser,
    Membership,
    Platform,
)
from scoring.models import Assignment, Submission

log = logging.getLogger(__name__)

LMS_KEEPS = {
    "student": ("The LMS keeps its own records: the student's account and enrolment, and the grades and comments "
                "kdgrade already posted to its gradebook. Delete those in Canvas or Moodle if they must go too."),
    "course": ("The LMS keeps the course, its kdgrade links and gradebook columns, and every grade kdgrade "
               "already posted. Delete the columns in Canvas or Moodle if the grades must go too."),
    "platform": ("The LMS keeps its courses, gradebook columns and grades, and kdgrade's registration (Canvas "
                 "developer key or Moodle external tool): remove that registration in the LMS, since kdgrade "
                 "no longer accepts its launches."),
}


@dataclass
class Erased:
    """What an erasure removed (row counts by kind) and what stays in the LMS."""

    what: str
    counts: dict[str, int] = field(default_factory=dict)
    lms_keeps: str = ""

    def add(self, deleted: tuple[int, dict[str, int]]) -> None:
        for label, n in deleted[1].items():
            if n:
                self.counts[label] = self.counts.get(label, 0) + n

    def summary(self) -> str:
        rows = ", ".join(f"{n} {label.split('.')[-1]}" for label, n in sorted(self.counts.items())) or "nothing"
        return f"Erased {self.what}: {rows}. {self.lms_keeps}"


def _orphans(platform_ids: list[int]) -> Q:
    """LTI users of these platforms with no course, answer or live launch left."""
    return Q(platform_id__in=platform_ids) & ~Q(
        Exists(Membership.objects.filter(user=OuterRef("pk")))
        | Exists(Submission.objects.filter(lti_user=OuterRef("pk")))
        | Exists(LaunchSession.objects.filter(user=OuterRef("pk"))))


@transaction.atomic
def erase_student(user: LtiUser) -> Erased:
    """Everything kdgrade holds about one LMS user: answers and scores (cascading from the user),
    grade posts, memberships, launch sessions, the name and the user itself."""
    result = Erased(what=f"LMS user {user.pk} of platform {user.platform_id}", lms_keeps=LMS_KEEPS["student"])
    # Answers recorded before submissions were linked to their user, found by the LMS user id.
    result.add(Submission.objects.filter(
        lti_user__isnull=True, source=Submission.Source.LTI, learner_ref=user.sub,
        assignment__lti__context__platform_id=user.platform_id).delete())
    result.add(GradeSlot.objects.filter(resource_link__context__platform_id=user.platform_id,
                                        user_sub=user.sub).delete())
    pk = user.pk
    result.add(user.delete())
    log.info("privacy: erased LMS user %s (%s)", pk, result.counts)
    return result


@transaction.atomic
def erase_course(context: Context) -> Erased:
    """A course: its assignments with every answer, score and grade post, its links, memberships and
    launch sessions, and the users who had nothing else in kdgrade."""
    result = Erased(what=f"course {context.pk} of platform {context.platform_id}", lms_keeps=LMS_KEEPS["course"])
    assignment_ids = list(LtiAssignment.objects.filter(context=context).values_list("assignment_id", flat=True))
    result.add(Assignment.objects.filter(pk__in=assignment_ids).delete())
    platform_id, pk = context.platform_id, context.pk
    result.add(context.delete())
    result.add(LtiUser.objects.filter(_orphans([platform_id])).delete())
    log.info("privacy: erased course %s (%s)", pk, result.counts)
    return result


@transaction.atomic
def erase_platform(platform: Platform) -> Erased:
    """A platform and everything of it: its courses (as erase_course), users, deployments, keys."""
    result = Erased(what=f"platform {platform.pk} ({platform.name})", lms_keeps=LMS_KEEPS["platform"])
    for context in Context.objects.filter(platform=platform):
        result.add((0, erase_course(context).counts))
    pk = platform.pk
    result.add(platform.delete())
    log.info("privacy: erased platform %s (%s)", pk, result.counts)
    return result


def export_student(user: LtiUser) -> dict:
    """Everything kdgrade holds about one LMS user, as JSON-ready data."""
    submissions = (Submission.objects.filter(Q(lti_user=user) | Q(
        lti_user__isnull=True, source=Submission.Source.LTI, learner_ref=user.sub,
        assignment__lti__context__platform_id=user.platform_id))
        .select_related("item", "assignment").prefetch_related("scores").order_by("created_at", "id"))
    posts = (GradeOutbox.objects.filter(slot__resource_link__context__platform_id=user.platform_id,
                                        slot__user_sub=user.sub).order_by("timestamp"))
    return {
        "platform": {"name": user.platform.name, "issuer": user.platform.issuer},
        "lms_user_id": user.sub,
        "name": user.name,
        "courses": [
            {"course": m.context.title or m.context.context_id, "roles": m.roles, "active": m.active,
             "updated_at": m.updated_at.isoformat()}
            for m in Membership.objects.filter(user=user).select_related("context").order_by("pk")
        ],
        "answers": [
            {"id": s.pk, "assignment": s.assignment.title if s.assignment else None, "item": s.item.external_id,
             "question": s.item.question, "answer": s.response, "created_at": s.created_at.isoformat(),
             "scores": [{"model_score": sc.model_score, "teacher_score": sc.override_score,
                         "final_score": sc.final_score, "confidence": sc.confidence, "flags": sc.flags,
                         "gradebook": sc.passback_state, "created_at": sc.created_at.isoformat()}
                        for sc in s.scores.all()]}
            for s in submissions
        ],
        "grade_posts": [
            {"payload": p.payload, "state": p.state, "created_at": p.created_at.isoformat(),
             "sent_at": p.sent_at.isoformat() if p.sent_at else None}
            for p in posts
        ],
    }


def purge_expired(now=None) -> dict[str, int]:
    """Delete what is older than KDGRADE_RETENTION_DAYS (0: keep everything): answers and their scores
    and sent grade posts (never one whose grade is still waiting or failed: no grade is lost), course
    memberships not refreshed since, users left with nothing, empty gradebook cells."""
    days = settings.KDGRADE_RETENTION_DAYS
    if days <= 0:
        return {}
    cutoff = (now or timezone.now()) - timedelta(days=days)
    counts: dict[str, int] = {}

    def add(deleted: tuple[int, dict[str, int]]) -> None:
        for label, n in deleted[1].items():
            if n:
                counts[label] = counts.get(label, 0) + n

    with transaction.atomic():
        undelivered = GradeOutbox.objects.filter(score__submission=OuterRef("pk"), state__in=[
            GradeOutbox.State.PENDING, GradeOutbox.State.FAILED])
        add(Submission.objects.filter(created_at__lt=cutoff).exclude(Exists(undelivered)).delete())
        add(Membership.objects.filter(updated_at__lt=cutoff).delete())
        add(GradeSlot.objects.annotate(n=Count("posts")).filter(n=0, last_sent_timestamp__lt=cutoff).delete())
        platform_ids = list(Platform.objects.values_list("pk", flat=True))
        add(LtiUser.objects.filter(_orphans(platform_ids)).delete())
    log.info("privacy: retention purge (%d days): %s", days, counts or "nothing to delete")
    return counts
