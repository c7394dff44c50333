"""Copying a validated launch's claims into the database: course (or, without one, the placement),
user, membership, resource link and its gradebook endpoints; then a LaunchSession for the pages."""

from __future__ import annotations

import hashlib
import logging
from urllib.parse import urlsplit

from django.db import transaction

from kdgrade.lti.errors import LaunchRefused
from kdgrade.lti.models import (
    Context,
    Deployment,
    LaunchSession,
    LtiAssignment,
    LtiUser,
    Membership,
    Platform,
    ResourceLink,
)
from kdgrade.lti.roles import role_flags
from kdgrade.lti.sessions import start_session
from scoring.assignments import copy_assignment
from scoring.models import Assignment

log = logging.getLogger(__name__)

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
DL_CLAIM = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
ASSIGNMENT_CUSTOM_PARAM = "kdgrade_assignment"
NO_CONTEXT_PREFIX = "~no-context~"


def display_name(claims: dict) -> str:
    """A person's name from launch claims or an NRPS member (`name`, else given + family name)."""
    return str(claims.get("name") or " ".join(filter(None, [claims.get("given_name"), claims.get("family_name")])))


def placement_context_id(deployment_id: str, resource_link_id: str = "") -> str:
    """The context id kdgrade gives a launch without a course (context claim): the activity is scoped
    to its deployment and resource link (a Deep Linking request without a course: to the deployment)."""
    digest = hashlib.sha256(f"{deployment_id}\0{resource_link_id}".encode()).hexdigest()[:40]
    return f"{NO_CONTEXT_PREFIX}{digest}"


def _context(platform: Platform, deployment: Deployment, body: dict) -> Context:
    ctx_claim = body.get(CLAIM + "context") or {}
    if ctx_claim.get("id"):
        context, _ = Context.objects.get_or_create(platform=platform, context_id=str(ctx_claim["id"])[:255])
        context.title = str(ctx_claim.get("title", ""))[:500]
        context.label = str(ctx_claim.get("label", ""))[:255]
    else:
        link_id = str((body.get(CLAIM + "resource_link") or {}).get("id") or "")
        context, _ = Context.objects.get_or_create(
            platform=platform, context_id=placement_context_id(deployment.deployment_id, link_id))
        context.title = str((body.get(CLAIM + "resource_link") or {}).get("title") or "")[:500] or context.title
    context.deployment = deployment
    nrps = body.get(NRPS_CLAIM) or {}
    if nrps.get("context_memberships_url"):
        context.memberships_url = nrps["context_memberships_url"]
    context.save()
    return context


@transaction.atomic
def record_launch(platform: Platform, body: dict) -> LaunchSession:
    """Record who launched what from a validated launch; a new LaunchSession for the pages."""
    message_type = body[CLAIM + "message_type"]
    if message_type not in ("LtiResourceLinkRequest", "LtiDeepLinkingRequest"):
        raise LaunchRefused("kdgrade does not handle this kind of LTI message.", 400)
    deployment = Deployment.objects.get(platform=platform, deployment_id=body[CLAIM + "deployment_id"])
    roles = [str(r) for r in (body.get(CLAIM + "roles") or []) if r]
    is_learner, is_instructor = role_flags(roles)
    if not (is_learner or is_instructor):
        raise LaunchRefused("kdgrade serves learners and instructors; your role in this course is neither.", 403)
    if message_type == "LtiDeepLinkingRequest":
        if not is_instructor:
            raise LaunchRefused("Only instructors can add kdgrade activities.", 403)
        return_url = str((body.get(DL_CLAIM) or {}).get("deep_link_return_url") or "")
        if urlsplit(return_url).scheme not in ("http", "https"):
            raise LaunchRefused("The Deep Linking request has no usable return URL (deep_link_return_url).", 400)

    context = _context(platform, deployment, body)
    user, _ = LtiUser.objects.get_or_create(platform=platform, sub=str(body["sub"]))
    name = display_name(body)
    if name and user.name != name:
        user.name = name[:255]
        user.save(update_fields=["name"])
    Membership.objects.update_or_create(
        context=context, user=user,
        defaults={"roles": roles, "is_learner": is_learner, "is_instructor": is_instructor, "active": True},
    )

    link = None
    if message_type == "LtiResourceLinkRequest":
        rl_claim = body[CLAIM + "resource_link"]
        link, _ = ResourceLink.objects.get_or_create(context=context, resource_link_id=str(rl_claim["id"])[:255])
        link.title = str(rl_claim.get("title") or link.title)[:500]
        ags = body.get(AGS_CLAIM) or {}
        link.ags_scopes = list(ags.get("scope") or [])
        link.lineitems_url = ags.get("lineitems", "") or ""
        link.lineitem_url = ags.get("lineitem", "") or link.lineitem_url
        if link.assignment_id is None:
            link.assignment = assignment_for_link(context, (body.get(CLAIM + "custom") or {}))
        link.save()

    session = start_session(
        platform=platform, context=context, user=user, resource_link=link,
        is_instructor=is_instructor, message_type=message_type,
        deep_link_settings=body.get(DL_CLAIM) or {}, deployment_id=deployment.deployment_id,
    )
    log.info("lti: %s launch platform=%s context=%s user=%s role=%s", message_type, platform.pk, context.pk,
             user.pk, "instructor" if is_instructor else "learner")
    return session


def assignment_for_link(context: Context, custom: dict) -> Assignment | None:
    """The assignment a new resource link shows: the one Deep Linking put in its custom parameters;
    a link copied into another course (course copy) gets its own copy of that assignment.

    Only an assignment of a course on the same platform is honoured: the id is a plain number in a
    custom parameter, and another platform (or anyone editing custom parameters there) must not copy
    an assignment, its title and settings, out of a course it has nothing to do with."""
    raw = str(custom.get(ASSIGNMENT_CUSTOM_PARAM, ""))
    if not raw.isdigit() or len(raw) > 18:
        return None
    source = Assignment.objects.filter(pk=int(raw), lti__context__platform_id=context.platform_id).select_related(
        "lti").first()
    if source is None:
        return None
    owner = getattr(source, "lti", None)
    if owner is not None and owner.context_id == context.pk:
        return source
    copy = copy_assignment(source)
    LtiAssignment.objects.create(assignment=copy, context=context)
    return copy
